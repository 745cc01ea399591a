"""The registry of heatmap methods: name -> function (model, images, prototype indices) -> maps.

Every method answers the same question: *where in the image is the evidence that prototype k is
present?* and returns one map per (image, prototype) at the model's input resolution. Tests are
generated from :func:`list_methods`, so a method is checked the moment it is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from protoviz.errors import ConfigError, ModelError
from protoviz.models.base import PrototypeModel


@dataclass(frozen=True)
class HeatmapOptions:
    """Parameters shared by the methods (each method reads the ones it needs).

    batch_rows: (image, prototype) rows per forward/backward pass; lower it to save memory.
    smoothgrad_samples: noisy copies per row for ``smoothgrad``.
    smoothgrad_noise: noise standard deviation as a fraction of the input range (Smilkov et al.
        recommend 0.1-0.2); the range is that of a [0, 1] image after the model's normalisation.
    random_seed: seed of the re-randomised weights of the ``random`` baseline.
    lrp_epsilon: stabiliser of the LRP rules in ``prp``.
    """

    batch_rows: int = 32
    smoothgrad_samples: int = 16
    smoothgrad_noise: float = 0.15
    random_seed: int = 0
    lrp_epsilon: float = 1e-6

    def __post_init__(self) -> None:
        if self.batch_rows < 1 or self.smoothgrad_samples < 1:
            raise ConfigError(f"HeatmapOptions: batch_rows and smoothgrad_samples must be >= 1, got {self}")
        if self.smoothgrad_noise < 0 or self.lrp_epsilon <= 0:
            raise ConfigError(f"HeatmapOptions: expected smoothgrad_noise >= 0 and lrp_epsilon > 0, got {self}")


MethodFunction = Callable[[PrototypeModel, Tensor, Tensor, HeatmapOptions], Tensor]
"""(model, images (B, 3, H, W) normalised, indices (B, K) long, options) -> maps (B, K, H, W)."""


@dataclass(frozen=True)
class HeatmapMethod:
    """A registered method. ``signed``: maps may be negative (evidence against), e.g. LRP relevance."""

    name: str
    label: str
    description: str
    function: MethodFunction
    uses_gradients: bool
    signed: bool = False


_METHODS: dict[str, HeatmapMethod] = {}
DEFAULT_METHOD = "upsample"


def register_method(name: str, label: str, description: str, uses_gradients: bool,
                    signed: bool = False) -> Callable[[MethodFunction], MethodFunction]:
    """Decorator adding a method function to the registry; a name registered twice is an error."""

    def decorate(function: MethodFunction) -> MethodFunction:
        if name in _METHODS:
            raise ConfigError(f"a heatmap method named {name!r} is already registered")
        _METHODS[name] = HeatmapMethod(name, label, description, function, uses_gradients, signed)
        return function

    return decorate


def list_methods() -> list[str]:
    """Names of every registered method, the default first."""
    return sorted(_METHODS, key=lambda n: (n != DEFAULT_METHOD, n))


def get_method(name: str) -> HeatmapMethod:
    """The method called ``name``."""
    if name not in _METHODS:
        raise ConfigError(f"unknown heatmap method {name!r}; choose one of {', '.join(list_methods())}")
    return _METHODS[name]


def prototype_rows(prototype_indices: Tensor | list[int] | tuple[int, ...], batch: int, num_prototypes: int,
                   device: torch.device) -> Tensor:
    """Prototype indices (K,) shared by all images or (B, K) per image -> (B, K) long on ``device``."""
    indices = torch.as_tensor(prototype_indices, dtype=torch.long, device=device)
    if indices.dim() == 1:
        indices = indices.unsqueeze(0).expand(batch, -1)
    if indices.dim() != 2 or indices.shape[0] != batch or indices.shape[1] == 0:
        raise ConfigError(f"prototype indices must have shape (K,) or ({batch}, K) with K >= 1, "
                          f"got {tuple(indices.shape)}")
    if indices.min() < 0 or indices.max() >= num_prototypes:
        raise ConfigError(f"prototype indices must lie in [0, {num_prototypes}), got {indices.min()}..{indices.max()}")
    return indices.contiguous()


def compute_heatmaps(method: str, model: PrototypeModel, images: Tensor,
                     prototype_indices: Tensor | list[int] | tuple[int, ...],
                     options: HeatmapOptions | None = None) -> Tensor:
    """Heatmaps of ``method`` for normalised images (B, 3, H, W) and prototype indices (K,) or (B, K).

    Returns (B, K, H, W) float maps on the images' device, detached; higher = more evidence.
    The model is used as given (call it in eval mode); its parameters are never modified.
    """
    spec = get_method(method)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ModelError(f"expected normalised images of shape (B, 3, H, W), got {tuple(images.shape)}")
    images = images.to(model.device)
    indices = prototype_rows(prototype_indices, images.shape[0], model.num_prototypes, images.device)
    maps = spec.function(model, images, indices, options or HeatmapOptions())
    expected = (images.shape[0], indices.shape[1], images.shape[2], images.shape[3])
    if tuple(maps.shape) != expected:
        raise ModelError(f"heatmap method {method!r} returned {tuple(maps.shape)}, expected {expected}")
    return maps.detach()


def expand_rows(images: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 3, H, W) and (B, K) -> one row per (image, prototype): (B*K, 3, H, W) and (B*K,)."""
    k = indices.shape[1]
    return images.repeat_interleave(k, dim=0), indices.reshape(-1)


def max_similarity(model: PrototypeModel, rows: Tensor, prototypes: Tensor) -> Tensor:
    """Each row's own prototype's max similarity: rows (N, 3, H, W), prototypes (N,) -> (N,)."""
    maps = model.similarity_maps(rows)
    picked = maps[torch.arange(rows.shape[0], device=rows.device), prototypes]
    return picked.flatten(1).amax(dim=1)
