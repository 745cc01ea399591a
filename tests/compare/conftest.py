"""Fixtures of the compare tests: a tiny synthetic dataset and two tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CUB-layout synthetic set of 64x64 images, 2 test images per class."""
    root = tmp_path_factory.mktemp("compare-data") / "synthetic"
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2))


@pytest.fixture
def two_checkpoints(tmp_path: Path) -> tuple[Path, Path]:
    """Two tiny models with as many classes as the tiny dataset (8), so their classes match by index."""
    first = save_model(make_tiny_model(seed=0, classes=8, per_class=1), tmp_path / "first.safetensors")
    second = save_model(make_tiny_model(seed=1, similarity="cosine", classes=8, per_class=1),
                        tmp_path / "second.safetensors")
    return first, second
