"""TesNet (Wang et al. 2021): ProtoPNet's skeleton with a projection similarity.

Each prototype p is unit-normalised; the similarity of a latent patch z (not normalised, >= 0 after the
add-on's Sigmoid) is the projection z . p/|p| (``conv(z, p_hat)``), max-pooled and fed to a linear
head without bias. State-dict keys follow the research code: ``features.*``, ``add_on_layers.*``,
``prototype_vectors`` (P, D, 1, 1), ``last_layer.weight`` (C, P), plus ``class_identity`` (P, C).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protoviz.errors import ConfigError
from protoviz.models.backbones import build_backbone
from protoviz.models.base import FamilyConfig, InputSpec, PrototypeModel
from protoviz.models.protopnet import ADD_ONS, build_add_on
from protoviz.models.registry import register_family


def projection_similarity(latent: Tensor, prototypes: Tensor) -> Tensor:
    """z . p/|p| for latent (B, D, h, w) and prototypes (P, D): (B, P, h, w)."""
    return F.conv2d(latent, F.normalize(prototypes, dim=1)[:, :, None, None])


def default_identity(num_prototypes: int, num_classes: int) -> Tensor:
    """(P, C) one-hot identity with prototype j in class j * C // P (j // k when P = k C)."""
    identity = torch.zeros(num_prototypes, num_classes)
    identity[torch.arange(num_prototypes), torch.arange(num_prototypes) * num_classes // num_prototypes] = 1
    return identity


@dataclass(frozen=True)
class TesNetConfig(FamilyConfig):
    """Everything needed to rebuild a TesNet model."""

    class_names: tuple[str, ...]
    backbone: str = "resnet18"
    num_prototypes: int = 20
    prototype_dim: int = 64
    add_on: str = "regular"
    input: InputSpec = field(default_factory=InputSpec)

    def __post_init__(self) -> None:
        if self.add_on not in ADD_ONS:
            raise ConfigError(f"add_on must be one of {ADD_ONS}, got {self.add_on!r}")
        if not self.class_names or self.num_prototypes < 1 or self.prototype_dim < 1:
            raise ConfigError("TesNet needs at least one class, one prototype and prototype_dim >= 1")



@register_family
class TesNet(PrototypeModel):
    """TesNet: projection of latent patches onto unit prototypes, linear head."""

    family = "tesnet"
    class_identity: Tensor  # (P, C) buffer
    config_class = TesNetConfig

    def __init__(self, config: TesNetConfig):
        super().__init__(config.input, config.class_names, config.backbone, "projection")
        self.config = config
        backbone = build_backbone(config.backbone)
        self.features = backbone.module
        self.add_on_layers = build_add_on(config.add_on, backbone.out_channels, config.prototype_dim)
        self.prototype_vectors = nn.Parameter(torch.rand(config.num_prototypes, config.prototype_dim, 1, 1))
        self.register_buffer("class_identity", default_identity(config.num_prototypes, len(config.class_names)))
        self.last_layer = nn.Linear(config.num_prototypes, len(config.class_names), bias=False)
        with torch.no_grad():
            self.last_layer.weight.copy_(self.class_identity.t() - 0.5 * (1 - self.class_identity.t()))

    def latent(self, x: Tensor) -> Tensor:
        return self.add_on_layers(self.features(x))

    def similarity_maps(self, x: Tensor) -> Tensor:
        return projection_similarity(self.latent(x), self.prototype_vectors.flatten(1))

    @property
    def class_weights(self) -> Tensor:
        return self.last_layer.weight

    @property
    def prototype_class_identity(self) -> Tensor:
        return self.class_identity

    @property
    def prototype_embeddings(self) -> Tensor:
        return self.prototype_vectors.flatten(1)

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return TesNetConfig(class_names=("a", "b", "c"), backbone="tiny_cnn_small", num_prototypes=6,
                            prototype_dim=8, input=InputSpec(image_size=(64, 64))).to_dict()
