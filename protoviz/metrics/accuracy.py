"""Top-1 accuracy and class-balanced accuracy, accumulated over the batches of a pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from protoviz.errors import DatasetError
from protoviz.metrics.details import stored_details
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import PERCENT, Score
from protoviz.passes import Needs, PassStep

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun


@stored_details("accuracy")
@dataclass(frozen=True)
class Accuracy:
    """top1: share of images whose highest class score is the label (%); per_class (C,) in [0, 1]
    (NaN for classes without images); balanced: the mean of per_class over classes with images (%)."""

    top1: float
    balanced: float
    per_class: np.ndarray
    images: int


class AccuracyAccumulator:
    """Counts correct top-1 predictions per class (model class indices); a pass consumer."""

    needs = Needs()

    def __init__(self, num_classes: int, device: torch.device):
        self.correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.total = torch.zeros(num_classes, dtype=torch.int64, device=device)

    def update(self, step: PassStep) -> None:
        """step.logits (B, C), step.labels (B,) model class indices."""
        if step.labels is None:
            return
        if step.labels.numel() and int(step.labels.max()) >= self.total.shape[0]:
            raise DatasetError(f"label {int(step.labels.max())} is out of range for a model with "
                               f"{self.total.shape[0]} classes")
        hit = (step.logits.argmax(dim=1) == step.labels).long()
        self.correct.index_add_(0, step.labels, hit)
        self.total.index_add_(0, step.labels, torch.ones_like(step.labels))

    def merge(self, other: AccuracyAccumulator) -> None:
        self.correct += other.correct.to(self.correct.device)
        self.total += other.total.to(self.total.device)

    def result(self) -> Accuracy:
        correct, total = self.correct.cpu().numpy(), self.total.cpu().numpy()
        per_class = np.where(total > 0, correct / np.maximum(total, 1), np.nan)
        images = int(total.sum())
        top1 = float(100 * correct.sum() / images) if images else float("nan")
        balanced = float(100 * np.nanmean(per_class)) if (total > 0).any() else float("nan")
        return Accuracy(top1, balanced, per_class, images)


@register_metric("accuracy", unit=PERCENT, needs={"labels"}, default=True,
                 description="top-1 accuracy (and class-balanced) of the model on the dataset")
class AccuracyMetric(Metric):
    def consumer(self, run: EvaluationRun) -> AccuracyAccumulator:
        return AccuracyAccumulator(run.model.num_classes, run.model.device)

    def score(self, run: EvaluationRun, state: Accuracy) -> Score:
        return Score("accuracy", state.top1, PERCENT, extra={"balanced_accuracy": state.balanced}, details=state)
