"""Tiny ImageFolders of random pictures for the source tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.data.transforms import normalize, to_unit_tensor
from protoviz.models.base import PrototypeModel


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and a shared machine is not oversubscribed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_image_folder(root: Path, classes: tuple[str, ...] = ("a", "b", "c"), per_class: int = 4, size: int = 64,
                      seed: int = 0, duplicate_first: bool = False) -> Path:
    """``root/<class>/<k>.png`` random RGB pictures; with ``duplicate_first`` the first two of class 0 are equal."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            if duplicate_first and name == classes[0] and k == 1:
                pixels = np.asarray(Image.open(root / name / "0.png"))
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


def folder_tensors(root: Path, model: PrototypeModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[Path]]:
    """(unit (N, 3, H, W), normalised, labels (N,), files) of an ImageFolder in torchvision's order."""
    from protoviz.sources.folder import imagefolder_images

    listing = imagefolder_images(root)
    files = [root / r for r in listing.relative]
    unit = to_unit_tensor([Image.open(f).convert("RGB") for f in files], model.input_spec)
    return unit, normalize(unit, model.input_spec), torch.tensor(listing.labels), files


def lively(model: PrototypeModel, gain: float = 100.0) -> PrototypeModel:
    """Scale the backbone's last BatchNorm so a random tiny model's latents differ between patches
    (at initialisation they are nearly constant, and every distance ties)."""
    norms = [m for m in model.features.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        norms[-1].weight.mul_(gain)
    return model
