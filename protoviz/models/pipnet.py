"""PIP-Net (Nauta et al. 2023): prototypes are latent channels, softmax-normalised per location.

latent = backbone (stride 8: layer3/layer4 first blocks with stride 1 -> 28x28 at 224), optionally a
1x1 conv to ``num_features`` channels; similarity maps = softmax over the P channels at each location
(B, P, h, w), so a location's scores sum to 1. The head is PIP-Net's NonNegLinear: pooled = max over
locations, values below ``inference_threshold`` (0.1 in the original's evaluation; 0 disables it) are
zeroed, logits = pooled @ relu(W).T (+ bias). ``normalization_multiplier`` only enters PIP-Net's
confidence and is kept for the record. class_weights = relu(W) (C, P); identity = relu(W) > 0.
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
from protoviz.models.registry import register_family


@dataclass(frozen=True)
class PIPNetConfig(FamilyConfig):
    """Everything needed to rebuild a PIP-Net model."""

    class_names: tuple[str, ...]
    backbone: str = "resnet50_stride8"
    num_features: int = 0
    bias: bool = False
    inference_threshold: float = 0.1
    input: InputSpec = field(default_factory=InputSpec)

    def __post_init__(self) -> None:
        if not self.class_names or self.num_features < 0 or self.inference_threshold < 0:
            raise ConfigError("PIP-Net needs at least one class, num_features >= 0 and inference_threshold >= 0")



@register_family
class PIPNet(PrototypeModel):
    """PIP-Net: softmax prototype channels, max-pooled, non-negative linear head."""

    family = "pipnet"
    config_class = PIPNetConfig

    def __init__(self, config: PIPNetConfig):
        super().__init__(config.input, config.class_names, config.backbone, "softmax")
        self.config = config
        backbone = build_backbone(config.backbone)
        self.features = backbone.module
        channels = config.num_features or backbone.out_channels
        self.add_on: nn.Module = nn.Conv2d(backbone.out_channels, channels, 1) if config.num_features else nn.Identity()
        self.classification_weight = nn.Parameter(torch.rand(len(config.class_names), channels))
        self.classification_bias = nn.Parameter(torch.zeros(len(config.class_names))) if config.bias else None
        self.normalization_multiplier = nn.Parameter(torch.ones(1))

    def latent(self, x: Tensor) -> Tensor:
        """(B, P, h, w) pre-softmax prototype scores."""
        return self.add_on(self.features(x))

    def similarity_maps(self, x: Tensor) -> Tensor:
        return torch.softmax(self.latent(x), dim=1)

    def logits_from_similarities(self, maps: Tensor, pooled: Tensor) -> Tensor:
        """PIP-Net's inference head: small pooled scores zeroed, then relu(W) (+ bias)."""
        kept = torch.where(pooled < self.config.inference_threshold, torch.zeros_like(pooled), pooled)
        return F.linear(kept, F.relu(self.classification_weight), self.classification_bias)

    @property
    def class_weights(self) -> Tensor:
        return F.relu(self.classification_weight)

    @property
    def prototype_class_identity(self) -> Tensor:
        return (self.classification_weight > 0).t().to(self.classification_weight.dtype)

    @property
    def prototype_embeddings(self) -> Tensor:
        """(P, P): prototype p is the one-hot direction of channel p in the latent."""
        P = self.classification_weight.shape[1]
        return torch.eye(P, device=self.classification_weight.device)

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return PIPNetConfig(class_names=("a", "b", "c"), backbone="tiny_cnn_small", num_features=6,
                            input=InputSpec(image_size=(64, 64))).to_dict()
