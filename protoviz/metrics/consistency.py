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

Only per-prototype counts are kept ((P, K) integers), so memory does not grow with the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from protoviz.data.datasets import Batch
from protoviz.errors import DatasetError
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.parts import (
    merge_matrix,
    merge_parts,
    part_hits,
    peak_locations,
    prototype_classes,
    scaled_half_size,
    select_pairs,
)
from protoviz.metrics.stability import add_noise
from protoviz.models.base import PrototypeModel


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

    def dominant_part_names(self) -> list[str]:
        """Name of each prototype's most frequent part ('-' where it never hit a part)."""
        return [self.part_names[k] if f > 0 else "-" for k, f in zip(self.dominant_part, self.dominant_frequency)]


class PartAccumulator:
    """Per-prototype part-hit counts over batches; ``result()`` gives :class:`PartScores`."""

    def __init__(self, relevance: Tensor, part_names: Sequence[str], config: PartMetricConfig,
                 input_size: tuple[int, int], draws: int):
        self.relevance, self.config, self.input_size = relevance, config, input_size
        self.half = scaled_half_size(config.half_size, input_size, config.reference_size)
        self.merge, names = merge_matrix(part_names) if config.merge_left_right else (None, tuple(part_names))
        self.part_names = tuple(names)
        num_prototypes, num_parts, device = relevance.shape[0], len(self.part_names), relevance.device
        self.hits = torch.zeros(num_prototypes, num_parts, dtype=torch.int64, device=device)
        self.visible = torch.zeros_like(self.hits)
        self.images = torch.zeros(num_prototypes, dtype=torch.int64, device=device)
        self.stable = torch.zeros(draws, num_prototypes, dtype=torch.int64, device=device)

    def pairs(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(image, prototype) index pairs of a batch with model-class labels (B,)."""
        return select_pairs(labels, self.relevance)

    def vectors(self, maps: Tensor, parts: Tensor, image_idx: Tensor, proto_idx: Tensor) -> Tensor:
        """o_p(x) for each pair: maps (B, P, h, w), parts (B, K, 3) -> (n, M) bool."""
        peaks = peak_locations(maps[image_idx, proto_idx], self.input_size)
        return merge_parts(part_hits(peaks, parts[image_idx], self.half, self.input_size), self.merge)

    def update(self, labels: Tensor, parts: Tensor, clean_maps: Tensor, noisy_maps: Sequence[Tensor] = ()) -> None:
        """labels (B,) model classes, parts (B, K, 3), maps (B, P, h, w) on one device."""
        image_idx, proto_idx = self.pairs(labels)
        clean = self.vectors(clean_maps, parts, image_idx, proto_idx)
        visible = merge_parts(parts[image_idx, :, 2] > 0, self.merge)
        self.hits.index_add_(0, proto_idx, clean.long())
        self.visible.index_add_(0, proto_idx, visible.long())
        self.images.index_add_(0, proto_idx, torch.ones_like(proto_idx))
        for draw, noisy in enumerate(noisy_maps):
            same = (self.vectors(noisy, parts, image_idx, proto_idx) == clean).all(dim=1)
            self.stable[draw].index_add_(0, proto_idx, same.long())

    def result(self, with_stability: bool) -> PartScores:
        hits, visible = self.hits.cpu().numpy(), self.visible.cpu().numpy()
        images = self.images.cpu().numpy()
        freq = hits / np.maximum(1, visible)
        dominant = freq.argmax(axis=1) if freq.shape[1] else np.zeros(len(freq), dtype=np.int64)
        best = freq.max(axis=1) if freq.shape[1] else np.zeros(len(freq))
        consistent = best >= self.config.mu
        stability = spread = None
        per_draw: list[float] = []
        stable_fraction = None
        if with_stability:
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


@torch.inference_mode()
def part_scores(model: PrototypeModel, batches: Iterable[Batch], part_names: Sequence[str],
                config: PartMetricConfig | None = None, stability: bool = True,
                label_map: Tensor | None = None, progress: Callable[[int], None] | None = None) -> PartScores:
    """Consistency (and stability) of ``model`` over a stream of batches with parts.

    One clean forward pass per batch, plus ``config.noise_draws`` noisy passes when ``stability``.
    ``label_map`` maps dataset labels to model classes (default: identity). ``progress(n)`` is called
    with the number of images of each finished batch.
    """
    config = config or PartMetricConfig()
    device = model.device
    accumulator = PartAccumulator(prototype_classes(model).to(device), part_names, config,
                                  model.input_spec.image_size, config.noise_draws if stability else 0)
    for batch in batches:
        if batch.parts is None:
            raise DatasetError("consistency needs part annotations; this batch has none")
        images = batch.images.to(device)
        labels = batch.labels.to(device) if label_map is None else label_map.to(device)[batch.labels.to(device)]
        clean = model.similarity_maps(images)
        noisy = [model.similarity_maps(add_noise(images, batch.indices, config.seed, d, config.noise_std,
                                                 config.noise_clip)) for d in range(accumulator.stable.shape[0])]
        accumulator.update(labels, batch.parts.to(device), clean, noisy)
        if progress is not None:
            progress(len(batch.indices))
    return accumulator.result(with_stability=stability)


def scores_table(scores: PartScores, class_names: Sequence[str], relevance: np.ndarray) -> list[dict[str, Any]]:
    """One row per prototype: classes, images, dominant part and frequency, consistent, stable fraction."""
    names = scores.dominant_part_names()
    rows = []
    for p in range(len(scores.consistent)):
        row: dict[str, Any] = {
            "prototype": p, "classes": ";".join(class_names[c] for c in np.flatnonzero(relevance[p])),
            "images": int(scores.n_images[p]), "dominant_part": names[p],
            "dominant_frequency": float(scores.dominant_frequency[p]), "consistent": bool(scores.consistent[p]),
        }
        if scores.stable_fraction is not None:
            row["stable_fraction"] = float(scores.stable_fraction[p])
        row.update({f"f[{name}]": float(v) for name, v in zip(scores.part_names, scores.frequencies[p])})
        rows.append(row)
    return rows
