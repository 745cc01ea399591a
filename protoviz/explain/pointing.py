"""Pointing game: does a prototype's heatmap point at the object? (CaBRNet's relevance analysis.)

For each image and its ``top`` most similar prototypes, the prototype's heatmap A (any registered method
of :mod:`protoviz.heatmaps.methods`, min-max normalised to [0, 1] as CaBRNet's visualiser does; signed
maps clamped at 0) is compared with the object's segmentation S (the dataset's part masks > 0):

- mask relevance (Xu-Darme et al., XAI4CV 2023; CaBRNet ``pg_mask_relevance``): keep the pixels whose
  value is above the value at position ``int(N * (1 - area))`` of the sorted map (about the top
  ``area`` of the image, 10% by default); relevance = share of those pixels inside S (0 if none);
- energy relevance (Wang et al. 2020, Score-CAM; CaBRNet ``pg_energy_relevance``): sum of A inside S
  divided by the sum of A (0 if A sums to 0).

1 means all the evidence is on the object. Needs a dataset with masks (the synthetic set has them).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from protoviz.data.datasets import ImageDataset, iterate_batches
from protoviz.errors import ConfigError, DatasetError
from protoviz.models.base import PrototypeModel
from protoviz.passes import Needs
from protoviz.progress import Progress

if TYPE_CHECKING:
    from protoviz.passes import PassBatch, PassStep


def normalise(maps: Tensor, signed: bool = False) -> Tensor:
    """(N, H, W) -> min-max normalised to [0, 1] per map (a constant map gives 0); signed maps are
    clamped at 0 first."""
    maps = maps.clamp_min(0.0) if signed else maps
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(1e-12), torch.zeros_like(maps))


def mask_relevance(attribution: Tensor, segmentation: Tensor, area: float = 0.1) -> Tensor:
    """(N, H, W) attributions and (N, H, W) bool object masks -> (N,) share of the top-``area`` pixels
    (strictly above the sorted value at ``int(H W (1 - area))``) that lie on the object."""
    if not 0.0 < area <= 1.0:
        raise ConfigError(f"pointing game: area must be in (0, 1], got {area}")
    flat = attribution.flatten(1)
    position = min(int(flat.shape[1] * (1.0 - area)), flat.shape[1] - 1)
    threshold = flat.sort(dim=1).values[:, position]
    target = flat > threshold[:, None]
    selected = target.sum(dim=1)
    inside = (target & segmentation.flatten(1)).sum(dim=1)
    return torch.where(selected > 0, inside.double() / selected.clamp_min(1).double(), torch.zeros_like(inside.double()))


def energy_relevance(attribution: Tensor, segmentation: Tensor) -> Tensor:
    """(N, H, W) attributions and bool masks -> (N,) sum of the attribution on the object / its total."""
    flat = attribution.flatten(1).double()
    total = flat.sum(dim=1)
    inside = (flat * segmentation.flatten(1)).sum(dim=1)
    return torch.where(total != 0, inside / torch.where(total != 0, total, torch.ones_like(total)), torch.zeros_like(total))


@dataclass(frozen=True)
class PointingGame:
    """Rows (image, prototype, rank, similarity, mask relevance, energy relevance) and their means.

    per_prototype: prototype -> (rows, mean mask relevance, mean energy relevance), for prototypes that
    were among some image's top ones."""

    method: str
    area: float
    top: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mask_relevance(self) -> float:
        return float(np.mean([r["mask_relevance"] for r in self.rows])) if self.rows else float("nan")

    @property
    def energy_relevance(self) -> float:
        return float(np.mean([r["energy_relevance"] for r in self.rows])) if self.rows else float("nan")

    @property
    def per_prototype(self) -> dict[int, tuple[int, float, float]]:
        grouped: dict[int, list[dict[str, Any]]] = {}
        for row in self.rows:
            grouped.setdefault(int(row["prototype"]), []).append(row)
        return {j: (len(rs), float(np.mean([r["mask_relevance"] for r in rs])),
                    float(np.mean([r["energy_relevance"] for r in rs]))) for j, rs in sorted(grouped.items())}

    def as_record(self) -> dict[str, Any]:
        return {"method": self.method, "area": self.area, "top": self.top, "rows": len(self.rows),
                "mask_relevance": self.mask_relevance, "energy_relevance": self.energy_relevance,
                "per_prototype": {str(j): {"rows": n, "mask_relevance": m, "energy_relevance": e}
                                  for j, (n, m, e) in self.per_prototype.items()}}


@dataclass(frozen=True)
class TopHeatmaps:
    """A pass probe: each image's ``top`` most similar prototypes (by max similarity) and their ``method``
    heatmaps. compute -> (values (B, K), indices (B, K), heatmaps (B, K, H, W))."""

    method: str
    top: int

    @property
    def key(self) -> tuple[str, str, int]:
        return ("top_heatmaps", self.method, self.top)

    def compute(self, batch: PassBatch, model: PrototypeModel, maps: Tensor,
                pooled: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from protoviz.heatmaps.methods import compute_heatmaps

        best = pooled.topk(self.top, dim=1)  # (B, K)
        with torch.enable_grad():
            heatmaps = compute_heatmaps(self.method, model, batch.images, best.indices)  # (B, K, H, W)
        return best.values, best.indices, heatmaps


class PointingAccumulator:
    """The pointing game as a consumer of :func:`protoviz.passes.run_pass`: one row per (image, rank),
    keyed by dataset position (``image`` holds it until :meth:`named` puts the dataset's image ids in).
    Shards merge by concatenating rows; :meth:`result` orders them by (position, rank)."""

    def __init__(self, method: str = "upsample", top: int = 1, area: float = 0.1) -> None:
        from protoviz.heatmaps.methods import get_method

        if not 0.0 < area <= 1.0:
            raise ConfigError(f"pointing game: area must be in (0, 1], got {area}")
        self.signed = get_method(method).signed
        self.method, self.top, self.area = method, top, area
        self.probe = TopHeatmaps(method, top)
        self.rows: list[dict[str, Any]] = []

    @property
    def needs(self) -> Needs:
        return Needs(probes=(self.probe,))

    def update(self, step: PassStep) -> None:
        if step.masks is None:
            raise DatasetError("the pointing game needs object masks in every batch")
        values, indices, heatmaps = step.probe(self.probe)
        attribution = normalise(heatmaps.flatten(0, 1).float(), self.signed)  # (B K, H, W)
        objects = (step.masks > 0).to(attribution.device).repeat_interleave(self.top, dim=0)
        masked = mask_relevance(attribution, objects, self.area).view(-1, self.top).cpu()
        energy = energy_relevance(attribution, objects).view(-1, self.top).cpu()
        values, indices = values.cpu(), indices.cpu()
        for row, position in enumerate(step.indices.tolist()):
            for rank in range(self.top):
                self.rows.append({"image": int(position), "prototype": int(indices[row, rank]), "rank": rank + 1,
                                  "similarity": float(values[row, rank]),
                                  "mask_relevance": float(masked[row, rank]),
                                  "energy_relevance": float(energy[row, rank])})

    def merge(self, other: PointingAccumulator) -> None:
        self.rows.extend(other.rows)

    def result(self) -> PointingGame:
        rows = sorted(self.rows, key=lambda r: (r["image"], r["rank"]))
        return PointingGame(self.method, self.area, self.top, rows)


def named(game: PointingGame, dataset: ImageDataset) -> PointingGame:
    """``game`` with each row's dataset position replaced by the dataset's image id."""
    rows = [{**row, "image": dataset.records[int(row["image"])].image_id} for row in game.rows]
    return PointingGame(game.method, game.area, game.top, rows)


def check_pointing(model: PrototypeModel, dataset: ImageDataset, top: int) -> None:
    """Refuse a dataset without object masks or a ``top`` outside [1, P], with the reason."""
    if not dataset.has_masks:
        raise DatasetError(f"{dataset.root}: the pointing game needs object segmentations (per-pixel masks); "
                           "this dataset has none (the synthetic set has them)")
    if top < 1 or top > model.num_prototypes:
        raise ConfigError(f"pointing game: top must be within [1, {model.num_prototypes}], got {top}")


def pointing_game(model: PrototypeModel, dataset: ImageDataset, method: str = "upsample", top: int = 1,
                  area: float = 0.1, batch_size: int = 16, indices: Sequence[int] | None = None, *,
                  progress: Progress | None = None, lock: AbstractContextManager[Any] | None = None,
                  stage: str = "pointing game") -> PointingGame:
    """The pointing game over ``dataset`` (or its ``indices``): each image's ``top`` most similar
    prototypes (by max similarity), their ``method`` heatmaps against the object mask, in one pass of
    :func:`protoviz.passes.run_pass`. ``progress(done, total, stage)`` after each batch; ``lock`` held
    around each batch's model calls."""
    from protoviz.passes import run_pass

    check_pointing(model, dataset, top)
    accumulator = PointingAccumulator(method, top, area)
    chosen = list(range(len(dataset))) if indices is None else list(indices)
    batches = iterate_batches(dataset, model.input_spec, batch_size, chosen, with_masks=True)
    run_pass(model, batches, [accumulator], progress, total=len(chosen), stage=stage, lock=lock)
    return named(accumulator.result(), dataset)
