"""PIP-Net's part purity: how often a prototype's top patches hold the same annotated part.

Part purity (Nauta et al., PIP-Net), as protoviz computes it:
1. For each prototype p, its top-k images over the whole evaluated set (k = 10) by p's pooled
   similarity (max over the map); each image contributes one patch.
2. The patch is the ``patch_size`` x ``patch_size`` square (32 at 224, scaled like half_size) centred on
   the first maximum (r, c) of p's map upsampled to the input (OpenCV bicubic): rows
   [max(0, r - s/2), min(H, r + s/2)), columns likewise (half-open).
3. A part is in the patch when it is visible and its keypoint (u, v) lies in it; left/right parts are
   merged ('left eye' and 'right eye' are 'eye').
4. p's part is the one in most of its patches (first in part order on ties); purity_p = (number of
   patches holding that part) / (number of patches). The score is the mean over prototypes with a
   positive class weight (prototypes the classifier uses), as a fraction in [0, 1].

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from protoviz.metrics.details import stored_details
from protoviz.metrics.parts import merge_matrix, merge_parts, peak_locations, scaled_half_size
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import FRACTION, Score
from protoviz.passes import Needs, PassStep

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun


def patch_hits(peaks: Tensor, parts: Tensor, half: tuple[int, int], input_size: tuple[int, int]) -> Tensor:
    """peaks (n, 2), parts (n, K, 3) -> (n, K) bool: visible parts in the half-open patch around each peak."""
    height, width = input_size
    rows, cols = peaks[:, 0:1].to(parts.dtype), peaks[:, 1:2].to(parts.dtype)
    r_lo, r_hi = (rows - half[0]).clamp(min=0), (rows + half[0]).clamp(max=height)
    c_lo, c_hi = (cols - half[1]).clamp(min=0), (cols + half[1]).clamp(max=width)
    u, v = parts[..., 0], parts[..., 1]
    return (parts[..., 2] > 0) & (v >= r_lo) & (v < r_hi) & (u >= c_lo) & (u < c_hi)


@stored_details("purity")
@dataclass(frozen=True)
class Purity:
    """score: mean purity in [0, 1] over used prototypes. per prototype: ``purity`` (P,) (NaN without
    patches), ``part`` (P,) index into ``part_names``, ``patches`` (P,) patches found, ``top_images`` (P, k)
    dataset indices (-1 where fewer than k images)."""

    score: float
    purity: np.ndarray
    part: np.ndarray
    patches: np.ndarray
    top_images: np.ndarray
    part_names: tuple[str, ...]
    top_k: int
    patch_pixels: tuple[int, int]


class PurityAccumulator:
    """Keeps each prototype's top-k (score, image, part hits) while batches stream by (a pass consumer).

    used: (P,) bool, the prototypes the classifier uses (the score averages over them).
    """

    needs = Needs()

    def __init__(self, num_prototypes: int, part_names: Sequence[str], input_size: tuple[int, int],
                 device: torch.device, used: Tensor, top_k: int = 10, patch_size: float = 32.0):
        self.input_size, self.top_k, self.used = input_size, top_k, used.cpu().numpy()
        self.half = scaled_half_size(patch_size / 2, input_size)
        self.merge_matrix, self.part_names = merge_matrix(part_names)
        shape = (num_prototypes, top_k)
        self.scores = torch.full(shape, -torch.inf, dtype=torch.float64, device=device)
        self.images = torch.full(shape, -1, dtype=torch.long, device=device)
        self.hits = torch.zeros(*shape, len(self.part_names), dtype=torch.bool, device=device)

    def update(self, step: PassStep) -> None:
        if step.parts is not None:
            self.add(step.maps, step.pooled, step.parts, step.indices)

    def add(self, maps: Tensor, pooled: Tensor, parts: Tensor, indices: Sequence[int] | Tensor) -> None:
        """maps (B, P, h, w), pooled (B, P), parts (B, K, 3), dataset indices (B,)."""
        batch_scores = pooled.t().double()  # (P, B)
        threshold = self.scores[:, -1:]  # the current k-th best of each prototype
        proto_idx, image_idx = (batch_scores > threshold).nonzero(as_tuple=True)
        if proto_idx.numel() == 0:
            return
        batch_hits = torch.zeros(*batch_scores.shape, len(self.part_names), dtype=torch.bool, device=maps.device)
        peaks = peak_locations(maps[image_idx, proto_idx], self.input_size)
        hits = patch_hits(peaks, parts[image_idx], self.half, self.input_size)
        batch_hits[proto_idx, image_idx] = merge_parts(hits, self.merge_matrix)
        ids = torch.as_tensor(indices, device=maps.device).expand_as(batch_scores)
        scores = torch.cat([self.scores, batch_scores.masked_fill(batch_scores <= threshold, -torch.inf)], dim=1)
        self._keep_best(scores, torch.cat([self.images, ids], dim=1), torch.cat([self.hits, batch_hits], dim=1))

    def _keep_best(self, scores: Tensor, images: Tensor, hits: Tensor) -> None:
        """Keep the top-k of candidates (P, n), (P, n), (P, n, M) per prototype."""
        order = scores.topk(self.top_k, dim=1, sorted=True).indices  # (P, k)
        self.scores = scores.gather(1, order)
        self.images = images.gather(1, order)
        self.hits = hits.gather(1, order[..., None].expand(-1, -1, hits.shape[2]))

    def merge(self, other: PurityAccumulator) -> None:
        device = self.scores.device
        self._keep_best(torch.cat([self.scores, other.scores.to(device)], dim=1),
                        torch.cat([self.images, other.images.to(device)], dim=1),
                        torch.cat([self.hits, other.hits.to(device)], dim=1))

    def result(self) -> Purity:
        valid = torch.isfinite(self.scores)  # (P, k)
        counts = (self.hits & valid[..., None]).sum(dim=1).cpu().numpy()  # (P, M)
        patches = valid.sum(dim=1).cpu().numpy()
        part = counts.argmax(axis=1)
        purity = np.where(patches > 0, counts.max(axis=1) / np.maximum(patches, 1), np.nan)
        chosen = (patches > 0) & self.used
        score = float(np.mean(purity[chosen])) if chosen.any() else float("nan")
        return Purity(score, purity, part, patches, self.images.cpu().numpy(), self.part_names, self.top_k,
                      self.half)


@register_metric("purity", unit=FRACTION, needs={"parts"},
                 description="PIP-Net: share of a prototype's top-10 patches holding its most frequent part")
class PurityMetric(Metric):
    def consumer(self, run: EvaluationRun) -> PurityAccumulator:
        model, config = run.model, run.config
        used = model.class_weights.detach().t().gt(0).any(dim=1)
        return PurityAccumulator(run.relevance.shape[0], run.dataset.part_names or (), model.input_spec.image_size,
                                 model.device, used, config.purity_top_k, config.purity_patch_size)

    def score(self, run: EvaluationRun, state: Purity) -> Score:
        rows = tuple({"purity": float(state.purity[p]),
                      "purity_part": state.part_names[state.part[p]] if state.patches[p] else "-"}
                     for p in range(len(state.purity)))
        return Score("purity", state.score, FRACTION, rows=rows, details=state)
