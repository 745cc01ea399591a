"""Batches from tensors in memory (tests, uploaded images) for :func:`protoviz.passes.run_pass`.

A compare pass's consumers are top-k patches (:mod:`protoviz.compare.topk`), activation profiles
(:mod:`protoviz.compare.matching`) and the accuracy counts of :mod:`protoviz.metrics.accuracy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from protoviz.errors import ConfigError


@dataclass(frozen=True)
class TensorBatch:
    """A batch built from tensors already in memory (tests, uploaded images).

    images: (B, 3, H, W) normalised; unit: (B, 3, H, W) in [0, 1]; labels: (B,) or None; indices: (B,).
    """

    images: Tensor
    indices: Tensor
    unit: Tensor | None = None
    labels: Tensor | None = None


def tensor_batches(images: Tensor, batch_size: int, labels: Tensor | None = None,
                   unit: Tensor | None = None) -> Iterator[TensorBatch]:
    """Slice normalised images (N, 3, H, W) (and their labels (N,), unit images) into batches."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    for start in range(0, images.shape[0], batch_size):
        stop = min(start + batch_size, images.shape[0])
        yield TensorBatch(images=images[start:stop], indices=torch.arange(start, stop),
                          unit=None if unit is None else unit[start:stop],
                          labels=None if labels is None else labels[start:stop])
