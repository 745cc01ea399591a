"""Seeded Gaussian noise for stability, and the pass view that forwards the noisy copies.

Noise (Huang et al.): e ~ N(0, std^2) per element, clipped to [-clip, clip], added to the *normalised*
image and not clamped afterwards. Each image's noise comes from its own ``torch.Generator`` seeded from
(seed, draw, dataset index), so a result depends neither on the batch size, nor on batch order, nor on
which rank of a sharded run saw the image.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from protoviz.models.base import PrototypeModel
from protoviz.passes import PassBatch


def image_seed(seed: int, draw: int, index: int) -> int:
    """A 63-bit seed for one image's noise, mixed from (seed, draw, dataset index)."""
    return int(np.random.SeedSequence([seed, draw, index]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


def add_noise(images: Tensor, indices: Sequence[int] | Tensor, seed: int, draw: int, std: float,
              clip: float | None) -> Tensor:
    """images (B, 3, H, W) normalised -> images + clip(N(0, std^2)), image i's noise seeded by its index."""
    generator = torch.Generator(device=images.device)
    noise = torch.empty_like(images)
    positions = indices.tolist() if isinstance(indices, Tensor) else indices
    for row, index in enumerate(positions):  # one seeded draw per image keeps results batch-size independent
        generator.manual_seed(image_seed(seed, draw, int(index)))
        torch.randn(images.shape[1:], generator=generator, out=noise[row])
    noise.mul_(std)
    if clip is not None:
        noise.clamp_(-clip, clip)
    return noise.add_(images)  # in place: no extra (B, 3, H, W) buffers


@dataclass(frozen=True)
class NoiseView:
    """The noisy copies of each batch: one forward per draw d = 0 .. draws - 1 of
    ``add_noise(images, indices, seed, d, std, clip)``; consumers read ``step.view(view)[d]``."""

    std: float
    clip: float | None
    seed: int
    draws: int
    includes_clean = False

    @property
    def key(self) -> Hashable:
        return ("noise", self.std, self.clip, self.seed, self.draws)

    def images(self, batch: PassBatch, model: PrototypeModel) -> Iterator[Tensor]:
        positions = batch.indices.tolist()
        for draw in range(self.draws):
            yield add_noise(batch.images, positions, self.seed, draw, self.std, self.clip)
