"""Deformable ProtoPNet (Donnelly et al. 2022): 2x2 prototypes whose parts move by learned offsets.

Computation (read from the paper and the spec; the original runs only with its compiled CUDA kernel,
so **equivalence with that kernel is unverified**):

1. f = backbone(x), upsampled x2 bilinearly (the ``upsample`` add-on, no parameters): (B, D, H, W).
2. An epsilon channel is appended (D+1 channels); every location is scaled to length
   L / sqrt(kh kw) with L = ``input_vector_length`` (64): zn = L z / sqrt(|z|^2 + eps) / sqrt(kh kw).
3. offsets = conv_offset(zn): (B, 2 kh kw, H, W), (dy, dx) per prototype part, shared by prototypes.
4. Prototypes (P, D, kh, kw) get the epsilon channel too, each part scaled to unit length, then
   divided by sqrt(kh kw): pn = p / (sqrt(|p|^2 + eps) + eps) / sqrt(kh kw).
5. Part (m, n) of the prototype at output (i, j) reads zn at (i - pad + m dil + dy, j - pad + n dil + dx)
   with *norm-preserving* bilinear interpolation: sqrt(bilinear(zn^2)) per channel (zeros outside),
   so interpolated vectors keep length L / sqrt(kh kw).
6. similarity = ReLU(sum over parts and channels of sampled . pn / (1.01 L)), in [0, ~0.99];
   logits = last_layer(max over locations) (top-k mean with k = 1 at evaluation).

Step 5 is emulated with ``grid_sample`` on any device (CPU or CUDA).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protoviz.errors import ConfigError
from protoviz.models.backbones import build_backbone
from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.registry import register_family
from protoviz.models.tesnet import default_identity

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


@dataclass(frozen=True)
class DeformableConfig:
    """Everything needed to rebuild a Deformable ProtoPNet.

    ``offset_layers``: the conv_offset stack, each ``{"kind": "conv", "out", "kernel", "padding",
    "dilation", "bias"}`` or ``{"kind": <activation>}``; its last conv outputs 2 kh kw channels.
    """

    class_names: tuple[str, ...]
    backbone: str = "resnet50"
    num_prototypes: int = 20
    prototype_size: tuple[int, int] = (2, 2)
    offset_layers: tuple[dict[str, Any], ...] = ({"kind": "conv", "out": 8, "kernel": 2, "padding": 1,
                                                   "dilation": 2, "bias": True},)
    upsample: bool = True
    align_corners: bool = False
    prototype_padding: int = 1
    prototype_dilation: int = 2
    epsilon: float = 1e-5
    input_vector_length: float = 64.0
    input: InputSpec = field(default_factory=InputSpec)

    def __post_init__(self) -> None:
        if not self.class_names or self.num_prototypes < 1 or not self.offset_layers:
            raise ConfigError("Deformable ProtoPNet needs classes, prototypes and an offset network")
        for layer in self.offset_layers:
            if layer.get("kind") != "conv" and layer.get("kind") not in ACTIVATIONS:
                raise ConfigError(f"unsupported conv_offset layer {layer}; expected conv or {sorted(ACTIVATIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "class_names": list(self.class_names), "prototype_size": list(self.prototype_size),
                "offset_layers": [dict(layer) for layer in self.offset_layers], "input": self.input.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeformableConfig:
        return cls(**{**data, "class_names": tuple(data["class_names"]), "prototype_size": tuple(data["prototype_size"]),
                      "offset_layers": tuple(dict(layer) for layer in data["offset_layers"]),
                      "input": InputSpec.from_dict(data["input"])})


def build_offset_net(layers: tuple[dict[str, Any], ...], in_channels: int) -> nn.Sequential:
    """conv_offset from its layer specs (keys ``conv_offset.{i}.weight`` as in the research code)."""
    modules: list[nn.Module] = []
    channels = in_channels
    for layer in layers:
        if layer["kind"] == "conv":
            modules.append(nn.Conv2d(channels, int(layer["out"]), int(layer["kernel"]), padding=int(layer["padding"]),
                                     dilation=int(layer["dilation"]), bias=bool(layer["bias"])))
            channels = int(layer["out"])
        else:
            modules.append(ACTIVATIONS[layer["kind"]]())
    return nn.Sequential(*modules)


def norm_preserving_sample(z: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """sqrt(bilinear(z^2)) of z (B, C, H, W) at pixel positions y, x (B, H', W'); zeros outside."""
    H, W = z.shape[-2:]
    grid = torch.stack(((2 * x + 1) / W - 1, (2 * y + 1) / H - 1), dim=-1)
    squared = F.grid_sample(z * z, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return squared.clamp_min(0).sqrt()


@register_family
class DeformableProtoPNet(PrototypeModel):
    """Deformable ProtoPNet behind the common interface (see the module docstring)."""

    family = "deformable"
    class_identity: Tensor  # (P, C) buffer
    config_class = DeformableConfig

    def __init__(self, config: DeformableConfig):
        super().__init__(config.input, config.class_names, config.backbone, "deformable_cosine")
        self.config = config
        backbone = build_backbone(config.backbone)
        self.features = backbone.module
        D, (kh, kw), P, C = backbone.out_channels, config.prototype_size, config.num_prototypes, len(config.class_names)
        if config.offset_layers[-1].get("out") != 2 * kh * kw:
            raise ConfigError(f"conv_offset must end with {2 * kh * kw} channels (dy, dx per prototype part)")
        self.conv_offset = build_offset_net(config.offset_layers, D + 1)
        self.prototype_vectors = nn.Parameter(torch.rand(P, D, kh, kw))
        self.register_buffer("class_identity", default_identity(P, C))
        self.last_layer = nn.Linear(P, C, bias=False)
        with torch.no_grad():
            self.last_layer.weight.copy_(self.class_identity.t() - 0.5 * (1 - self.class_identity.t()))

    def latent(self, x: Tensor) -> Tensor:
        """Upsampled backbone features (B, D, H, W)."""
        feats = self.features(x)
        if self.config.upsample:
            feats = F.interpolate(feats, scale_factor=2, mode="bilinear", align_corners=self.config.align_corners)
        return feats

    def _normalised_input(self, z: Tensor) -> Tensor:
        c = self.config
        z = torch.cat((z, torch.full_like(z[:, :1], c.epsilon)), dim=1)
        length = torch.sqrt((z * z).sum(dim=1, keepdim=True) + c.epsilon)
        return c.input_vector_length * z / length / math.sqrt(c.prototype_size[0] * c.prototype_size[1])

    def normalised_prototypes(self) -> Tensor:
        """(P, D+1, kh, kw) prototypes with the epsilon channel, parts scaled to 1 / sqrt(kh kw)."""
        c, vectors = self.config, self.prototype_vectors
        p = torch.cat((vectors, torch.full_like(vectors[:, :1], c.epsilon)), dim=1)
        length = torch.sqrt((p * p).sum(dim=1, keepdim=True) + c.epsilon)
        return p / (length + c.epsilon) / math.sqrt(c.prototype_size[0] * c.prototype_size[1])

    def part_offsets(self, x: Tensor) -> Tensor:
        """(B, kh kw, 2, H', W') the (dy, dx) offset of each prototype part at each location."""
        offsets = self.conv_offset(self._normalised_input(self.latent(x)))
        return offsets.view(offsets.shape[0], -1, 2, *offsets.shape[-2:])

    def similarity_maps(self, x: Tensor) -> Tensor:
        c = self.config
        zn = self._normalised_input(self.latent(x))
        offsets = self.conv_offset(zn)
        B, _, Ho, Wo = offsets.shape
        kh, kw = c.prototype_size
        rows = torch.arange(Ho, device=x.device, dtype=zn.dtype).view(1, Ho, 1)
        cols = torch.arange(Wo, device=x.device, dtype=zn.dtype).view(1, 1, Wo)
        pn = self.normalised_prototypes()
        dot = zn.new_zeros(B, pn.shape[0], Ho, Wo)
        for m in range(kh):  # kh * kw = 4 parts: a loop over parts, not prototypes or images
            for n in range(kw):
                k = m * kw + n
                y = rows - c.prototype_padding + m * c.prototype_dilation + offsets[:, 2 * k]
                xx = cols - c.prototype_padding + n * c.prototype_dilation + offsets[:, 2 * k + 1]
                sampled = norm_preserving_sample(zn, y, xx)
                dot = dot + F.conv2d(sampled, pn[:, :, m:m + 1, n:n + 1])
        return F.relu(dot / (1.01 * c.input_vector_length))

    @property
    def class_weights(self) -> Tensor:
        return self.last_layer.weight

    @property
    def prototype_class_identity(self) -> Tensor:
        return self.class_identity

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return DeformableConfig(class_names=("a", "b", "c"), backbone="tiny_cnn_small", num_prototypes=6,
                                input=InputSpec(image_size=(64, 64))).to_dict()
