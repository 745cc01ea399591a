"""Batches from tensors in memory, and the per-image predictions a compare pass keeps.

The pass itself is :func:`protoviz.passes.run_pass`; top-k patches (:mod:`protoviz.compare.topk`),
activation profiles (:mod:`protoviz.compare.matching`) and the predictions below are its consumers.
Memory stays constant in the number of images except for what is kept per image on purpose
(profiles (P, N), predictions (N, k)).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from protoviz.errors import ConfigError
from protoviz.passes import Needs, PassStep


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


class PredictionAccumulator:
    """Keeps each image's top-``k`` classes and scores, and its label (a pass consumer): (N, k), (N, k), (N,),
    in dataset order whatever order (or rank) the images came in.

    The labels are the pass's (model classes through its label map); ``ignore_labels`` when they cannot
    be matched to the model's classes at all (the accuracy is then None).
    """

    needs = Needs()

    def __init__(self, k: int = 5, ignore_labels: bool = False):
        self.k = k
        self.ignore_labels = ignore_labels
        self._indices: list[Tensor] = []
        self._classes: list[Tensor] = []
        self._scores: list[Tensor] = []
        self._labels: list[Tensor] = []

    def update(self, step: PassStep) -> None:
        k = min(self.k, step.logits.shape[1])
        scores, classes = step.logits.topk(k, dim=1)
        self._indices.append(step.indices.cpu())
        self._classes.append(classes.cpu())
        self._scores.append(scores.cpu())
        if step.labels is not None and not self.ignore_labels:
            self._labels.append(step.labels.cpu())

    def merge(self, other: PredictionAccumulator) -> None:
        self._indices += other._indices
        self._classes += other._classes
        self._scores += other._scores
        self._labels += other._labels

    def _ordered(self, parts: list[Tensor]) -> Tensor:
        order = torch.cat(self._indices).argsort(stable=True)
        return torch.cat(parts)[order]

    @property
    def top_classes(self) -> Tensor:
        """(N, k) class indices, best first."""
        return self._ordered(self._classes)

    @property
    def top_scores(self) -> Tensor:
        """(N, k) the model's scores of those classes."""
        return self._ordered(self._scores)

    def accuracy(self) -> float | None:
        """Top-1 accuracy over the pass in percent, or None when the stream had no usable labels."""
        if not self._labels or len(self._labels) != len(self._indices):
            return None
        labels = self._ordered(self._labels)
        return float(100 * (self.top_classes[:, 0] == labels).double().mean())

    def result(self) -> float | None:
        return self.accuracy()
