"""A hand-built prototype model whose similarity depends only on colour hue (for analytic tests).

latent(x): per pixel the hue angle as (cos 2 pi h, sin 2 pi h) (0 where a pixel has no saturation),
averaged over 16 x 16 cells -> (B, 2, H/16, W/16). Similarity: ProtoPNet's log similarity of the
squared L2 distance to each prototype vector (P, 2).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protoviz.data.transforms import denormalize
from protoviz.explain.modifications_fast import rgb_to_hsv
from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.protopnet import log_similarity


def hue_vector(hue: float) -> Tensor:
    """(2,) the latent of a uniformly coloured, saturated patch of hue ``hue`` in [0, 1)."""
    return torch.tensor([math.cos(2 * math.pi * hue), math.sin(2 * math.pi * hue)])


class HueModel(PrototypeModel):
    """Similarity = log similarity between cell-mean hue vectors and prototype hue vectors."""

    family = "test_hue"

    def __init__(self, prototype_hues: list[float], size: int = 64):
        super().__init__(InputSpec(image_size=(size, size)), ("a", "b"), "none", "log")
        self.prototypes = nn.Parameter(torch.stack([hue_vector(h) for h in prototype_hues]))
        identity = torch.zeros(len(prototype_hues), 2)
        identity[torch.arange(len(prototype_hues)), torch.arange(len(prototype_hues)) % 2] = 1
        self.register_buffer("identity", identity)

    def latent(self, x: Tensor) -> Tensor:
        hsv = rgb_to_hsv(denormalize(x, self.input_spec).clamp(0, 1))
        angle = 2 * math.pi * hsv[:, 0]
        saturated = (hsv[:, 1] > 0).to(x.dtype)
        vectors = torch.stack([torch.cos(angle) * saturated, torch.sin(angle) * saturated], dim=1)
        return F.avg_pool2d(vectors, 16)

    def similarity_maps(self, x: Tensor) -> Tensor:
        return log_similarity(self.latent(x), self.prototypes)

    @property
    def class_weights(self) -> Tensor:
        return self.identity.t()

    @property
    def prototype_class_identity(self) -> Tensor:
        return self.identity

    @property
    def prototype_embeddings(self) -> Tensor:
        return self.prototypes.detach()

    def config_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HueModel:
        return cls([0.0, 0.5])

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {}


def log_sim(distance: float) -> float:
    """ProtoPNet's log((d + 1) / (d + 1e-4))."""
    return math.log((distance + 1) / (distance + 1e-4))
