"""High-activation regions of similarity maps, their overlap, and object boxes as masks.

A region is the set of pixels at or above the 95th percentile (numpy's linear percentile, as
ProtoPNet's box) of the map upsampled to the model input with OpenCV's bicubic.
"""

from __future__ import annotations

import torch
from torch import Tensor

from protoviz.heatmaps.boxes import batched_percentile
from protoviz.metrics.parts import MAX_CHUNK_PIXELS, upsample_bicubic


def high_activation_masks(maps: Tensor, input_size: tuple[int, int], percentile: float = 95.0) -> Tensor:
    """(n, h, w) maps -> (n, H, W) bool: pixels >= the 95th percentile of the upsampled map."""
    height, width = input_size
    chunk = max(1, MAX_CHUNK_PIXELS // (height * width))
    masks = torch.empty(maps.shape[0], height, width, dtype=torch.bool, device=maps.device)
    for start in range(0, maps.shape[0], chunk):
        up = upsample_bicubic(maps[start:start + chunk], input_size).flatten(1)
        threshold = batched_percentile(up, percentile)
        masks[start:start + chunk] = (up >= threshold[:, None]).view(-1, height, width)
    return masks


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """(n, H, W) bool pairs -> (n,) IoU; two empty masks give 1."""
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def box_masks(boxes: Tensor, input_size: tuple[int, int]) -> Tensor:
    """(B, 4) (x0, y0, x1, y1) boxes in input pixels -> (B, H, W) bool, pixel (r, c) inside when
    y0 <= r + 0.5 < y1 and x0 <= c + 0.5 < x1 (pixel centres); a NaN box gives an empty mask."""
    height, width = input_size
    rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype)[None, :, None] + 0.5
    cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype)[None, None, :] + 0.5
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
