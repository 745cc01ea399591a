"""ProtoPool (Rymarczyk et al. 2022): prototypes shared between classes through slots.

Each class c has S slots; slot (c, s) picks prototype a(c, s) = argmax_p proto_presence[c, p, s]
(the hard, post-push assignment; the soft/gumbel one is a training device). With squared-L2 distance
maps d_p (B, P, h, w) and g(d) = log((d + 1) / (d + 1e-4)), slot (c, s) scores the *focal similarity*
f(a) = g(min_hw d_a) - g(mean_hw d_a), and

    logits = last_layer(f over the C*S slots flattened)   (Linear(C*S, C), without bias), or
    logits_c = sum_s f(a(c, s))                           (no last layer).

Both are linear in the per-prototype focal similarity f_p, with
``class_weights[c, p] = sum over slots (c', s) with a(c', s) = p of W[c, c' S + s]`` (W = identity
block-ones without a last layer). So that ``logits = max_similarities @ class_weights.T`` holds
exactly, the similarity maps are the *focal maps* g(d_p) - g(mean_hw d_p): the log similarity shifted
by a per-image, per-prototype constant; their max is f_p and their min-max heatmaps equal those of
the plain log similarity. ``prototype_class_identity[p, c]`` = 1 where a slot of class c picks p
(a prototype can serve several classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from protoviz.errors import ConfigError
from protoviz.models.backbones import build_backbone
from protoviz.models.base import FamilyConfig, InputSpec, PrototypeModel
from protoviz.models.protopnet import distance_to_log_similarity, squared_l2_distances
from protoviz.models.registry import register_family


@dataclass(frozen=True)
class ProtoPoolConfig(FamilyConfig):
    """Everything needed to rebuild a ProtoPool model."""

    class_names: tuple[str, ...]
    backbone: str = "resnet18"
    num_prototypes: int = 20
    prototype_dim: int = 64
    num_slots: int = 10
    last_layer: bool = True
    input: InputSpec = field(default_factory=InputSpec)

    def __post_init__(self) -> None:
        if not self.class_names or min(self.num_prototypes, self.prototype_dim, self.num_slots) < 1:
            raise ConfigError("ProtoPool needs at least one class, prototype and slot, and prototype_dim >= 1")



@register_family
class ProtoPool(PrototypeModel):
    """ProtoPool with the hard slot assignment, behind the common (linear-in-focal-similarity) head."""

    family = "protopool"
    config_class = ProtoPoolConfig

    def __init__(self, config: ProtoPoolConfig):
        super().__init__(config.input, config.class_names, config.backbone, "focal_log")
        self.config = config
        C, P, S = len(config.class_names), config.num_prototypes, config.num_slots
        backbone = build_backbone(config.backbone)
        self.features = backbone.module
        self.add_on_layers = nn.Sequential(nn.Conv2d(backbone.out_channels, config.prototype_dim, 1), nn.Sigmoid())
        self.prototype_vectors = nn.Parameter(torch.rand(P, config.prototype_dim, 1, 1))
        presence = torch.zeros(C, P, S)
        presence[torch.arange(C)[:, None], (torch.arange(C)[:, None] * S + torch.arange(S)) % P, torch.arange(S)] = 1
        self.register_buffer("proto_presence", presence)
        if config.last_layer:
            self.last_layer = nn.Linear(C * S, C, bias=False)
            with torch.no_grad():
                self.last_layer.weight.copy_(torch.eye(C).repeat_interleave(S, dim=1))

    def latent(self, x: Tensor) -> Tensor:
        return self.add_on_layers(self.features(x))

    def distance_maps(self, x: Tensor) -> Tensor:
        """Squared L2 distances (B, P, h, w) of latent patches to prototypes."""
        return squared_l2_distances(self.latent(x), self.prototype_vectors.flatten(1))

    def similarity_maps(self, x: Tensor) -> Tensor:
        """Focal maps g(d) - g(mean_hw d): (B, P, h, w)."""
        distances = self.distance_maps(x)
        mean = distances.flatten(2).mean(dim=2)[:, :, None, None]
        return distance_to_log_similarity(distances) - distance_to_log_similarity(mean)

    def slot_assignment(self) -> Tensor:
        """(C, S) index of the prototype each class slot picks (argmax over P of proto_presence)."""
        return self.proto_presence.argmax(dim=1)

    def slot_weights(self) -> Tensor:
        """(C, C*S) weight of each (class, slot) focal similarity in each class score."""
        if self.config.last_layer:
            return self.last_layer.weight
        C, S = self.proto_presence.shape[0], self.proto_presence.shape[2]
        return torch.eye(C, device=self.proto_presence.device).repeat_interleave(S, dim=1)

    @property
    def class_weights(self) -> Tensor:
        """(C, P): slot weights summed over the slots that pick each prototype."""
        one_hot = nn.functional.one_hot(self.slot_assignment().flatten(), self.config.num_prototypes)
        return self.slot_weights() @ one_hot.to(self.slot_weights().dtype)

    @property
    def prototype_class_identity(self) -> Tensor:
        assignment = self.slot_assignment()
        identity = torch.zeros(self.config.num_prototypes, assignment.shape[0], device=assignment.device)
        identity[assignment, torch.arange(assignment.shape[0], device=assignment.device)[:, None]] = 1
        return identity

    @property
    def prototype_embeddings(self) -> Tensor:
        return self.prototype_vectors.flatten(1)

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return ProtoPoolConfig(class_names=("a", "b", "c"), backbone="tiny_cnn_small", num_prototypes=5,
                               prototype_dim=8, num_slots=2, input=InputSpec(image_size=(64, 64))).to_dict()
