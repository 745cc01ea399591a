"""Deletion and insertion curves of a prototype's similarity, in the order of its own heatmap.

For prototype p and image x (normalised, (3, H, W)):
- heatmap = p's similarity map upsampled to (H, W) (OpenCV bicubic); pixels are ranked by decreasing
  heatmap value (ties: row-major order);
- at step s = 0..S (fraction t = s / S), the top round(t * H * W) pixels are
  - deleted: replaced by the baseline (0 in normalised space, the dataset mean colour), or
  - inserted: copied from x into an all-baseline image;
- the curve value is p's pooled similarity (max over its map) on that image.
AUC = trapezoid area under the curve over t in [0, 1]; the relative AUC divides by p's similarity on
the clean image (reported where that is positive). A faithful heatmap gives a low deletion AUC (the
similarity drops as soon as the top pixels go) and a high insertion AUC.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from protoviz.heatmaps.upsample import upsample_maps
from protoviz.metrics.details import stored_details
from protoviz.metrics.parts import select_pairs
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import RATIO, Score
from protoviz.models.base import PrototypeModel
from protoviz.passes import Needs
from protoviz.progress import Progress

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun
    from protoviz.passes import PassBatch, PassStep

STAGE = "deletion/insertion curves"


@stored_details("deletion_curves")
@dataclass(frozen=True)
class DeletionCurves:
    """Per evaluated (image, prototype) pair: ``deletion``/``insertion`` (n, S + 1) curves, their AUCs
    (n,), the clean similarity (n,), and the pairs' ``images`` (dataset indices) and ``prototypes``."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    clean: np.ndarray
    images: np.ndarray
    prototypes: np.ndarray

    def per_prototype(self, num_prototypes: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean relative deletion and insertion AUC per prototype (P,), NaN where none was evaluated."""
        rel_del, rel_ins = self.relative()
        out = np.full((2, num_prototypes), np.nan)
        for row, values in enumerate((rel_del, rel_ins)):
            sums = np.bincount(self.prototypes, np.nan_to_num(values), minlength=num_prototypes)
            counts = np.bincount(self.prototypes, ~np.isnan(values), minlength=num_prototypes)
            out[row] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return out[0], out[1]

    def relative(self) -> tuple[np.ndarray, np.ndarray]:
        """AUCs divided by the clean similarity, NaN where it is not positive."""
        scale = np.where(self.clean > 0, self.clean, np.nan)
        return self.deletion_auc / scale, self.insertion_auc / scale


def step_masks(heatmaps: Tensor, steps: int) -> Tensor:
    """(n, H, W) heatmaps -> (n, S + 1, H, W) bool: pixels among the top round(t * H * W) at t = s / S."""
    n, height, width = heatmaps.shape
    order = torch.sort(heatmaps.flatten(1), dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(height * width, device=heatmaps.device).expand(n, -1))
    counts = torch.round(torch.linspace(0, 1, steps + 1, dtype=torch.float64) * height * width).long()
    return (ranks[:, None, :] < counts.to(heatmaps.device)[None, :, None]).view(n, steps + 1, height, width)


@torch.inference_mode()
def deletion_insertion(model: PrototypeModel, images: Tensor, prototypes: Tensor, indices: Sequence[int],
                       steps: int = 10, batch_size: int = 32, clean_maps: Tensor | None = None,
                       progress: Progress | None = None,
                       lock: AbstractContextManager[Any] | None = None) -> DeletionCurves:
    """Curves for pairs (images[i], prototypes[i]): images (n, 3, H, W) normalised on the model's device,
    prototypes (n,) indices, indices (n,) their dataset positions. ``clean_maps`` (n, h, w) saves a pass.
    ``progress(pairs done, 2 n, stage)`` after each chunk (deletion, then insertion); ``lock`` is held
    around each forward."""
    height, width = images.shape[-2:]
    guard = lock if lock is not None else nullcontext()
    if clean_maps is None:
        clean_maps = _maps_of(model, images, prototypes, batch_size, guard)
    masks = step_masks(upsample_maps(clean_maps, (height, width)), steps)  # (n, S + 1, H, W)
    per_chunk = max(1, batch_size // (steps + 1))  # pairs whose S + 1 step images fill one batch
    curves, done, total = [], 0, 2 * images.shape[0]
    for keep_original in (False, True):  # deletion: masked -> baseline; insertion: masked -> original
        rows = []
        for start in range(0, images.shape[0], per_chunk):
            on = masks[start:start + per_chunk, :, None]  # (m, S + 1, 1, H, W)
            original = images[start:start + per_chunk, None]  # (m, 1, 3, H, W)
            stack = torch.where(on, original, 0.0) if keep_original else torch.where(on, 0.0, original)
            protos = prototypes[start:start + per_chunk].repeat_interleave(steps + 1)
            scores = _maps_of(model, stack.flatten(0, 1), protos, batch_size, guard).flatten(1).amax(1)
            rows.append(scores.view(-1, steps + 1))
            done += int(on.shape[0])
            if progress is not None:
                progress(done, total, STAGE)
        curves.append(torch.cat(rows).double().cpu().numpy())
    fractions = np.linspace(0.0, 1.0, steps + 1)
    deletion, insertion = curves
    clean = clean_maps.flatten(1).amax(1).double().cpu().numpy()
    return DeletionCurves(fractions, deletion, insertion, np.trapezoid(deletion, fractions, axis=1),
                          np.trapezoid(insertion, fractions, axis=1), clean, np.asarray(indices),
                          prototypes.cpu().numpy())


def _maps_of(model: PrototypeModel, images: Tensor, prototypes: Tensor, batch_size: int,
             lock: AbstractContextManager[Any]) -> Tensor:
    """Each image's map of its own prototype: (n, 3, H, W), (n,) -> (n, h, w)."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        with lock:
            maps = model.similarity_maps(images[start:start + batch_size])
        out.append(maps[torch.arange(maps.shape[0], device=maps.device), prototypes[start:start + batch_size]])
    return torch.cat(out)


def chosen_images(labels: np.ndarray, indices: Sequence[int], per_class: int) -> list[int]:
    """The first ``per_class`` evaluated images of each class (labels (N,) of the whole dataset), sorted."""
    positions = np.asarray(indices)
    picked = labels[positions]
    return sorted(int(i) for c in np.unique(picked) for i in positions[picked == c][:per_class])


def empty_curves(steps: int) -> DeletionCurves:
    """Curves of no pair (a shard or a run whose chosen images have no relevant prototype)."""
    none = np.zeros((0, steps + 1))
    return DeletionCurves(np.linspace(0.0, 1.0, steps + 1), none, none.copy(), np.zeros(0), np.zeros(0),
                          np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def joined(parts: Sequence[DeletionCurves], steps: int) -> DeletionCurves:
    """Curves of several batches or shards as one, ordered by image (stable: each image's prototypes
    keep their order)."""
    if not parts:
        return empty_curves(steps)
    images = np.concatenate([c.images for c in parts])
    order = np.argsort(images, kind="stable")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(c, name) for c in parts])[order]

    return DeletionCurves(parts[0].fractions, cat("deletion"), cat("insertion"), cat("deletion_auc"),
                          cat("insertion_auc"), cat("clean"), images[order], cat("prototypes"))


@dataclass(frozen=True, eq=False)
class DeletionProbe:
    """A pass probe: the curves of the batch's chosen images (dataset positions ``chosen``) with each of
    their class's relevant prototypes, from the clean maps of the shared forward. label_map (C_data,)
    dataset -> model class; relevance (P, C) bool. compute -> :class:`DeletionCurves` or None."""

    chosen: frozenset[int]
    label_map: Tensor
    relevance: Tensor
    steps: int
    batch_size: int

    @property
    def key(self) -> Hashable:
        return ("deletion", self.steps, self.batch_size, tuple(sorted(self.chosen)))

    def compute(self, batch: PassBatch, model: PrototypeModel, maps: Tensor, pooled: Tensor) -> DeletionCurves | None:
        rows = [i for i, position in enumerate(batch.indices.tolist()) if position in self.chosen]
        if not rows or batch.labels is None:
            return None
        picked = torch.tensor(rows, device=maps.device)
        labels = self.label_map.to(maps.device)[batch.labels.to(maps.device)[picked]]
        image_idx, proto_idx = select_pairs(labels, self.relevance.to(maps.device))
        if image_idx.numel() == 0:
            return None
        images = batch.images[picked][image_idx]
        clean = maps[picked][image_idx, proto_idx]  # (n, h, w): each pair's own map from the shared forward
        positions = batch.indices.cpu()[picked.cpu()][image_idx.cpu()].tolist()
        return deletion_insertion(model, images, proto_idx, positions, self.steps, self.batch_size, clean_maps=clean)


class DeletionAccumulator:
    """The curves of every batch's :class:`DeletionProbe`, merged across shards."""

    def __init__(self, probe: DeletionProbe) -> None:
        self.probe = probe
        self.parts: list[DeletionCurves] = []

    @property
    def needs(self) -> Needs:
        return Needs(probes=(self.probe,))

    def update(self, step: PassStep) -> None:
        curves = step.probe(self.probe)
        if curves is not None:
            self.parts.append(curves)

    def merge(self, other: DeletionAccumulator) -> None:
        self.parts.extend(other.parts)

    def result(self) -> DeletionCurves:
        return joined(self.parts, self.probe.steps)


@register_metric("deletion", unit=RATIO, needs={"labels", "model"},
                 description="deletion/insertion AUC of a prototype's similarity in its own heatmap order")
class DeletionMetric(Metric):
    """Curves for each prototype on the first ``deletion_images_per_class`` evaluated images of its
    classes, computed in the shared pass (a probe on the batches holding those images, under the model's
    lock; a sharded run splits them across ranks)."""

    def consumer(self, run: EvaluationRun) -> DeletionAccumulator:
        config = run.config
        chosen = chosen_images(run.dataset.labels, run.indices, config.deletion_images_per_class)
        return DeletionAccumulator(DeletionProbe(frozenset(chosen), run.label_map.cpu(), run.relevance.cpu(),
                                                 config.deletion_steps, config.batch_size))

    def score(self, run: EvaluationRun, state: DeletionCurves) -> Score:
        curves = state
        rel_del, rel_ins = curves.per_prototype(run.relevance.shape[0])
        deletion = float(np.nanmean(rel_del)) if np.isfinite(rel_del).any() else float("nan")
        insertion = float(np.nanmean(rel_ins)) if np.isfinite(rel_ins).any() else float("nan")
        rows = tuple({"deletion_auc": float(d), "insertion_auc": float(i)} for d, i in zip(rel_del, rel_ins))
        return Score("deletion", deletion, RATIO, column="deletion_auc", extra={"insertion_auc": insertion},
                     rows=rows, details=curves)
