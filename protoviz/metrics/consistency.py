"""Huang et al.'s consistency and stability scores, batched, sharing one clean forward pass.

For prototype p and an image x of p's classes (ground-truth label, whatever the prediction), o_p(x) is
the (K,) part-hit vector of :mod:`protoviz.metrics.parts` (visible parts inside the region around the
map's first maximum).

- Consistency: f_p[k] = sum_x o_p(x)[k] / max(1, #images of p's classes where part k is visible);
  p is consistent when max_k f_p[k] >= mu; consistency = 100 * #consistent / P (all P prototypes, so a
  prototype without images counts as inconsistent).
- Stability: stab_p = (1 / |I_p|) sum_x 1[o_p(x) == o_p(x~)] for the noisy copy x~ (all K entries equal;
  two all-zero vectors are equal); stability = 100 * mean_p stab_p over prototypes with images (the
  reference has no prototype without images). With several draws: mean and std over draws.

With merge_left_right, 'left X' and 'right X' become one part X: hit when either side is hit, visible
when either side is visible (so f_p[X] counts images, not sides).

Only per-prototype counts are kept ((P, K) integers), so memory does not grow with the dataset, and the
counts of shards of a pass add up exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from protoviz.errors import DatasetError
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.details import stored_details
from protoviz.metrics.noise import NoiseView
from protoviz.metrics.parts import (
    merge_matrix,
    merge_parts,
    part_hits,
    peak_locations,
    scaled_half_size,
    select_pairs,
)
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import PERCENT, Score
from protoviz.passes import Needs, PassStep

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun


@stored_details("part_scores")
@dataclass(frozen=True)
class PartScores:
    """Consistency (and stability when noise passes ran) with their per-prototype results.

    frequencies: (P, M) f_p. dominant_part: (P,) argmax_k f_p[k] (first maximum). dominant_frequency:
    (P,). consistent: (P,) bool. stable_fraction: (P,) mean over draws of stab_p (NaN without images),
    None without noise passes. n_images: (P,) images each prototype was evaluated on.
    """

    consistency: float
    stability: float | None
    stability_spread: float | None
    stability_per_draw: list[float]
    part_names: tuple[str, ...]
    frequencies: np.ndarray
    dominant_part: np.ndarray
    dominant_frequency: np.ndarray
    consistent: np.ndarray
    stable_fraction: np.ndarray | None
    n_images: np.ndarray
    half_size_pixels: tuple[int, int]
    config: PartMetricConfig = field(default_factory=PartMetricConfig)

    @property
    def num_prototypes(self) -> int:
        return len(self.consistent)

    def dominant_part_names(self) -> list[str]:
        """Name of each prototype's most frequent part ('-' where it never hit a part)."""
        return [self.part_names[k] if f > 0 else "-" for k, f in zip(self.dominant_part, self.dominant_frequency)]


class PartAccumulator:
    """Per-prototype part-hit counts over batches (a pass consumer); ``result()`` gives :class:`PartScores`.

    relevance: (P, C) bool, the classes each prototype is evaluated on. noise: the noisy copies whose
    part vectors are compared with the clean ones (stability), or None (consistency only).
    """

    def __init__(self, relevance: Tensor, part_names: Sequence[str], config: PartMetricConfig,
                 input_size: tuple[int, int], noise: NoiseView | None = None):
        self.relevance, self.config, self.input_size, self.noise = relevance, config, input_size, noise
        self.half = scaled_half_size(config.half_size, input_size, config.reference_size)
        self.merge_matrix: Tensor | None
        self.merge_matrix, names = merge_matrix(part_names) if config.merge_left_right else (None, tuple(part_names))
        self.part_names = tuple(names)
        num_prototypes, num_parts, device = relevance.shape[0], len(self.part_names), relevance.device
        self.hits = torch.zeros(num_prototypes, num_parts, dtype=torch.int64, device=device)
        self.visible = torch.zeros_like(self.hits)
        self.images = torch.zeros(num_prototypes, dtype=torch.int64, device=device)
        draws = noise.draws if noise is not None else 0
        self.stable = torch.zeros(draws, num_prototypes, dtype=torch.int64, device=device)

    @property
    def needs(self) -> Needs:
        return Needs(views=(self.noise,) if self.noise is not None else ())

    def vectors(self, maps: Tensor, parts: Tensor, image_idx: Tensor, proto_idx: Tensor) -> Tensor:
        """o_p(x) for each pair: maps (B, P, h, w), parts (B, K, 3) -> (n, M) bool."""
        peaks = peak_locations(maps[image_idx, proto_idx], self.input_size)
        return merge_parts(part_hits(peaks, parts[image_idx], self.half, self.input_size), self.merge_matrix)

    def update(self, step: PassStep) -> None:
        if step.parts is None or step.labels is None:
            raise DatasetError("consistency needs part annotations and labels; this batch has none")
        noisy = step.view(self.noise) if self.noise is not None else ()
        self.add(step.labels, step.parts, step.maps, noisy)

    def add(self, labels: Tensor, parts: Tensor, clean_maps: Tensor, noisy_maps: Sequence[Tensor] = ()) -> None:
        """labels (B,) model classes, parts (B, K, 3), maps (B, P, h, w) on one device."""
        image_idx, proto_idx = select_pairs(labels, self.relevance)
        clean = self.vectors(clean_maps, parts, image_idx, proto_idx)
        visible = merge_parts(parts[image_idx, :, 2] > 0, self.merge_matrix)
        self.hits.index_add_(0, proto_idx, clean.long())
        self.visible.index_add_(0, proto_idx, visible.long())
        self.images.index_add_(0, proto_idx, torch.ones_like(proto_idx))
        for draw, noisy in enumerate(noisy_maps):
            same = (self.vectors(noisy, parts, image_idx, proto_idx) == clean).all(dim=1)
            self.stable[draw].index_add_(0, proto_idx, same.long())

    def merge(self, other: PartAccumulator) -> None:
        for name in ("hits", "visible", "images", "stable"):
            mine = getattr(self, name)
            mine += getattr(other, name).to(mine.device)

    def result(self) -> PartScores:
        hits, visible = self.hits.cpu().numpy(), self.visible.cpu().numpy()
        images = self.images.cpu().numpy()
        freq = hits / np.maximum(1, visible)
        dominant = freq.argmax(axis=1) if freq.shape[1] else np.zeros(len(freq), dtype=np.int64)
        best = freq.max(axis=1) if freq.shape[1] else np.zeros(len(freq))
        consistent = best >= self.config.mu
        stability = spread = None
        per_draw: list[float] = []
        stable_fraction = None
        if self.noise is not None:
            has = images > 0
            fractions = self.stable.cpu().numpy() / np.maximum(images, 1)[None, :]
            per_draw = [float(100 * f[has].mean()) if has.any() else float("nan") for f in fractions]
            stability, spread = float(np.mean(per_draw)), float(np.std(per_draw))
            stable_fraction = np.where(has, fractions.mean(axis=0), np.nan)
        return PartScores(float(100 * consistent.sum() / max(1, len(consistent))), stability, spread, per_draw,
                          self.part_names, freq, dominant, best, consistent, stable_fraction, images, self.half,
                          self.config)


def class_mapping(model_classes: Sequence[str], dataset_classes: Sequence[str]) -> tuple[Tensor, str]:
    """Dataset label -> model class index (C_data,), and how the classes were matched.

    Same names: by name. Same count, other names: by index (the model may name classes differently).
    """
    if tuple(model_classes) == tuple(dataset_classes):
        return torch.arange(len(model_classes)), "identical class names"
    if set(dataset_classes) <= set(model_classes):
        index = {name: i for i, name in enumerate(model_classes)}
        return torch.tensor([index[n] for n in dataset_classes]), "matched by class name"
    if len(model_classes) == len(dataset_classes):
        return torch.arange(len(model_classes)), "class names differ; matched by index"
    raise DatasetError(f"the dataset has {len(dataset_classes)} classes ({', '.join(dataset_classes[:3])}, ...) and "
                       f"the model {len(model_classes)} ({', '.join(model_classes[:3])}, ...); they cannot be matched")


def part_consumer(run: EvaluationRun) -> PartAccumulator:
    """The one part-count consumer consistency and stability share in an evaluation (with the noisy
    copies when stability was asked for)."""
    def make() -> PartAccumulator:
        noise = run.noise_view() if run.wants("stability") else None
        return PartAccumulator(run.relevance, run.dataset.part_names or (), run.config.parts,
                               run.model.input_spec.image_size, noise)
    return run.shared("parts", make)


def part_rows(scores: PartScores) -> tuple[dict[str, Any], ...]:
    """Per prototype: images, dominant part and frequency, consistent, stable fraction, f[part] columns."""
    names = scores.dominant_part_names()
    rows = []
    for p in range(scores.num_prototypes):
        row: dict[str, Any] = {"images": int(scores.n_images[p]), "dominant_part": names[p],
                               "dominant_frequency": float(scores.dominant_frequency[p]),
                               "consistent": bool(scores.consistent[p])}
        if scores.stable_fraction is not None:
            row["stable_fraction"] = float(scores.stable_fraction[p])
        row.update({f"f[{name}]": float(v) for name, v in zip(scores.part_names, scores.frequencies[p])})
        rows.append(row)
    return tuple(rows)


@register_metric("consistency", unit=PERCENT, needs={"labels", "parts"}, default=True,
                 description="Huang et al.: share of prototypes whose region holds one part in >= mu of their "
                             "class's images")
class ConsistencyMetric(Metric):
    def consumer(self, run: EvaluationRun) -> PartAccumulator:
        return part_consumer(run)

    def score(self, run: EvaluationRun, state: PartScores) -> Score:
        return Score("consistency", state.consistency, PERCENT, rows=part_rows(state), details=state)
