"""Preprocessing derived from a model's own :class:`InputSpec` (size, mean, std)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protoviz.models.base import InputSpec


def resize_image(image: Image.Image, spec: InputSpec) -> Image.Image:
    """Resize to the model's (H, W) with PIL bilinear, like torchvision's ``Resize`` on PIL images."""
    height, width = spec.image_size
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BILINEAR)


def to_unit_tensor(images: Sequence[Image.Image], spec: InputSpec) -> Tensor:
    """RGB PIL images -> resized float tensor (B, 3, H, W) in [0, 1]."""
    arrays = [np.asarray(resize_image(image.convert("RGB"), spec), dtype=np.float32) / 255.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def normalize(unit: Tensor, spec: InputSpec) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> normalised with the model's mean and std."""
    mean = torch.tensor(spec.mean, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    return (unit - mean) / std


def denormalize(normalised: Tensor, spec: InputSpec) -> Tensor:
    """Inverse of :func:`normalize`: (B, 3, H, W) back to [0, 1] (not clamped)."""
    mean = torch.tensor(spec.mean, dtype=normalised.dtype, device=normalised.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=normalised.dtype, device=normalised.device).view(1, 3, 1, 1)
    return normalised * std + mean


def preprocess(images: Sequence[Image.Image], spec: InputSpec) -> Tensor:
    """RGB PIL images -> the model's normalised input (B, 3, H, W)."""
    return normalize(to_unit_tensor(images, spec), spec)


def to_uint8_image(unit: Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 for display."""
    return (unit.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
