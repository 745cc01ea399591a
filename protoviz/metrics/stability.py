"""Noise for stability, and the annotation-free stability of high-activation regions.

Noise (Huang et al.): e ~ N(0, std^2) per element, clipped to [-clip, clip], added to the *normalised*
image and not clamped afterwards. Each image's noise comes from its own ``torch.Generator`` seeded from
(seed, draw, dataset index), so a result does not depend on the batch size or on batch order.

Region stability (for datasets without parts): for a prototype p and an image x of p's classes, the
map is upsampled to the input size (OpenCV bicubic) and its high-activation region is the pixels at
or above the map's 95th percentile (numpy's linear percentile, as ProtoPNet's box). IoU_p(x) =
|R(x) & R(x~)| / |R(x) | R(x~)| for the noisy copy x~; region_stability_p = mean over x; the score is
100 * the mean over prototypes that have images, with the mean and spread over noise draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from protoviz.heatmaps.boxes import batched_percentile
from protoviz.metrics.parts import MAX_CHUNK_PIXELS, upsample_bicubic


def image_seed(seed: int, draw: int, index: int) -> int:
    """A 63-bit seed for one image's noise, mixed from (seed, draw, dataset index)."""
    return int(np.random.SeedSequence([seed, draw, index]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


def add_noise(images: Tensor, indices: Sequence[int], seed: int, draw: int, std: float,
              clip: float | None) -> Tensor:
    """images (B, 3, H, W) normalised -> images + clip(N(0, std^2)), image i's noise seeded by its index."""
    generator = torch.Generator(device=images.device)
    noise = torch.empty_like(images)
    for row, index in enumerate(indices):  # one seeded draw per image keeps results batch-size independent
        generator.manual_seed(image_seed(seed, draw, int(index)))
        torch.randn(images.shape[1:], generator=generator, out=noise[row])
    noise.mul_(std)
    if clip is not None:
        noise.clamp_(-clip, clip)
    return noise.add_(images)  # in place: no extra (B, 3, H, W) buffers


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


@dataclass(frozen=True)
class RegionStability:
    """Annotation-free stability: ``score`` (0-100, mean over draws), ``spread`` (std over draws),
    ``per_draw`` scores, and per prototype ``iou`` (P,) mean IoU (NaN without images), ``n_images`` (P,)."""

    score: float
    spread: float
    per_draw: list[float]
    iou: np.ndarray
    n_images: np.ndarray
    percentile: float


class RegionStabilityAccumulator:
    """Sums each prototype's IoU over the images of its classes, batch by batch (constant memory)."""

    def __init__(self, num_prototypes: int, draws: int, input_size: tuple[int, int], device: torch.device,
                 percentile: float = 95.0):
        self.input_size, self.percentile = input_size, percentile
        self.iou_sum = torch.zeros(draws, num_prototypes, dtype=torch.float64, device=device)
        self.count = torch.zeros(num_prototypes, dtype=torch.int64, device=device)

    def update(self, image_idx: Tensor, proto_idx: Tensor, clean_maps: Tensor, noisy_maps: Sequence[Tensor]) -> None:
        """Pairs (n,) into maps (B, P, h, w): add the IoU of each pair's clean and noisy regions."""
        clean = high_activation_masks(clean_maps[image_idx, proto_idx], self.input_size, self.percentile)
        self.count.index_add_(0, proto_idx, torch.ones_like(proto_idx))
        for draw, noisy in enumerate(noisy_maps):
            masks = high_activation_masks(noisy[image_idx, proto_idx], self.input_size, self.percentile)
            self.iou_sum[draw].index_add_(0, proto_idx, mask_iou(clean, masks))

    def result(self) -> RegionStability:
        count = self.count.cpu().numpy()
        per_proto = self.iou_sum.cpu().numpy() / np.maximum(count, 1)[None, :]
        has = count > 0
        per_draw = [float(100 * d[has].mean()) if has.any() else float("nan") for d in per_proto]
        iou = np.where(has, per_proto.mean(axis=0), np.nan)
        return RegionStability(float(np.mean(per_draw)), float(np.std(per_draw)), per_draw, iou, count,
                               self.percentile)
