"""Region stability: the annotation-free stability of high-activation regions under noise.

For a prototype p and an image x of p's classes, the region R(x) is the pixels at or above the 95th
percentile of p's map upsampled to the input (:mod:`protoviz.metrics.regions`). IoU_p(x) =
|R(x) & R(x~)| / |R(x) | R(x~)| for the noisy copy x~ (the same seeded noise as stability);
region_stability_p = mean over x; the score is 100 * the mean over prototypes that have images, with
the mean and spread over noise draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from protoviz.metrics.details import stored_details
from protoviz.metrics.noise import NoiseView
from protoviz.metrics.parts import select_pairs
from protoviz.metrics.regions import high_activation_masks, mask_iou
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import PERCENT, Score
from protoviz.passes import Needs, PassStep

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun


@stored_details("region_stability")
@dataclass(frozen=True)
class RegionStability:
    """``score`` (%, mean over draws), ``spread`` (std over draws), ``per_draw`` scores, and per prototype
    ``iou`` (P,) mean IoU (NaN without images), ``n_images`` (P,)."""

    score: float
    spread: float
    per_draw: list[float]
    iou: np.ndarray
    n_images: np.ndarray
    percentile: float


class RegionStabilityAccumulator:
    """Sums each prototype's IoU over the images of its classes, batch by batch (a pass consumer).

    relevance: (P, C) bool, the classes each prototype is evaluated on.
    """

    def __init__(self, relevance: Tensor, noise: NoiseView, input_size: tuple[int, int], percentile: float = 95.0):
        self.relevance, self.noise, self.input_size, self.percentile = relevance, noise, input_size, percentile
        num_prototypes, device = relevance.shape[0], relevance.device
        self.iou_sum = torch.zeros(noise.draws, num_prototypes, dtype=torch.float64, device=device)
        self.count = torch.zeros(num_prototypes, dtype=torch.int64, device=device)

    @property
    def needs(self) -> Needs:
        return Needs(views=(self.noise,))

    def update(self, step: PassStep) -> None:
        if step.labels is None:
            return
        image_idx, proto_idx = select_pairs(step.labels, self.relevance)
        self.add(image_idx, proto_idx, step.maps, step.view(self.noise))

    def add(self, image_idx: Tensor, proto_idx: Tensor, clean_maps: Tensor, noisy_maps: Sequence[Tensor]) -> None:
        """Pairs (n,) into maps (B, P, h, w): add the IoU of each pair's clean and noisy regions."""
        clean = high_activation_masks(clean_maps[image_idx, proto_idx], self.input_size, self.percentile)
        self.count.index_add_(0, proto_idx, torch.ones_like(proto_idx))
        for draw, noisy in enumerate(noisy_maps):
            masks = high_activation_masks(noisy[image_idx, proto_idx], self.input_size, self.percentile)
            self.iou_sum[draw].index_add_(0, proto_idx, mask_iou(clean, masks))

    def merge(self, other: RegionStabilityAccumulator) -> None:
        self.iou_sum += other.iou_sum.to(self.iou_sum.device)
        self.count += other.count.to(self.count.device)

    def result(self) -> RegionStability:
        count = self.count.cpu().numpy()
        per_proto = self.iou_sum.cpu().numpy() / np.maximum(count, 1)[None, :]
        has = count > 0
        per_draw = [float(100 * d[has].mean()) if has.any() else float("nan") for d in per_proto]
        iou = np.where(has, per_proto.mean(axis=0), np.nan)
        return RegionStability(float(np.mean(per_draw)), float(np.std(per_draw)), per_draw, iou, count,
                               self.percentile)


@register_metric("region_stability", unit=PERCENT, needs={"labels", "noise"}, fallback_for="stability",
                 description="IoU of the 95th-percentile region with and without noise (needs no parts)")
class RegionStabilityMetric(Metric):
    def consumer(self, run: EvaluationRun) -> RegionStabilityAccumulator:
        return RegionStabilityAccumulator(run.relevance, run.noise_view(), run.model.input_spec.image_size)

    def score(self, run: EvaluationRun, state: RegionStability) -> Score:
        rows = tuple({"region_iou": float(v)} for v in state.iou)
        return Score("region_stability", state.score, PERCENT, spread=state.spread, rows=rows, details=state)
