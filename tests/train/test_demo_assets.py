"""The demo script's sample images and README, on a tiny model standing in for a demo checkpoint."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from protoviz.data.synthetic import SyntheticConfig
from protoviz.models.checkpoint import save_model
from protoviz.train.data import ImageTensors
from protoviz.train.demo import DEMOS, write_readme, write_samples
from tests.conftest import make_tiny_model


def test_samples_take_each_class_in_turn(patches: ImageTensors, tmp_path: Path) -> None:
    paths = write_samples(patches, tmp_path / "samples", count=4)
    names = [p.name for p in paths]
    assert [n.split("_")[0] for n in names] == ["red", "green", "blue", "red"]
    assert Image.open(paths[0]).size == (64, 64)


def test_readme_reports_each_model_present(patches: ImageTensors, tmp_path: Path) -> None:
    write_samples(patches, tmp_path / "samples", count=2)
    extra = {"test_accuracy": 0.93, "test_accuracy_cropped_to_box": 0.9, "fresh_accuracy": 0.91,
             "train_seconds": 120.0, "train_device": "cpu (1 threads)", "seed": 4, "command": "python -m x",
             "made": "2026-01-01T00:00:00Z"}
    save_model(make_tiny_model(), tmp_path / "models" / DEMOS[0].filename, extra=extra)
    text = write_readme(tmp_path, SyntheticConfig()).read_text()
    assert f"`models/{DEMOS[0].filename}`" in text and "| 0.930 | 0.900 | 0.910 | 2.0 min |" in text
    assert DEMOS[1].filename not in text and "python -m x" in text and "2 test images" in text
