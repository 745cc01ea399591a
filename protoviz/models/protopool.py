"""ProtoPool (Rymarczyk et al. 2022): prototypes shared between classes through slots.

Each class c has S slots; slot (c, s) mixes the prototypes with weights pi[c, :, s] over P:

- ``slots="soft"``: pi = softmax over P of proto_presence, the repository's default ``forward(x)``
  (how it scores a model trained without ``--pp_gumbel``, its script default);
- ``slots="hard"``: pi = one-hot of argmax_p proto_presence[c, p, s], as ``forward(x, gumbel_scale=10e3)``
  after push (the gumbel noise cannot move a softmax scaled by 1e4).

With squared-L2 distance maps d_p (B, P, h, w) and the activation g (``log``: g(d) = log((d + 1) / (d + 1e-4));
``linear``: g(d) = 1 / (d + 1)), the mixing happens on distances, before g:

    f(c, s) = g(sum_p pi[c, p, s] min_hw d_p) - g(sum_p pi[c, p, s] mean_hw d_p)   (the *focal similarity*)
    logits = last_layer(f over the C*S slots flattened)   (Linear(C*S, C), without bias), or
    logits_c = sum_s f(c, s)                              (no last layer).

The similarity maps are the *focal maps* g(d_p) - g(mean_hw d_p): the activation shifted by a per-image,
per-prototype constant; their max is f_p = g(min d_p) - g(mean d_p) and their min-max heatmaps equal
those of g(d). With hard slots f(c, s) = f_{a(c, s)}, so the logits are linear in the pooled maps:
``logits = max_similarities @ class_weights.T`` exactly, with ``class_weights[c, p] = sum over slots
(c', s) with a(c', s) = p of W[c, c' S + s]`` (W = block ones without a last layer). With soft slots
the logits are not a function of the maps (``logits_from_pooled`` is False); ``class_weights`` are then
the expected weights sum_{c', s} W[c, c' S + s] pi[c', p, s], so contributions are indicative only.
``prototype_class_identity[p, c]`` = 1 where the argmax of a slot of class c is p (a prototype can
serve several classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from protoviz.errors import ConfigError, ModelError
from protoviz.models.backbones import build_backbone
from protoviz.models.base import FamilyConfig, InputSpec, PrototypeModel, PrototypeOutput
from protoviz.models.hints import ACTIVATIONS, SLOTS
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
    slots: str = "hard"
    activation: str = "log"

    def __post_init__(self) -> None:
        if not self.class_names or min(self.num_prototypes, self.prototype_dim, self.num_slots) < 1:
            raise ConfigError("ProtoPool needs at least one class, prototype and slot, and prototype_dim >= 1")
        if self.slots not in SLOTS:
            raise ConfigError(f"ProtoPool slots must be one of {SLOTS}, got {self.slots!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"ProtoPool activation must be one of {ACTIVATIONS}, got {self.activation!r}")


def activation(kind: str, distances: Tensor) -> Tensor:
    """ProtoPool's distance_2_similarity: ``log`` -> log((d + 1) / (d + 1e-4)), ``linear`` -> 1 / (d + 1)."""
    if kind == "linear":
        return 1 / (distances + 1)
    return distance_to_log_similarity(distances)


@register_family
class ProtoPool(PrototypeModel):
    """ProtoPool with soft or hard slots behind the common interface (focal maps, see the module docstring)."""

    family = "protopool"
    config_class = ProtoPoolConfig

    def __init__(self, config: ProtoPoolConfig):
        super().__init__(config.input, config.class_names, config.backbone, f"focal_{config.activation}")
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

    def focal_maps(self, distances: Tensor) -> Tensor:
        """Distances (B, P, h, w) -> focal maps g(d) - g(mean_hw d) (B, P, h, w)."""
        mean = distances.flatten(2).mean(dim=2)[:, :, None, None]
        return activation(self.config.activation, distances) - activation(self.config.activation, mean)

    def similarity_maps(self, x: Tensor) -> Tensor:
        """Focal maps g(d) - g(mean_hw d): (B, P, h, w)."""
        return self.focal_maps(self.distance_maps(x))

    @property
    def presence_logits(self) -> Tensor:
        """(C, P, S) the ``proto_presence`` buffer."""
        return cast(Tensor, self.proto_presence)

    def slot_assignment(self) -> Tensor:
        """(C, S) index of the prototype each class slot picks (argmax over P of proto_presence)."""
        return self.presence_logits.argmax(dim=1)

    def slot_presence(self) -> Tensor:
        """(C, P, S) weight pi of each prototype in each class slot: softmax over P (soft) or its argmax one-hot."""
        presence = self.presence_logits
        if self.config.slots == "soft":
            return torch.softmax(presence, dim=1)
        one_hot = nn.functional.one_hot(self.slot_assignment(), self.config.num_prototypes)  # (C, S, P)
        return one_hot.permute(0, 2, 1).to(presence.dtype)

    def slot_weights(self) -> Tensor:
        """(C, C*S) weight of each (class, slot) focal similarity in each class score."""
        if self.config.last_layer:
            return cast(Tensor, self.last_layer.weight)
        C, _, S = self.presence_logits.shape
        return torch.eye(C, device=self.presence_logits.device).repeat_interleave(S, dim=1)

    def logits_from_distances(self, distances: Tensor) -> Tensor:
        """Class scores (B, C) from distances (B, P, h, w), as ProtoPool's forward: mix, then activate."""
        presence = self.slot_presence()
        mixed_min = torch.einsum("bp,cps->bcs", distances.flatten(2).amin(dim=2), presence)
        mixed_mean = torch.einsum("bp,cps->bcs", distances.flatten(2).mean(dim=2), presence)
        focal = activation(self.config.activation, mixed_min) - activation(self.config.activation, mixed_mean)
        return focal.flatten(1) @ self.slot_weights().t()

    @property
    def logits_from_pooled(self) -> bool:
        return self.config.slots == "hard"

    def logits_from_similarities(self, maps: Tensor, pooled: Tensor) -> Tensor:
        """Hard slots: ``pooled @ class_weights.T``. Soft slots mix distances, which the maps do not hold."""
        if self.config.slots == "soft":
            raise ModelError("ProtoPool with soft slots mixes prototype distances before the activation, so its "
                             "logits are not a function of the similarity maps; use model(x).logits")
        return super().logits_from_similarities(maps, pooled)

    def forward(self, x: Tensor) -> PrototypeOutput:  # type: ignore[override]
        """Normalised images (B, 3, H, W) -> :class:`PrototypeOutput` (one backbone pass)."""
        self._check_input(x)
        distances = self.distance_maps(x)
        maps = self.focal_maps(distances)
        pooled = maps.flatten(2).amax(dim=2)
        if self.config.slots == "soft":
            return PrototypeOutput(self.logits_from_distances(distances), maps, pooled)
        return PrototypeOutput(self.logits_from_similarities(maps, pooled), maps, pooled)

    @property
    def class_weights(self) -> Tensor:
        """(C, P): slot weights times the slots' prototype weights pi (summed over slots)."""
        presence = self.slot_presence()  # (C', P, S)
        per_slot = presence.permute(0, 2, 1).reshape(-1, presence.shape[1])  # (C'*S, P)
        return self.slot_weights() @ per_slot.to(self.slot_weights().dtype)

    def settings(self) -> dict[str, str]:
        kind = "softmax of proto_presence" if self.config.slots == "soft" else "argmax of proto_presence"
        return {"slots": f"{self.config.slots} ({kind})"}

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
