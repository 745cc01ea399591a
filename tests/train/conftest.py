"""Small training data for the training tests: an in-memory colour-patch set and a tiny synthetic CUB folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.train.data import ImageTensors


def colour_patches(per_class: int = 12, size: int = 64, seed: int = 0) -> ImageTensors:
    """3 classes: a red, green or blue 24x24 square at a random place on grey noise. (3*per_class, 3, H, W)."""
    generator = torch.Generator().manual_seed(seed)
    n = 3 * per_class
    images = (torch.rand(n, 3, size, size, generator=generator) * 60 + 90).to(torch.uint8)
    labels = torch.arange(n) % 3
    corners = torch.randint(0, size - 24, (n, 2), generator=generator)
    for i in range(n):  # building fixture data, not model work
        y, x = corners[i].tolist()
        images[i, :, y:y + 24, x:x + 24] = 20
        images[i, int(labels[i]), y:y + 24, x:x + 24] = 230
    boxes = torch.stack([corners[:, 1], corners[:, 0], corners[:, 1] + 24, corners[:, 0] + 24], dim=1).float()
    return ImageTensors(images, labels, tuple(str(i + 1) for i in range(n)), ("red", "green", "blue"), boxes)


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and a shared machine is not oversubscribed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def patches() -> ImageTensors:
    return colour_patches()


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic birds at 64 px, 3 train and 1 test image per class (8 classes)."""
    root = tmp_path_factory.mktemp("synthetic")
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=3, n_test_per_class=1, seed=3))
