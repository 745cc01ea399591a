"""Object overlap: the share of a prototype's high-activation region that lies on the object.

For a prototype p and each image of p's classes, the share of the region (>= the 95th percentile of the
upsampled map, :mod:`protoviz.metrics.regions`) on the object: part mask > 0 where the dataset has
masks (the synthetic set), else inside the object box of an uncropped image. Per prototype the mean
over images; the score is 100 * the mean over prototypes with images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from protoviz.errors import ConfigError
from protoviz.metrics.details import stored_details
from protoviz.metrics.parts import select_pairs
from protoviz.metrics.regions import box_masks, high_activation_masks
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import PERCENT, Score
from protoviz.passes import Needs, PassStep

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun


@stored_details("object_overlap")
@dataclass(frozen=True)
class ObjectOverlap:
    """score (%); per prototype ``share`` (P,) mean share of the region on the object (NaN without images)."""

    score: float
    share: np.ndarray
    n_images: np.ndarray


class ObjectOverlapAccumulator:
    """Sums the on-object share of each prototype's region over its classes' images (a pass consumer).

    relevance: (P, C) bool, the classes each prototype is evaluated on.
    """

    needs = Needs()

    def __init__(self, relevance: Tensor, input_size: tuple[int, int]):
        self.relevance, self.input_size = relevance, input_size
        num_prototypes, device = relevance.shape[0], relevance.device
        self.total = torch.zeros(num_prototypes, dtype=torch.float64, device=device)
        self.count = torch.zeros(num_prototypes, dtype=torch.int64, device=device)

    def update(self, step: PassStep) -> None:
        if step.labels is None:
            return
        image_idx, proto_idx = select_pairs(step.labels, self.relevance)
        self.add(image_idx, proto_idx, step.maps, objects(step, self.input_size))

    def add(self, image_idx: Tensor, proto_idx: Tensor, maps: Tensor, on_object: Tensor) -> None:
        """Pairs (n,) into maps (B, P, h, w); on_object (B, H, W) bool, True on the object."""
        regions = high_activation_masks(maps[image_idx, proto_idx], self.input_size)
        inside = (regions & on_object[image_idx]).flatten(1).sum(1).double()
        share = inside / regions.flatten(1).sum(1).clamp(min=1).double()
        self.total.index_add_(0, proto_idx, share)
        self.count.index_add_(0, proto_idx, torch.ones_like(proto_idx))

    def merge(self, other: ObjectOverlapAccumulator) -> None:
        self.total += other.total.to(self.total.device)
        self.count += other.count.to(self.count.device)

    def result(self) -> ObjectOverlap:
        count = self.count.cpu().numpy()
        share = np.where(count > 0, self.total.cpu().numpy() / np.maximum(count, 1), np.nan)
        score = float(100 * np.nanmean(share)) if (count > 0).any() else float("nan")
        return ObjectOverlap(score, share, count)


def objects(step: PassStep, input_size: tuple[int, int]) -> Tensor:
    """(B, H, W) bool object pixels of a batch: the part mask where there is one, else the box."""
    if step.masks is not None:
        return step.masks > 0
    if step.boxes is None:
        raise ConfigError("object_overlap: this batch has neither part masks nor boxes")
    return box_masks(step.boxes, input_size)


@register_metric("object_overlap", unit=PERCENT, needs={"labels", "objects"},
                 description="share of the 95th-percentile region on the object (needs part masks)")
class ObjectOverlapMetric(Metric):
    def consumer(self, run: EvaluationRun) -> ObjectOverlapAccumulator:
        return ObjectOverlapAccumulator(run.relevance, run.model.input_spec.image_size)

    def score(self, run: EvaluationRun, state: ObjectOverlap) -> Score:
        rows = tuple({"object_overlap": float(v)} for v in state.share)
        return Score("object_overlap", state.score, PERCENT, rows=rows, details=state)
