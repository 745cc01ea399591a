"""Blur: a Gaussian blur (CaBRNet's perturbation analysis)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor

from protoviz.explain.characteristics.registry import PIL_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


def gaussian_kernels(sigmas: Tensor, size: int) -> Tensor:
    """(B,) standard deviations -> (B, size) normalised 1-D Gaussian kernels, torchvision's formula
    (``linspace(-half, half, size)``; a sigma of 0 gives the identity kernel)."""
    half = (size - 1) * 0.5
    x = torch.linspace(-half, half, size, dtype=torch.float64)
    safe = sigmas.double().clamp_min(1e-12)[:, None]
    pdf = torch.exp(-0.5 * (x[None, :] / safe) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def blur_tensor(unit: Tensor, sigmas: Tensor, size: int) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) with one sigma per image, reflect padding (as torchvision);
    a kernel wider than the image is cut to the image (reflect padding needs pad < size)."""
    batch, channels, height, width = unit.shape
    size = max(1, min(size, 2 * min(height, width) - 1))
    size = size if size % 2 == 1 else size - 1
    kernels = gaussian_kernels(sigmas.cpu(), size).to(device=unit.device, dtype=unit.dtype)  # (B, k)
    weight = kernels.repeat_interleave(channels, dim=0)  # (B * C, k)
    flat = unit.reshape(1, batch * channels, height, width)
    pad = size // 2
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), weight[:, None, None, :], groups=batch * channels)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), weight[:, None, :, None], groups=batch * channels)
    return flat.reshape(batch, channels, height, width)


@register_characteristic("blur", "Blur", parameters=("blur_sigma", "blur_kernel"), neutral={"blur_sigma": 0.0},
                         published=PIL_JPEG,
                         source="CaBRNet local_perturbation_analysis.py: GaussianBlur(kernel_size=21, sigma=2.0)")
class Blur:
    """torchvision ``GaussianBlur(kernel_size, sigma)`` on the PIL image (CaBRNet's defaults: 21 px, sigma
    2): a Gaussian kernel from ``linspace(-(k-1)/2, (k-1)/2, k)``, reflect padding, rounded back to
    uint8. Fast: the same separable blur in float after resizing, sigma and kernel scaled by the mean
    input / native size of each image. Removes fine detail and edges alike (texture keeps edges)."""

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        params = context.params
        scale = context.scale.double().mean(dim=1)  # (B,)
        sigmas = params.blur_sigma * scale
        size = max(1, math.ceil(params.blur_kernel * float(scale.max())))
        return blur_tensor(unit, sigmas, size if size % 2 == 1 else size + 1)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        if params.blur_sigma <= 0:
            return image.copy()
        size = min(params.blur_kernel, 2 * min(image.size) - 1)
        size = size if size % 2 == 1 else size - 1
        return TF.gaussian_blur(image, [size, size], [params.blur_sigma, params.blur_sigma])
