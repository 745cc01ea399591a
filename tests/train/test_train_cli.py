"""`protoviz train` end to end on a tiny synthetic dataset, and the shipped demo models' records."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoviz.cli import main
from protoviz.models import load_model
from protoviz.train.demo import DEMOS, MAX_BYTES

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "models"


def test_train_cli_writes_a_loadable_pushed_model(tiny_synthetic: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.safetensors"
    argv = ["train", "--data", str(tiny_synthetic), "--out", str(out), "--config", "quick", "--backbone",
            "tiny_cnn_small", "--image-size", "64", "--prototype-dim", "8", "--prototypes-per-class", "1",
            "--epochs", "1", "1", "1", "--pretrain-epochs", "1", "--device", "cpu", "--seed", "3", "--quiet"]
    assert main(argv) == 0
    assert "test accuracy" in capsys.readouterr().out
    model = load_model(out)
    assert model.num_classes == 8 and model.num_prototypes == 8
    assert all(s is not None and s.image_thumbnail is not None for s in model.prototype_sources)
    assert 0.0 <= model.metadata["test_accuracy"] <= 1.0 and model.metadata["seed"] == 3
    assert model.metadata["train_config"]["pretrain_epochs"] == 1


def test_train_cli_reports_bad_input_without_traceback(tiny_synthetic: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tiny_synthetic), "--out", str(tmp_path / "m.pt")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert main(["train", "--data", str(tiny_synthetic), "--out", str(tmp_path / "m.safetensors"),
                 "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


@pytest.mark.parametrize("spec", DEMOS, ids=[d.filename for d in DEMOS])
def test_shipped_demo_model_records_its_accuracy(spec) -> None:
    path = ASSETS / spec.filename
    if not path.exists():
        pytest.skip(f"{path} is not there; `make demo-models` creates it")
    assert path.stat().st_size <= MAX_BYTES
    model = load_model(path)
    assert model.metadata["test_accuracy"] >= 0.9
    assert model.metadata["train_config"]["seed"] == model.metadata["seed"]
    assert model.backbone_name == spec.backbone and model.similarity_kind == spec.similarity
    assert model.input_spec.image_size == (128, 128)
    assert all(s is not None for s in model.prototype_sources)
