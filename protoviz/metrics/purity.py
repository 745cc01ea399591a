"""PIP-Net's part purity, and the share of a prototype's high-activation region on the object.

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

Object overlap (datasets with part masks, e.g. the synthetic set, or uncropped images with boxes): for
p and each image of p's classes, the share of the high-activation region (>= the 95th percentile of the
upsampled map) that lies on the object (part mask > 0, else inside the box); per prototype the mean
over images, the score 100 * the mean over prototypes with images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from protoviz.metrics.parts import merge_matrix, merge_parts, peak_locations, scaled_half_size
from protoviz.metrics.stability import high_activation_masks


def patch_hits(peaks: Tensor, parts: Tensor, half: tuple[int, int], input_size: tuple[int, int]) -> Tensor:
    """peaks (n, 2), parts (n, K, 3) -> (n, K) bool: visible parts in the half-open patch around each peak."""
    height, width = input_size
    rows, cols = peaks[:, 0:1].to(parts.dtype), peaks[:, 1:2].to(parts.dtype)
    r_lo, r_hi = (rows - half[0]).clamp(min=0), (rows + half[0]).clamp(max=height)
    c_lo, c_hi = (cols - half[1]).clamp(min=0), (cols + half[1]).clamp(max=width)
    u, v = parts[..., 0], parts[..., 1]
    return (parts[..., 2] > 0) & (v >= r_lo) & (v < r_hi) & (u >= c_lo) & (u < c_hi)


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
    """Keeps each prototype's top-k (score, image, part hits) while batches stream by."""

    def __init__(self, num_prototypes: int, part_names: Sequence[str], input_size: tuple[int, int],
                 device: torch.device, used: Tensor, top_k: int = 10, patch_size: float = 32.0):
        self.input_size, self.top_k, self.used = input_size, top_k, used.cpu().numpy()
        self.half = scaled_half_size(patch_size / 2, input_size)
        self.merge, self.part_names = merge_matrix(part_names)
        shape = (num_prototypes, top_k)
        self.scores = torch.full(shape, -torch.inf, dtype=torch.float64, device=device)
        self.images = torch.full(shape, -1, dtype=torch.long, device=device)
        self.hits = torch.zeros(*shape, len(self.part_names), dtype=torch.bool, device=device)

    def update(self, maps: Tensor, pooled: Tensor, parts: Tensor, indices: Sequence[int]) -> None:
        """maps (B, P, h, w), pooled (B, P), parts (B, K, 3), dataset indices (B,)."""
        batch_scores = pooled.t().double()  # (P, B)
        threshold = self.scores[:, -1:]  # the current k-th best of each prototype
        proto_idx, image_idx = (batch_scores > threshold).nonzero(as_tuple=True)
        if proto_idx.numel() == 0:
            return
        batch_hits = torch.zeros(*batch_scores.shape, len(self.part_names), dtype=torch.bool, device=maps.device)
        peaks = peak_locations(maps[image_idx, proto_idx], self.input_size)
        hits = patch_hits(peaks, parts[image_idx], self.half, self.input_size)
        batch_hits[proto_idx, image_idx] = merge_parts(hits, self.merge)
        ids = torch.as_tensor(list(indices), device=maps.device).expand_as(batch_scores)
        scores = torch.cat([self.scores, batch_scores.masked_fill(batch_scores <= threshold, -torch.inf)], dim=1)
        order = scores.topk(self.top_k, dim=1, sorted=True).indices  # (P, k)
        self.scores = scores.gather(1, order)
        self.images = torch.cat([self.images, ids], dim=1).gather(1, order)
        all_hits = torch.cat([self.hits, batch_hits], dim=1)
        self.hits = all_hits.gather(1, order[..., None].expand(-1, -1, all_hits.shape[2]))

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


@dataclass(frozen=True)
class ObjectOverlap:
    """score (0-100); per prototype ``share`` (P,) mean share of the region on the object (NaN without images)."""

    score: float
    share: np.ndarray
    n_images: np.ndarray


def box_masks(boxes: Tensor, input_size: tuple[int, int]) -> Tensor:
    """(B, 4) (x0, y0, x1, y1) boxes in input pixels -> (B, H, W) bool, pixel (r, c) inside when
    y0 <= r + 0.5 < y1 and x0 <= c + 0.5 < x1 (pixel centres); a NaN box gives an empty mask."""
    height, width = input_size
    rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype)[None, :, None] + 0.5
    cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype)[None, None, :] + 0.5
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)


class ObjectOverlapAccumulator:
    """Sums the on-object share of each prototype's high-activation region over its classes' images."""

    def __init__(self, num_prototypes: int, input_size: tuple[int, int], device: torch.device):
        self.input_size = input_size
        self.total = torch.zeros(num_prototypes, dtype=torch.float64, device=device)
        self.count = torch.zeros(num_prototypes, dtype=torch.int64, device=device)

    def update(self, image_idx: Tensor, proto_idx: Tensor, maps: Tensor, objects: Tensor) -> None:
        """Pairs (n,) into maps (B, P, h, w); objects (B, H, W) bool, True on the object."""
        regions = high_activation_masks(maps[image_idx, proto_idx], self.input_size)
        on_object = (regions & objects[image_idx]).flatten(1).sum(1).double()
        share = on_object / regions.flatten(1).sum(1).clamp(min=1).double()
        self.total.index_add_(0, proto_idx, share)
        self.count.index_add_(0, proto_idx, torch.ones_like(proto_idx))

    def result(self) -> ObjectOverlap:
        count = self.count.cpu().numpy()
        share = np.where(count > 0, self.total.cpu().numpy() / np.maximum(count, 1), np.nan)
        score = float(100 * np.nanmean(share)) if (count > 0).any() else float("nan")
        return ObjectOverlap(score, share, count)
