"""A hand-built PrototypeModel whose prototype 0 can only be found in one known image patch.

A 16x16 stride-16 convolution (each latent cell sees exactly its own patch, nothing else) feeds
ProtoPNet's log similarity. Prototype 0 is the latent of a planted pattern; images carry that pattern
in patch ``CELL`` and low-amplitude noise elsewhere, so the evidence for prototype 0 lies in that patch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.protopnet import log_similarity

SIZE, PATCH = 64, 16
CELL = (1, 2)  # (row, col) of the planted patch in the 4x4 grid


def region_mask() -> Tensor:
    """(H, W) bool: the planted patch."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    r, c = CELL
    mask[r * PATCH:(r + 1) * PATCH, c * PATCH:(c + 1) * PATCH] = True
    return mask


def pattern() -> Tensor:
    """(3, PATCH, PATCH) the planted pattern, in normalised units."""
    g = torch.Generator().manual_seed(123)
    return 2.0 * torch.randn(3, PATCH, PATCH, generator=g)


def planted_images(n: int, seed: int = 0) -> Tensor:
    """(n, 3, 64, 64): noise of std 0.3 everywhere plus the pattern in the planted patch (the noise
    keeps the match inexact: at an exact match the gradient of a squared distance is zero)."""
    g = torch.Generator().manual_seed(seed)
    images = 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    r, c = CELL
    images[:, :, r * PATCH:(r + 1) * PATCH, c * PATCH:(c + 1) * PATCH] += pattern()
    return images


class PlantedModel(PrototypeModel):
    """Two prototypes, two classes; prototype 0 = the latent of the planted pattern."""

    family = "planted_test"

    def __init__(self) -> None:
        super().__init__(InputSpec(image_size=(SIZE, SIZE)), ("a", "b"), "patchify", "log")
        torch.manual_seed(7)
        self.features = nn.Conv2d(3, 6, PATCH, stride=PATCH, bias=False)
        with torch.no_grad():
            p0 = self.features(pattern()[None]).flatten(1)
        self.prototype_vectors = nn.Parameter(torch.cat([p0, torch.rand(1, 6)]))
        self.register_buffer("identity", torch.eye(2))

    def latent(self, x: Tensor) -> Tensor:
        return self.features(x)

    def similarity_maps(self, x: Tensor) -> Tensor:
        return log_similarity(self.latent(x), self.prototype_vectors)

    @property
    def prototype_embeddings(self) -> Tensor:
        return self.prototype_vectors

    @property
    def class_weights(self) -> Tensor:
        return self.identity

    @property
    def prototype_class_identity(self) -> Tensor:
        return self.identity

    def config_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PlantedModel:
        return cls()

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {}
