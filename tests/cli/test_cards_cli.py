"""`protoviz cards`: a folder of per-image explanations (figures in three formats, tables, JSON) from files,
folders or a dataset, batched, with progress; bad files skipped with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from protoviz.cli import main
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.models.checkpoint import save_model
from tests.app.conftest import sample_image, with_sources


@pytest.fixture
def st_checkpoint(tmp_path: Path) -> Path:
    return save_model(with_sources(1, "cosine", ("support", "trivial")), tmp_path / "tiny_st.safetensors")


def test_cards_for_files_and_folders(st_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    sample_image(1).save(folder / "a" / "bird.png")
    sample_image(2).save(folder / "b" / "bird.png")  # same name in another folder: both kept
    (folder / "b" / "notes.png").write_text("not pixels")
    single = tmp_path / "one.jpg"
    sample_image(3, (90, 40)).save(single)
    tiny = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tiny)
    out = tmp_path / "cards"
    status = main(["cards", str(st_checkpoint), str(folder), str(single), str(tiny), "--out", str(out), "--top-k", "2",
                   "--format", "png", "svg", "pdf", "--dpi", "80", "--batch-size", "2", "--device", "cpu"])
    assert status == 0
    captured = capsys.readouterr()
    assert "cards: 5/5 images" in captured.err and "images/s" in captured.err  # progress with a rate
    assert "skipped" in captured.err and "notes.png" in captured.err
    stems = ["a__bird", "b__bird", "one", "dot"]
    for stem in stems:
        assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (out / f"{stem}.svg").read_bytes() and (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions["image"].tolist() == stems
    total = predictions[["shown_for", "shown_against", "other"]].sum(axis=1) + predictions["offset"].fillna(0)
    assert (abs(total - predictions["score"]) < 1e-3).all()  # the parts add up to each image's score
    assert "far smaller" in predictions.set_index("image").loc["dot", "warnings"]
    contributions = pd.read_csv(out / "contributions.csv")
    assert len(contributions) == 4 * 12 and set(contributions["image"]) == set(stems)
    document = json.loads((out / "explanations.json").read_text())
    assert [r["image"] for r in document["explanations"]] == stems
    assert document["skipped"][0]["image"].endswith("notes.png") and "not an image" in document["skipped"][0]["reason"]
    assert document["model"]["family_label"] == "ST-ProtoPNet" and len(document["model"]["checkpoint_sha256"]) == 64
    assert document["settings"]["formats"] == ["png", "svg", "pdf"]
    sidecar = json.loads((out / "predictions.provenance.json").read_text())
    assert sidecar["table"] == "predictions.csv" and sidecar["settings"]["top_k"] == 2


def test_cards_for_a_dataset_and_another_class(st_checkpoint: Path, tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "data", SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=1))
    out = tmp_path / "cards"
    assert main(["cards", str(st_checkpoint), "--data", str(data), "--limit", "3", "--class", "class_2",
                 "--out", str(out), "--device", "cpu"]) == 0
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 3 and predictions["explained_class"].eq("class_2").all()
    assert all(name.startswith("test_") for name in predictions["image"])
    assert sorted(p.suffix for p in out.iterdir() if p.stem.startswith("test_")) == [".png"] * 3


def test_cards_errors_are_clear(st_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cards", str(st_checkpoint), "--out", str(tmp_path / "o")]) == 2
    assert "no images" in capsys.readouterr().err
    assert main(["cards", str(st_checkpoint), str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    sample_image(1).save(tmp_path / "x.png")
    assert main(["cards", str(st_checkpoint), str(tmp_path / "x.png"), "--class", "zebra",
                 "--out", str(tmp_path / "o")]) == 2
    assert "neither a class name nor an index" in capsys.readouterr().err
    (tmp_path / "bad.png").write_text("no")
    assert main(["cards", str(st_checkpoint), str(tmp_path / "bad.png"), "--out", str(tmp_path / "o")]) == 2
    assert "none of the 1 image(s) could be explained" in capsys.readouterr().err
