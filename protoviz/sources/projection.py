"""Re-project: each prototype's nearest latent patch on a training set, as its family's push would pick it.

One streaming pass over an ImageFolder (in torchvision's order) with :class:`ProjectionAccumulator`, a
pass consumer (``update(step)`` / ``merge(other)`` / ``result()``) that keeps, per prototype, the best
distance so far, its image and its cell: memory is (P,) whatever the number of images. The weights are
never changed. For a pushed model the nearest patch is the one the push chose, at distance ~0 (L2
families). Then :func:`~protoviz.sources.describe.describe_sources` draws the boxes and thumbnails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from protoviz.compare.scan import PassStep, run_pass
from protoviz.data.datasets import iterate_batches
from protoviz.errors import ConfigError, DatasetError
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.progress import Progress
from protoviz.sources.criteria import PushRule, push_rule
from protoviz.sources.describe import Pick, describe_sources
from protoviz.sources.folder import FolderImages, imagefolder_images


@dataclass(frozen=True)
class ProjectionResult:
    """Per prototype: distance (P,) (inf where no eligible image), image (P,) dataset position (-1 where
    none) and cell (P, 2) (row, col), all on the CPU."""

    distance: Tensor
    image: Tensor
    cell: Tensor

    @property
    def found(self) -> Tensor:
        """(P,) bool: prototypes that got a source."""
        return self.image >= 0


class ProjectionAccumulator:
    """Pass consumer: the nearest eligible latent patch of every prototype seen so far.

    Eligibility follows the family's push (:mod:`protoviz.sources.criteria`); the step's labels must be
    the model's class indices (required unless every class is eligible). Ties keep the earliest image,
    then the first cell, as the originals do.
    """

    def __init__(self, model: PrototypeModel, rule: PushRule | None = None):
        self.model = model
        self.rule = rule or push_rule(model)
        self.needs_latent = self.rule.needs_latent
        self.allowed = self.rule.eligible(model).to(model.device)  # (P, C) bool
        self.everyone = bool(self.allowed.all())
        count = model.num_prototypes
        self.distance = torch.full((count,), float("inf"), device=model.device)
        self.image = torch.full((count,), -1, dtype=torch.long, device=model.device)
        self.flat = torch.zeros(count, dtype=torch.long, device=model.device)
        self.map_size: tuple[int, int] | None = None

    def update(self, step: PassStep) -> None:
        distances = self.rule.step_distances(self.model, step).float()  # (B, P, h, w)
        _batch, count, height, width = distances.shape
        self.map_size = (height, width)
        if not self.everyone:
            if step.labels is None:
                raise DatasetError("projecting with class constraints needs the images' class labels")
            labels = step.labels.long()
            if bool((labels < 0).any()) or bool((labels >= self.allowed.shape[1]).any()):
                raise DatasetError(f"image labels must be model classes 0..{self.allowed.shape[1] - 1}")
            eligible = self.allowed[:, labels].t()  # (B, P)
            distances = distances.masked_fill(~eligible[:, :, None, None], float("inf"))
        if self.rule.column_major:
            distances = distances.transpose(2, 3)
        flat = distances.permute(1, 0, 2, 3).reshape(count, -1)  # (P, B*h*w) in (image, cell) order
        values, where = flat.min(dim=1)
        cells = height * width
        images = step.indices.to(self.image.device)[where // cells]
        self._take(values, images, where % cells)

    def merge(self, other: ProjectionAccumulator) -> None:
        """Fold in another shard's state (ties: lower image index, then lower cell)."""
        earlier = (other.image < self.image) | ((other.image == self.image) & (other.flat < self.flat))
        better = (other.image >= 0) & ((other.distance < self.distance)
                                       | ((other.distance == self.distance) & (earlier | (self.image < 0))))
        self.distance = torch.where(better, other.distance, self.distance)
        self.image = torch.where(better, other.image, self.image)
        self.flat = torch.where(better, other.flat, self.flat)
        self.map_size = self.map_size or other.map_size

    def _take(self, values: Tensor, images: Tensor, flat: Tensor) -> None:
        better = values < self.distance  # strict: an earlier batch keeps a tie
        self.distance = torch.where(better, values, self.distance)
        self.image = torch.where(better, images, self.image)
        self.flat = torch.where(better, flat, self.flat)

    def result(self) -> ProjectionResult:
        if self.map_size is None:
            raise ConfigError("the projection saw no images")
        height, width = self.map_size
        flat = self.flat.cpu()
        if self.rule.column_major:  # flat indexes the transposed (w, h) map
            cell = torch.stack([flat % height, flat // height], dim=1)
        else:
            cell = torch.stack([flat // width, flat % width], dim=1)
        return ProjectionResult(self.distance.cpu(), self.image.cpu(), cell)


@dataclass(frozen=True)
class Projection:
    """What :func:`project_sources` found: the sources (None where a prototype had no eligible image),
    the raw per-prototype result and the image listing they index into."""

    sources: list[PrototypeSource | None]
    result: ProjectionResult
    images: FolderImages


def project_sources(model: PrototypeModel, data_dir: str | Path, batch_size: int = 32,
                    progress: Progress | None = None) -> Projection:
    """Find every prototype's nearest eligible training patch in the ImageFolder ``data_dir``.

    The model's class c must be the folder's c-th class (sorted folder names), as when the model was
    trained on it. Does not modify the model; set ``model.prototype_sources = projection.sources`` to use them.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    rule = push_rule(model)
    listing = imagefolder_images(data_dir)
    accumulator = ProjectionAccumulator(model, rule)
    if not accumulator.everyone and len(listing.classes) != model.num_classes:
        raise DatasetError(f"{data_dir} has {len(listing.classes)} class folders but the model has "
                           f"{model.num_classes} classes; the projection needs the folder the model was trained on")
    dataset = listing.dataset()

    def report(done: int, total: int | None) -> None:
        if progress is not None:
            progress(done, total, "projection")

    run_pass(model, iterate_batches(dataset, model.input_spec, batch_size), [accumulator], total=len(dataset),
             progress=report)
    result = accumulator.result()
    picks = [Pick(prototype=j, image_index=int(result.image[j]), location=(int(result.cell[j, 0]), int(result.cell[j, 1])))
             for j in range(model.num_prototypes) if int(result.image[j]) >= 0]
    described = describe_sources(model, dataset, picks, batch_size, progress=progress)
    return Projection(described.sources, result, listing)
