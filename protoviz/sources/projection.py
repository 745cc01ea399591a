"""Re-project: each prototype's nearest latent patch on a training set, as its family's push would pick it.

One streaming pass over an ImageFolder (in torchvision's order) with :class:`ProjectionAccumulator`, a
pass consumer (``update(step)`` / ``merge(other)`` / ``result()``) that keeps, per prototype, the best
distance so far, its image and its cell: memory is (P,) whatever the number of images. The weights are
never changed. For a pushed model the nearest patch is the one the push chose, at distance ~0 (L2
families). Then :func:`~protoviz.sources.describe.describe_sources` draws the boxes and thumbnails.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from protoviz.data.datasets import iterate_batches
from protoviz.errors import ConfigError, DatasetError
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.passes import Needs, PassStep, run_pass
from protoviz.progress import Progress
from protoviz.sources.criteria import RULES, PushRule, push_rule
from protoviz.sources.describe import Pick, describe_sources
from protoviz.sources.folder import FolderImages, imagefolder_images

if TYPE_CHECKING:
    from protoviz.distributed import ShardGroup


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

    The model is needed only by :meth:`update` (the distances of a step need its prototypes); it is not
    part of the state: a pickled accumulator (sent to rank 0 by :mod:`protoviz.distributed`) holds the
    family name, the (P, C) eligibility and the per-prototype bests, and merges without a model.
    """

    def __init__(self, model: PrototypeModel, rule: PushRule | None = None):
        self.model: PrototypeModel | None = model
        rule = rule or push_rule(model)
        self.family = rule.family
        self.column_major = rule.column_major
        self.needs = Needs(latent=rule.needs_latent)
        self.allowed = rule.eligible(model).to(model.device)  # (P, C) bool
        self.everyone = bool(self.allowed.all())
        count = model.num_prototypes
        self.distance = torch.full((count,), float("inf"), device=model.device)
        self.image = torch.full((count,), -1, dtype=torch.long, device=model.device)
        self.flat = torch.zeros(count, dtype=torch.long, device=model.device)
        self.map_size: tuple[int, int] | None = None

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k != "model"}

    def __setstate__(self, state: dict[str, object]) -> None:
        vars(self).update(state)
        self.model = None

    def update(self, step: PassStep) -> None:
        if self.model is None:
            raise ConfigError("this projection state was received from another rank; it can merge, not update")
        distances = RULES[self.family].step_distances(self.model, step).float()  # (B, P, h, w)
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
        if self.column_major:
            distances = distances.transpose(2, 3)
        flat = distances.permute(1, 0, 2, 3).reshape(count, -1)  # (P, B*h*w) in (image, cell) order
        values, where = flat.min(dim=1)
        cells = height * width
        images = step.indices.to(self.image.device)[where // cells]
        self._take(values, images, where % cells)

    def merge(self, other: ProjectionAccumulator) -> None:
        """Fold in another shard's state (ties: lower image index, then lower cell)."""
        other = _on(other, self.distance.device)
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
        if self.column_major:  # flat indexes the transposed (w, h) map
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
                    progress: Progress | None = None, *, lock: AbstractContextManager[Any] | None = None) -> Projection:
    """Find every prototype's nearest eligible training patch in the ImageFolder ``data_dir``.

    The model's class c must be the folder's c-th class (sorted folder names), as when the model was
    trained on it. Does not modify the model; set ``model.prototype_sources = projection.sources`` to use them.
    ``lock`` (e.g. a shared model's :class:`~protoviz.locking.ModelLock`) is held around each batch's forward.
    """
    projection = project_shard(model, data_dir, batch_size, progress, lock=lock)
    assert projection is not None  # a single process is its own rank 0
    return projection


def project_shard(model: PrototypeModel, data_dir: str | Path, batch_size: int = 32,
                  progress: Progress | None = None, *, lock: AbstractContextManager[Any] | None = None,
                  group: ShardGroup | None = None) -> Projection | None:
    """:func:`project_sources` as one rank of a torchrun job: this rank's share of the batches
    (:meth:`~protoviz.distributed.ShardGroup.take`), the accumulators merged on rank 0, which then
    describes the sources and returns them (the other ranks return None). Every image is forwarded in the
    same batch as in one process, so the result is the same."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    rule = push_rule(model)
    listing = imagefolder_images(data_dir)
    accumulator = ProjectionAccumulator(model, rule)
    if not accumulator.everyone and len(listing.classes) != model.num_classes:
        raise DatasetError(f"{data_dir} has {len(listing.classes)} class folders but the model has "
                           f"{model.num_classes} classes; the projection needs the folder the model was trained on")
    dataset = listing.dataset()
    order = list(range(len(dataset)))
    mine = order if group is None else group.take(order, batch_size)
    run_pass(model, iterate_batches(dataset, model.input_spec, batch_size, mine), [accumulator], progress,
             total=len(mine), stage="projection", lock=lock, group=group)
    if group is not None and not group.is_main:
        return None
    result = accumulator.result()
    picks = [Pick(prototype=j, image_index=int(result.image[j]), location=(int(result.cell[j, 0]), int(result.cell[j, 1])))
             for j in range(model.num_prototypes) if int(result.image[j]) >= 0]
    described = describe_sources(model, dataset, picks, batch_size, progress=progress, lock=lock)
    return Projection(described.sources, result, listing)


def _on(other: ProjectionAccumulator, device: torch.device) -> ProjectionAccumulator:
    """``other``'s state tensors on ``device`` (a shard's state arrives on the CPU)."""
    for name in ("distance", "image", "flat"):
        setattr(other, name, getattr(other, name).to(device))
    return other
