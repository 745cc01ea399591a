"""`protoviz explain` end to end on a tiny checkpoint and a tiny synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from protoviz.cli import main
from protoviz.data.synthetic import SyntheticConfig, generate_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=1, n_test_per_class=1))


def test_explain_writes_csv_and_json(tiny_checkpoint: Path, tiny_data: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    status = main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--mode", "reference", "--out", str(out),
                   "--batch-size", "3", "--limit", "5", "--device", "cpu", "--noise-floor", "--param", "contrast=0.5",
                   "--param", "texture_search=11"])
    assert status == 0
    captured = capsys.readouterr()
    assert "5/5 images" in captured.err and "wrote" in captured.out
    table = pd.read_csv(out / "characteristics.csv")
    assert json.loads((out / "characteristics.provenance.json").read_text())["config"]["mode"] == "reference"
    assert len(table) == 6 * 7 and table["images"].eq(5).all()
    doc = json.loads((out / "characteristics.json").read_text())
    assert doc["config"]["mode"] == "reference" and doc["dataset"]["split"] == "test" and doc["dataset"]["limit"] == 5
    assert doc["config"]["params"]["contrast"] == 0.5 and doc["config"]["params"]["texture_search"] == 11
    assert len(doc["model"]["checkpoint_sha256"]) == 64 and "redundant_pairs" in doc


def test_explain_reports_a_missing_dataset(tiny_checkpoint: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["explain", str(tiny_checkpoint), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])
    assert status == 2
    assert "protoviz explain: error:" in capsys.readouterr().err


def test_explain_reports_train_test_agreement(tiny_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out), "--quiet",
                 "--agreement-split", "train", "--device", "cpu"]) == 0
    doc = json.loads((out / "characteristics.json").read_text())
    assert doc["agreement"]["split"] == "train" and doc["agreement"]["images"] == 8
    assert len(doc["agreement"]["spearman"]) == 6


def test_explain_rejects_a_bad_parameter(tiny_checkpoint: Path, tiny_data: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("blur=2", "contrast=high", "texture_search=8"):
        assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(tmp_path),
                     "--param", bad]) == 2
    assert "--param" in capsys.readouterr().err


def test_explain_as_published_is_recorded_and_needs_the_reference_mode(tiny_checkpoint: Path, tiny_data: Path,
                                                                         tmp_path: Path) -> None:
    out = tmp_path / "published"
    assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out), "--quiet",
                 "--as", "published", "--limit", "3", "--device", "cpu"]) == 0
    doc = json.loads((out / "characteristics.json").read_text())
    assert doc["config"]["mode"] == "reference" and doc["config"]["path"] == "published"
    assert doc["dataset"]["path"] == "published" and doc["dataset"]["published"]["steps"]
    assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out), "--quiet",
                 "--as", "published", "--mode", "fast"]) == 2
    clean = tmp_path / "clean"
    assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(clean), "--quiet",
                 "--mode", "reference", "--as", "clean", "--limit", "3", "--device", "cpu"]) == 0
    other = json.loads((clean / "characteristics.json").read_text())
    assert other["config"]["path"] == "clean" and other["dataset"]["path"] == "clean"
    published_hue = [p["importance"]["hue"] for p in doc["prototypes"]]
    clean_hue = [p["importance"]["hue"] for p in other["prototypes"]]
    assert published_hue != clean_hue  # the JPEG round trips move the numbers


def test_explain_takes_registered_combined_and_floor_characteristics(tiny_checkpoint: Path, tiny_data: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "extra"
    assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out), "--quiet",
                 "--characteristics", "hue,blur,hue+shape", "--floors", "--limit", "2", "--device", "cpu"]) == 0
    doc = json.loads((out / "characteristics.json").read_text())
    assert doc["characteristics"] == ["hue", "blur", "hue+shape", "floor:hue", "floor:blur", "floor:hue+shape"]
    assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out), "--quiet",
                 "--characteristics", "hue,sharpness"]) == 2


def test_explain_records_each_characteristic_in_provenance(tiny_checkpoint: Path, tiny_data: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "prov"
    assert main(["explain", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(out), "--quiet",
                 "--as", "published", "--limit", "2", "--device", "cpu"]) == 0
    run = json.loads((out / "characteristics.json").read_text())["modifications"]
    assert run["path"] == "published" and run["characteristics"]["hue"]["parameters"] == {"hue": 0.1}
    assert run["characteristics"]["texture"]["stored_as"] == "JPEG quality 95 via OpenCV"
    assert run["characteristics"]["contrast"]["stored_as"] == "JPEG quality 75 via Pillow"
