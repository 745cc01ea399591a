"""One batched pass of a model over a stream of images, shared by every per-dataset summary.

A pass feeds each batch's similarity maps (and, when asked, its latents and predictions) to the
accumulators that need them: top-k patches per prototype, activation profiles for matching, and
accuracy. Memory stays constant in the number of images except for what is kept per image on
purpose (profiles (P, N), predictions (N,)).

A batch is anything with ``images`` (B, 3, H, W) normalised for the model and, optionally, ``unit``
(B, 3, H, W) in [0, 1], ``labels`` (B,) and ``indices`` (B,) (dataset positions) — e.g. the
``Batch`` of ``protoviz.data.datasets.iterate_batches`` or :class:`TensorBatch` below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from protoviz.data.transforms import denormalize
from protoviz.errors import ConfigError, ModelError
from protoviz.models.base import PrototypeModel

ProgressFn = Callable[[int, int | None], None]
"""Called after each batch with (images done, total images or None)."""


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


class BatchConsumer(Protocol):
    """Receives every batch of a pass; see :func:`run_pass`."""

    needs_latent: bool

    def update(self, step: PassStep) -> None: ...


@dataclass(frozen=True)
class PassStep:
    """What one batch of a pass gives its consumers (all on the model's device).

    maps: (B, P, h, w) similarity maps; logits: (B, C); latent: (B, D, h, w) or None;
    unit: (B, 3, H, W) in [0, 1]; labels: (B,) or None; indices: (B,) dataset positions;
    offset: how many images came before this batch in the pass.
    """

    maps: Tensor
    logits: Tensor
    latent: Tensor | None
    unit: Tensor
    labels: Tensor | None
    indices: Tensor
    offset: int


def forward_maps(model: PrototypeModel, x: Tensor, with_latent: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Similarity maps (B, P, h, w), logits (B, C) and, if asked and available, latents (B, D, h, w).

    Families that expose ``set_latents``/``similarity_from_latents`` share one backbone pass between
    latents and maps; others run ``latent`` separately. Latents are None for a family that has none
    or whose latent grid differs from its similarity maps (the latent view then says so).
    """
    latent = None
    if with_latent and hasattr(model, "set_latents") and hasattr(model, "similarity_from_latents"):
        per_set = model.set_latents(x)
        maps = model.similarity_from_latents(per_set)
        latent = torch.cat(list(per_set.values()), dim=1)
    else:
        maps = model.similarity_maps(x)
        if with_latent:
            try:
                latent = model.latent(x)
            except ModelError:
                latent = None
    if latent is not None and latent.shape[-2:] != maps.shape[-2:]:
        latent = None
    if model.logits_from_pooled:
        logits = model.logits_from_similarities(maps, maps.flatten(2).amax(dim=2))
    else:  # e.g. ProtoPool with soft slots: the logits are not a function of the maps
        logits = model(x).logits
    return maps, logits, latent


def run_pass(model: PrototypeModel, batches: Iterable[Any], consumers: list[BatchConsumer],
             total: int | None = None, progress: ProgressFn | None = None) -> int:
    """Run ``model`` once over ``batches``, handing every batch to each consumer; returns the image count."""
    device = model.device
    with_latent = any(c.needs_latent for c in consumers)
    done = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                step = _step(model, batch, device, with_latent, done)
                for consumer in consumers:
                    consumer.update(step)
                done += step.maps.shape[0]
                if progress is not None:
                    progress(done, total)
    finally:
        model.train(was_training)
    if done == 0:
        raise ConfigError("the image stream was empty: nothing to scan")
    return done


def _step(model: PrototypeModel, batch: Any, device: torch.device, with_latent: bool, offset: int) -> PassStep:
    images = batch.images.to(device)
    maps, logits, latent = forward_maps(model, images, with_latent)
    unit = getattr(batch, "unit", None)
    unit = denormalize(images, model.input_spec).clamp(0, 1) if unit is None else unit.to(device)
    indices = getattr(batch, "indices", None)
    count = images.shape[0]
    indices = torch.arange(offset, offset + count) if indices is None else torch.as_tensor(indices)
    labels = getattr(batch, "labels", None)
    return PassStep(maps=maps, logits=logits, latent=latent, unit=unit,
                    labels=None if labels is None else torch.as_tensor(labels).to(device),
                    indices=indices.to(device=device, dtype=torch.long), offset=offset)


class PredictionAccumulator:
    """Keeps each image's top-``k`` classes and scores, and its label: (N, k), (N, k), (N,).

    ``label_map`` (C_data,) turns dataset labels into model class indices when they are numbered differently;
    ``ignore_labels`` when they cannot be matched at all (the accuracy is then None).
    """

    needs_latent = False

    def __init__(self, k: int = 5, label_map: Tensor | None = None, ignore_labels: bool = False):
        self.k = k
        self.label_map = label_map
        self.ignore_labels = ignore_labels
        self._classes: list[Tensor] = []
        self._scores: list[Tensor] = []
        self._labels: list[Tensor] = []

    def update(self, step: PassStep) -> None:
        k = min(self.k, step.logits.shape[1])
        scores, classes = step.logits.topk(k, dim=1)
        self._classes.append(classes.cpu())
        self._scores.append(scores.cpu())
        if step.labels is not None and not self.ignore_labels:
            labels = step.labels.cpu()
            self._labels.append(labels if self.label_map is None else self.label_map.cpu()[labels])

    @property
    def top_classes(self) -> Tensor:
        """(N, k) class indices, best first."""
        return torch.cat(self._classes)

    @property
    def top_scores(self) -> Tensor:
        """(N, k) the model's scores of those classes."""
        return torch.cat(self._scores)

    def accuracy(self) -> float | None:
        """Top-1 accuracy over the pass, or None when the stream had no labels."""
        if not self._labels:
            return None
        labels = torch.cat(self._labels)
        return float((self.top_classes[:, 0] == labels).double().mean())
