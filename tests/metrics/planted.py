"""A planted model for known-answer tests: every prototype fires on orange pixels, which only the
synthetic birds' beak has, so its region always holds the beak."""

from __future__ import annotations

import colorsys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protoviz.data.synthetic import COLOURS, class_rules
from protoviz.data.transforms import denormalize
from protoviz.models.base import InputSpec, PrototypeModel

ORANGE = colorsys.hsv_to_rgb(COLOURS["orange"][0] / 360.0, *COLOURS["orange"][1:])


class BeakModel(PrototypeModel):
    """``per_class`` prototypes per synthetic class; similarity = local share of beak-orange pixels
    (a Gaussian of the RGB distance to orange, average-pooled with stride 4)."""

    family = "planted_beak"

    def __init__(self, image_size: int = 128, per_class: int = 1):
        names = tuple(rule.name for rule in class_rules())
        super().__init__(InputSpec(image_size=(image_size, image_size)), names, "none", "orange")
        self.per_class = per_class
        self.dummy = nn.Parameter(torch.zeros(1))
        self.register_buffer("orange", torch.tensor(ORANGE).view(1, 3, 1, 1))

    def latent(self, x: Tensor) -> Tensor:
        unit = denormalize(x, self.input_spec)
        closeness = torch.exp(-((unit - self.orange) ** 2).sum(dim=1, keepdim=True) / (2 * 0.15 ** 2))
        return F.avg_pool2d(closeness, kernel_size=8, stride=4, padding=2) + 0 * self.dummy

    def similarity_maps(self, x: Tensor) -> Tensor:
        return self.latent(x).expand(-1, self.num_prototypes, -1, -1)

    @property
    def prototype_class_identity(self) -> Tensor:
        return torch.eye(len(self.class_names)).repeat_interleave(self.per_class, dim=0)

    @property
    def class_weights(self) -> Tensor:
        return self.prototype_class_identity.t().contiguous()

    def config_dict(self) -> dict[str, Any]:
        return {"image_size": self.input_spec.image_size[0], "per_class": self.per_class}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BeakModel:
        return cls(**config)

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"image_size": 64, "per_class": 1}
