"""ST-ProtoPNet (Wang et al. 2023): support and trivial prototypes, two heads summed.

Two variants of the research code:

- ``full``: add-on = [Upsample(x2, bilinear) (Identity for VGG), conv 1x1, conv 1x1] (keys ``.1``/``.2``),
  similarity ReLU(cos(z, p)); maps are twice the backbone's resolution (14x14 at 224 for ResNets).
- ``cropped``: add-on = [conv 1x1, Tanh, conv 1x1, Tanh] (keys ``.0``/``.2``), similarity is the
  projection z . p/|p| (as TesNet).

Each set has its own add-on, ``prototype_vectors_{set}`` (P, D, 1, 1) and ``last_layer_{set}`` (C, P);
class identity is j // (P / C) in each set. logits = head_support + head_trivial. Prototype indices are
support [0, P) then trivial [P, 2P).
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
from protoviz.models.tesnet import default_identity, projection_similarity

SETS = ("support", "trivial")
VARIANTS = ("full", "cropped")


@dataclass(frozen=True)
class STProtoPNetConfig(FamilyConfig):
    """Everything needed to rebuild an ST-ProtoPNet; ``num_prototypes`` is per set."""

    class_names: tuple[str, ...]
    backbone: str = "resnet18"
    num_prototypes: int = 20
    prototype_dim: int = 64
    variant: str = "full"
    upsample: bool = True
    input: InputSpec = field(default_factory=InputSpec)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not self.class_names or self.num_prototypes < 1 or self.prototype_dim < 1:
            raise ConfigError("ST-ProtoPNet needs at least one class, one prototype and prototype_dim >= 1")



def build_st_add_on(variant: str, upsample: bool, in_channels: int, dim: int) -> nn.Sequential:
    """The add-on of one prototype set (see the module docstring)."""
    if variant == "cropped":
        return nn.Sequential(nn.Conv2d(in_channels, dim, 1), nn.Tanh(), nn.Conv2d(dim, dim, 1), nn.Tanh())
    first: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear") if upsample else nn.Identity()
    return nn.Sequential(first, nn.Conv2d(in_channels, dim, 1), nn.Conv2d(dim, dim, 1))


@register_family
class STProtoPNet(PrototypeModel):
    """ST-ProtoPNet with its two prototype sets behind the common interface."""

    family = "stprotopnet"
    config_class = STProtoPNetConfig

    def __init__(self, config: STProtoPNetConfig):
        similarity = "relu_cosine" if config.variant == "full" else "projection"
        super().__init__(config.input, config.class_names, config.backbone, similarity)
        self.config = config
        backbone = build_backbone(config.backbone)
        self.features = backbone.module
        P, C = config.num_prototypes, len(config.class_names)
        for name in SETS:
            setattr(self, f"add_on_layers_{name}",
                    build_st_add_on(config.variant, config.upsample, backbone.out_channels, config.prototype_dim))
            setattr(self, f"prototype_vectors_{name}", nn.Parameter(torch.rand(P, config.prototype_dim, 1, 1)))
            self.register_buffer(f"class_identity_{name}", default_identity(P, C))
            layer = nn.Linear(P, C, bias=False)
            with torch.no_grad():
                identity = getattr(self, f"class_identity_{name}").t()
                layer.weight.copy_(identity - 0.5 * (1 - identity))
            setattr(self, f"last_layer_{name}", layer)

    def set_latents(self, x: Tensor) -> dict[str, Tensor]:
        """Per set, the add-on output (B, D, h, w)."""
        feats = self.features(x)
        return {name: getattr(self, f"add_on_layers_{name}")(feats) for name in SETS}

    def latent(self, x: Tensor) -> Tensor:
        """(B, 2D, h, w): support and trivial latents stacked along channels."""
        return torch.cat(list(self.set_latents(x).values()), dim=1)

    def _set_similarity(self, latent: Tensor, prototypes: Tensor) -> Tensor:
        if self.config.variant == "full":
            return F.relu(F.conv2d(F.normalize(latent, dim=1), F.normalize(prototypes, dim=1)[:, :, None, None]))
        return projection_similarity(latent, prototypes)

    def similarity_maps(self, x: Tensor) -> Tensor:
        latents = self.set_latents(x)
        return torch.cat([self._set_similarity(latents[n], getattr(self, f"prototype_vectors_{n}").flatten(1))
                          for n in SETS], dim=1)

    @property
    def class_weights(self) -> Tensor:
        return torch.cat([getattr(self, f"last_layer_{n}").weight for n in SETS], dim=1)

    @property
    def prototype_class_identity(self) -> Tensor:
        return torch.cat([getattr(self, f"class_identity_{n}") for n in SETS], dim=0)

    @property
    def prototype_embeddings(self) -> Tensor:
        """(2P, 2D): each prototype in its set's channels of the stacked latent, zeros elsewhere."""
        dim = self.config.prototype_dim
        blocks = []
        for i, name in enumerate(SETS):
            vectors = getattr(self, f"prototype_vectors_{name}").flatten(1)
            padded = vectors.new_zeros(vectors.shape[0], 2 * dim)
            padded[:, i * dim:(i + 1) * dim] = vectors
            blocks.append(padded)
        return torch.cat(blocks, dim=0)

    def prototype_groups(self) -> dict[str, tuple[int, int]]:
        P = self.config.num_prototypes
        return {"support": (0, P), "trivial": (P, 2 * P)}

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return STProtoPNetConfig(class_names=("a", "b", "c"), backbone="tiny_cnn_small", num_prototypes=6,
                                 prototype_dim=8, input=InputSpec(image_size=(64, 64))).to_dict()
