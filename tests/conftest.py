"""Shared fixtures: tiny random models and checkpoints, built in seconds on a CPU; every test gets its
own empty workspace folder (PROTOVIZ_HOME), so nothing is read from or written to the user's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protoviz.models.base import InputSpec
from protoviz.models.checkpoint import save_model
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig


def make_tiny_model(similarity: str = "log", sets: tuple[str, ...] = ("prototypes",), seed: int = 0,
                    image_size: int = 64, classes: int = 3, per_class: int = 2) -> ProtoPNet:
    """A randomly initialised tiny ProtoPNet in eval mode (stride 16: 4x4 maps at 64x64)."""
    torch.manual_seed(seed)
    config = ProtoPNetConfig(
        class_names=tuple(f"class_{i}" for i in range(classes)), backbone="tiny_cnn_small",
        prototypes_per_class=per_class, prototype_dim=8, similarity=similarity, prototype_sets=sets,
        input=InputSpec(image_size=(image_size, image_size)),
    )
    return ProtoPNet(config).eval()


@pytest.fixture(autouse=True)
def protoviz_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PROTOVIZ_HOME per test (the workspace of kept results and models)."""
    home = tmp_path_factory.mktemp("protoviz_home")
    monkeypatch.setenv("PROTOVIZ_HOME", str(home))
    return home


@pytest.fixture
def tiny_model() -> ProtoPNet:
    return make_tiny_model()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return save_model(make_tiny_model(), tmp_path / "tiny.safetensors")
