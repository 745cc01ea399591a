"""`protoviz trust`: the Trust page's checks from the command line, on the synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protoviz.cli import main
from protoviz.models.checkpoint import file_sha256, save_model
from tests.conftest import make_tiny_model


def test_trust_command_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = save_model(make_tiny_model(classes=8, per_class=1), tmp_path / "tiny.safetensors")
    out = tmp_path / "trust.json"
    status = main(["trust", str(checkpoint), "--images", "2", "--prototypes", "1", "--methods", "upsample",
                   "random", "--stages", "1", "--steps", "4", "--device", "cpu", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "randomisation check" in printed and "FAIL" in printed  # the random baseline fails
    report = json.loads(out.read_text())
    assert [row["method"] for row in report["summary"]] == ["upsample", "random"]
    provenance = report["provenance"]  # how it was made: the pass provenance of every dataset-wide result
    assert provenance["settings"]["trust"]["randomisation"]["stages"] == 1
    assert provenance["model_sha256"] == file_sha256(checkpoint) and provenance["dataset"]["split"] == "test"
    assert len(provenance["dataset"]["fingerprint"]) == 64 and provenance["images"] == 2
    assert len(report["methods"]["upsample"]["relevance"]["part_share"]) == 2
    pointing = report["methods"]["upsample"]["pointing"]  # the synthetic set has masks: the pointing game ran
    assert pointing["area"] == 0.1 and len(pointing["mask_relevance"]) == 2
    assert "pointing game (top 10%)" in report["summary"][0] and "energy on object" in report["summary"][0]


def test_trust_command_reports_a_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trust", str(tmp_path / "nope.safetensors")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_trust_takes_images_from_a_dataset_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd
    from PIL import Image

    from protoviz.data.synthetic import SyntheticConfig, generate_dataset

    checkpoint = save_model(make_tiny_model(classes=8, per_class=1), tmp_path / "tiny.safetensors")
    cub = generate_dataset(tmp_path / "cub", SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=1))
    out, table = tmp_path / "trust.json", tmp_path / "trust.csv"
    common = ["--images", "3", "--prototypes", "1", "--methods", "upsample", "--stages", "1", "--steps", "4",
              "--device", "cpu"]
    assert main(["trust", str(checkpoint), "--data", str(cub), *common, "--out", str(out), "--csv", str(table)]) == 0
    captured = capsys.readouterr()
    assert "trust: 100/100 % of the checks" in captured.err  # progress with a rate (and time left while running)
    report = json.loads(out.read_text())
    assert report["provenance"]["notes"]["data"] == {"folder": str(cub), "split": "test", "images": 3}
    assert report["provenance"]["dataset"]["root"] == str(cub)
    assert len(report["methods"]["upsample"]["relevance"]["part_share"]) == 3  # the CUB folder has part masks
    assert pd.read_csv(table)["method"].tolist() == ["upsample"]
    assert json.loads((tmp_path / "trust.provenance.json").read_text())["notes"]["data"]["images"] == 3
    folder = tmp_path / "plain"  # an ImageFolder: no masks, so no relevance, and no error
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (40, 30), (10, 200, 30)).save(folder / name / "x.png")
    assert main(["trust", str(checkpoint), "--data", str(folder), "--split", "all", *common]) == 0
    printed = capsys.readouterr().out
    assert "randomisation check" in printed and "pointing game" not in printed.splitlines()[0]
    assert "no mask relevance or pointing game: " in printed and "has no segmentation masks" in printed
    assert main(["trust", str(checkpoint), "--data", str(tmp_path / "nowhere"), *common]) == 2
    assert "no such folder" in capsys.readouterr().err
