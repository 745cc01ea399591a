"""Top-1 accuracy and per-class accuracy, accumulated over batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Accuracy:
    """top1: share of images whose highest class score is the label (0-100); per_class (C,) in [0, 1]
    (NaN for classes without images); balanced: 100 * mean of per_class over classes with images."""

    top1: float
    balanced: float
    per_class: np.ndarray
    images: int


class AccuracyAccumulator:
    """Counts correct top-1 predictions per class (model class indices)."""

    def __init__(self, num_classes: int, device: torch.device):
        self.correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.total = torch.zeros(num_classes, dtype=torch.int64, device=device)

    def update(self, logits: Tensor, labels: Tensor) -> None:
        """logits (B, C), labels (B,) model class indices."""
        hit = (logits.argmax(dim=1) == labels).long()
        self.correct.index_add_(0, labels, hit)
        self.total.index_add_(0, labels, torch.ones_like(labels))

    def result(self) -> Accuracy:
        correct, total = self.correct.cpu().numpy(), self.total.cpu().numpy()
        per_class = np.where(total > 0, correct / np.maximum(total, 1), np.nan)
        images = int(total.sum())
        top1 = float(100 * correct.sum() / images) if images else float("nan")
        balanced = float(100 * np.nanmean(per_class)) if (total > 0).any() else float("nan")
        return Accuracy(top1, balanced, per_class, images)
