"""The cached synthetic dataset is generated once and reused."""

from __future__ import annotations

from pathlib import Path

from protoviz.data.demo import synthetic_dataset
from protoviz.data.synthetic import SyntheticConfig


def test_generated_once_then_reused(tmp_path: Path) -> None:
    config = SyntheticConfig(image_size=48, n_train_per_class=1, n_test_per_class=1)
    first = synthetic_dataset(config, root=tmp_path)
    stamp = (first / "images.txt").stat().st_mtime_ns
    second = synthetic_dataset(config, root=tmp_path)
    assert first == second and (second / "images.txt").stat().st_mtime_ns == stamp
    other = synthetic_dataset(SyntheticConfig(image_size=48, n_train_per_class=1, n_test_per_class=1, seed=1), root=tmp_path)
    assert other != first and (other / "images.txt").exists()


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROTOVIZ_CACHE_DIR", str(tmp_path / "cache"))
    folder = synthetic_dataset(SyntheticConfig(image_size=48, n_train_per_class=1, n_test_per_class=1))
    assert folder.parent == tmp_path / "cache"
