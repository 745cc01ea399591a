"""The native ProtoPNet family: backbone -> add-on -> prototypes -> similarity -> linear head.

Similarity kinds:
- ``log``: ProtoPNet. d = ReLU(|z|^2 - 2 z.p + |p|^2) (squared L2), sim = log((d + 1) / (d + 1e-4)).
- ``linear``: ProtoPNet's ``prototype_activation_function='linear'``: sim = -d (its logits are
  W @ (-min_hw d)).
- ``cosine``: TesNet / ST-ProtoPNet style, sim = cos(z, p) in [-1, 1].

Optional prototype sets (ST-ProtoPNet): with ``prototype_sets=("support", "trivial")`` each set has its
own add-on, prototypes and last layer, the backbone is shared, and the logits are the sum of both heads.
State-dict keys follow the research code: ``prototype_vectors``, ``add_on_layers.*``, ``last_layer.weight``
for one set; ``prototype_vectors_support``, ``add_on_layers_trivial.*`` ... for two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protoviz.errors import ConfigError
from protoviz.models.backbones import build_backbone
from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.registry import register_family

LOG_EPSILON = 1e-4
SIMILARITIES = ("log", "linear", "cosine")
ADD_ONS = ("regular", "bottleneck")


@dataclass(frozen=True)
class ProtoPNetConfig:
    """Everything needed to rebuild a native ProtoPNet-family model."""

    class_names: tuple[str, ...]
    backbone: str = "resnet18"
    prototypes_per_class: int = 10
    prototype_dim: int = 128
    add_on: str = "regular"
    similarity: str = "log"
    prototype_sets: tuple[str, ...] = ("prototypes",)
    input: InputSpec = field(default_factory=InputSpec)
    incorrect_class_connection: float = -0.5
    # Prototypes per set when not prototypes_per_class * C (pruned research models); the class
    # identity then comes from the checkpoint's ``class_identity`` buffer.
    num_prototypes: int | None = None

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ConfigError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if self.add_on not in ADD_ONS:
            raise ConfigError(f"add_on must be one of {ADD_ONS}, got {self.add_on!r}")
        if not self.class_names or self.prototypes_per_class < 1 or self.prototype_dim < 1:
            raise ConfigError("need at least one class, one prototype per class and prototype_dim >= 1")
        if not self.prototype_sets or len(set(self.prototype_sets)) != len(self.prototype_sets):
            raise ConfigError(f"prototype_sets must be distinct non-empty names, got {self.prototype_sets}")
        if self.num_prototypes is not None and self.num_prototypes < 1:
            raise ConfigError(f"num_prototypes must be >= 1 when given, got {self.num_prototypes}")

    @property
    def prototypes_per_set(self) -> int:
        """P of one prototype set."""
        if self.num_prototypes is not None:
            return self.num_prototypes
        return self.prototypes_per_class * len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input"] = self.input.to_dict()
        data["class_names"] = list(self.class_names)
        data["prototype_sets"] = list(self.prototype_sets)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtoPNetConfig:
        values = dict(data)
        values["input"] = InputSpec.from_dict(values["input"])
        values["class_names"] = tuple(values["class_names"])
        values["prototype_sets"] = tuple(values["prototype_sets"])
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown ProtoPNet config fields: {sorted(unknown)}")
        return cls(**values)


def build_add_on(kind: str, in_channels: int, dim: int) -> nn.Sequential:
    """ProtoPNet's add-on layers: 1x1 convs ending in a Sigmoid.

    ``regular``: conv(in, D), ReLU, conv(D, D), Sigmoid.
    ``bottleneck``: pairs of 1x1 convs halving the channels down to D.
    """
    if kind == "regular":
        return nn.Sequential(nn.Conv2d(in_channels, dim, 1), nn.ReLU(), nn.Conv2d(dim, dim, 1), nn.Sigmoid())
    layers: list[nn.Module] = []
    current = in_channels
    while current > dim or not layers:
        out = max(dim, current // 2)
        layers += [nn.Conv2d(current, out, 1), nn.ReLU(), nn.Conv2d(out, out, 1)]
        layers.append(nn.ReLU() if out > dim else nn.Sigmoid())
        current //= 2
    return nn.Sequential(*layers)


def log_similarity(latent: Tensor, prototypes: Tensor) -> Tensor:
    """ProtoPNet's similarity of latent (B, D, h, w) to prototypes (P, D): (B, P, h, w)."""
    return distance_to_log_similarity(squared_l2_distances(latent, prototypes))


def linear_similarity(latent: Tensor, prototypes: Tensor) -> Tensor:
    """ProtoPNet's ``linear`` activation: minus the squared L2 distance, (B, P, h, w)."""
    return -squared_l2_distances(latent, prototypes)


def squared_l2_distances(latent: Tensor, prototypes: Tensor) -> Tensor:
    """ReLU(|z|^2 - 2 z.p + |p|^2) for latent (B, D, h, w) and prototypes (P, D): (B, P, h, w)."""
    z2 = (latent * latent).sum(dim=1, keepdim=True)
    zp = F.conv2d(latent, prototypes[:, :, None, None])
    p2 = (prototypes * prototypes).sum(dim=1).view(1, -1, 1, 1)
    return F.relu(z2 - 2 * zp + p2)


def distance_to_log_similarity(distances: Tensor) -> Tensor:
    """log((d + 1) / (d + 1e-4)), elementwise."""
    return torch.log((distances + 1) / (distances + LOG_EPSILON))


def cosine_similarity(latent: Tensor, prototypes: Tensor) -> Tensor:
    """cos(z, p) of latent (B, D, h, w) and prototypes (P, D): (B, P, h, w)."""
    return F.conv2d(F.normalize(latent, dim=1), F.normalize(prototypes, dim=1)[:, :, None, None])


@register_family
class ProtoPNet(PrototypeModel):
    """Native ProtoPNet (log similarity) and its cosine / support-trivial variants."""

    family = "protopnet"
    config_class = ProtoPNetConfig

    def __init__(self, config: ProtoPNetConfig):
        super().__init__(config.input, config.class_names, config.backbone, config.similarity)
        self.config = config
        backbone = build_backbone(config.backbone)
        self.features = backbone.module
        per_set = config.prototypes_per_set
        for name in config.prototype_sets:
            suffix = self._suffix(name)
            setattr(self, f"add_on_layers{suffix}", build_add_on(config.add_on, backbone.out_channels, config.prototype_dim))
            setattr(self, f"prototype_vectors{suffix}", nn.Parameter(torch.rand(per_set, config.prototype_dim, 1, 1)))
            identity = torch.zeros(per_set, len(config.class_names))
            identity[torch.arange(per_set), torch.arange(per_set) * len(config.class_names) // per_set] = 1
            self.register_buffer(f"class_identity{suffix}", identity)
            layer = nn.Linear(per_set, len(config.class_names), bias=False)
            setattr(self, f"last_layer{suffix}", layer)
            self.set_last_layer_connection(name, config.incorrect_class_connection)

    def _suffix(self, name: str) -> str:
        return "" if len(self.config.prototype_sets) == 1 else f"_{name}"

    def _set_parts(self, name: str) -> tuple[nn.Module, nn.Parameter, nn.Linear, Tensor]:
        s = self._suffix(name)
        return (getattr(self, f"add_on_layers{s}"), getattr(self, f"prototype_vectors{s}"),
                getattr(self, f"last_layer{s}"), getattr(self, f"class_identity{s}"))

    def set_last_layer_connection(self, name: str, incorrect: float) -> None:
        """ProtoPNet's initialisation: +1 to the prototype's class, ``incorrect`` to the others."""
        _, _, layer, identity = self._set_parts(name)
        with torch.no_grad():
            layer.weight.copy_(identity.t() + incorrect * (1 - identity.t()))

    # ----- the interface ---------------------------------------------------------------
    def set_latents(self, x: Tensor) -> dict[str, Tensor]:
        """Per prototype set, the add-on output (B, D, h, w) for normalised images (B, 3, H, W)."""
        feats = self.features(x)
        return {name: self._set_parts(name)[0](feats) for name in self.config.prototype_sets}

    def latent(self, x: Tensor) -> Tensor:
        """(B, S*D, h, w): the latents of the S prototype sets stacked along channels."""
        return torch.cat(list(self.set_latents(x).values()), dim=1)

    def similarity_from_latents(self, latents: dict[str, Tensor]) -> Tensor:
        """Per-set latents -> similarity maps (B, P, h, w) in prototype-index order."""
        fn = {"log": log_similarity, "linear": linear_similarity, "cosine": cosine_similarity}[self.config.similarity]
        return torch.cat([fn(latents[n], self._set_parts(n)[1].flatten(1)) for n in self.config.prototype_sets], dim=1)

    def similarity_maps(self, x: Tensor) -> Tensor:
        return self.similarity_from_latents(self.set_latents(x))

    def distance_maps(self, x: Tensor) -> Tensor:
        """Squared L2 (``log``, ``linear``) or 1 - cosine (``cosine``) distances (B, P, h, w); lower = closer."""
        latents = self.set_latents(x)
        if self.config.similarity == "cosine":
            return 1 - self.similarity_from_latents(latents)
        return torch.cat([squared_l2_distances(latents[n], self._set_parts(n)[1].flatten(1))
                          for n in self.config.prototype_sets], dim=1)

    @property
    def class_weights(self) -> Tensor:
        return torch.cat([self._set_parts(n)[2].weight for n in self.config.prototype_sets], dim=1)

    @property
    def prototype_class_identity(self) -> Tensor:
        return torch.cat([self._set_parts(n)[3] for n in self.config.prototype_sets], dim=0)

    @property
    def prototype_embeddings(self) -> Tensor:
        """(P, S*D): each prototype in its set's channels of the stacked latent, zeros elsewhere."""
        dim, sets = self.config.prototype_dim, self.config.prototype_sets
        blocks = []
        for i, name in enumerate(sets):
            vectors = self._set_parts(name)[1].flatten(1)
            padded = vectors.new_zeros(vectors.shape[0], dim * len(sets))
            padded[:, i * dim:(i + 1) * dim] = vectors
            blocks.append(padded)
        return torch.cat(blocks, dim=0)

    def prototype_groups(self) -> dict[str, tuple[int, int]]:
        per_set = self.config.prototypes_per_set
        return {n: (i * per_set, (i + 1) * per_set) for i, n in enumerate(self.config.prototype_sets)}

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return ProtoPNetConfig(
            class_names=("a", "b", "c"), backbone="tiny_cnn_small", prototypes_per_class=2,
            prototype_dim=8, similarity="cosine", prototype_sets=("support", "trivial"),
            input=InputSpec(image_size=(64, 64)),
        ).to_dict()
