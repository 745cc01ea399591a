"""Receptive-field boxes of latent patches, as the research repositories compute them.

ProtoPNet (and TesNet, ST-ProtoPNet, ProtoPool, which copy it) walks the backbone's convolutions and
pools ``conv_info()`` -> ``compute_proto_layer_rf_info_v2`` -> ``(n, j, r, start)`` (map size, jump,
field size, centre of the first cell), then a cell (row, col) covers
``[max(int(c_h - r/2), 0), min(int(c_h + r/2), H))`` with ``c_h = start + row * j`` (same for columns).
:func:`receptive_field` reproduces that walk for the backbones whose layers form one chain (VGG,
ResNet main path, protoviz's small CNN); it returns None for DenseNet, ConvNeXt and unknown modules.
ST-ProtoPNet's full variant upsamples the map x2 in its add-on: n doubles and j halves (what its
``proto_layer_rf_info[0], [1] = 14, 16`` does at 224 px).

PIP-Net draws a fixed 32-pixel patch per cell instead (``vis_pipnet.get_img_coordinates``):
:func:`pipnet_patch_box`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

Box = tuple[int, int, int, int]
_CHAIN_BACKBONES = ("ResNetFeatures", "VGGFeatures", "TinyCNN")
_NEUTRAL = (nn.BatchNorm2d, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Dropout, nn.Softmax)


@dataclass(frozen=True)
class FieldInfo:
    """ProtoPNet's ``proto_layer_rf_info``: map size n, jump j, field size r, first centre start."""

    n: float
    j: float
    r: float
    start: float

    def then(self, kernel: int, stride: int, padding: int) -> FieldInfo:
        """``compute_layer_rf_info`` with an integer padding (ProtoPNet's third case)."""
        pad = padding * 2
        n_out = math.floor((self.n - kernel + pad) / stride) + 1
        left = math.floor(pad / 2)
        return FieldInfo(n_out, self.j * stride, self.r + (kernel - 1) * self.j,
                         self.start + ((kernel - 1) / 2 - left) * self.j)

    def box(self, row: int, col: int, size: tuple[int, int]) -> Box:
        """(y0, y1, x0, x1) of map cell (row, col) in an image of ``size`` (H, W)."""
        centre_h, centre_w = self.start + row * self.j, self.start + col * self.j
        return (max(int(centre_h - self.r / 2), 0), min(int(centre_h + self.r / 2), size[0]),
                max(int(centre_w - self.r / 2), 0), min(int(centre_w + self.r / 2), size[1]))


def receptive_field(model: Any) -> FieldInfo | None:
    """The receptive field of ``model``'s latent cells, or None where it is not a plain chain of layers."""
    features = getattr(model, "features", None)
    if features is None or type(features).__name__ not in _CHAIN_BACKBONES:
        return None
    info = FieldInfo(model.input_spec.image_size[0], 1, 1, 0.5)
    for name, module in features.named_modules():
        if "downsample" in name.split(".") or list(module.children()):
            continue
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            step = _layer(module)
            if step is None:
                return None
            info = info.then(*step)
        elif not isinstance(module, _NEUTRAL):
            return None
    if model.family == "stprotopnet" and model.config.variant == "full" and model.config.upsample:
        info = FieldInfo(info.n * 2, info.j / 2, info.r, info.start)
    kernel = getattr(model.config, "prototype_size", (1, 1))[0]
    return info.then(int(kernel), 1, 0)


def _layer(module: nn.Module) -> tuple[int, int, int] | None:
    kernel, stride, padding = (_one(getattr(module, k)) for k in ("kernel_size", "stride", "padding"))
    dilation = _one(getattr(module, "dilation", 1))
    if None in (kernel, stride, padding, dilation) or getattr(module, "ceil_mode", False):
        return None
    return dilation * (kernel - 1) + 1, stride, padding  # type: ignore[operator,return-value]


def _one(value: Any) -> int | None:
    """A square conv/pool parameter as one int; None for asymmetric or string ('same') values."""
    if isinstance(value, int):
        return value
    if isinstance(value, tuple) and len(set(value)) == 1 and isinstance(value[0], int):
        return value[0]
    return None


def pipnet_patch_box(row: int, col: int, map_size: tuple[int, int], image_size: int, patch: int = 32) -> Box:
    """PIP-Net's ``get_img_coordinates`` (``skip = round((image_size - 32) / (w - 1))``): (y0, y1, x0, x1)."""
    height, width = map_size
    skip = round((image_size - patch) / (width - 1)) if width > 1 else 0
    if height == 26 and width == 26:  # ConvNeXt-26: the outer cells have a smaller field
        h0 = max(0, (row - 1) * skip + 4)
        if row >= width - 1:
            h0 -= 4
        w0 = max(0, (col - 1) * skip + 4)
        if col >= width - 1:
            w0 -= 4
        h1, w1 = h0 + patch, w0 + patch
    else:
        h0, h1 = row * skip, min(image_size, row * skip + patch)
        w0, w1 = col * skip, min(image_size, col * skip + patch)
    if row == height - 1:
        h1 = image_size
    if col == width - 1:
        w1 = image_size
    if h1 == image_size:
        h0 = image_size - patch
    if w1 == image_size:
        w0 = image_size - patch
    return h0, h1, w0, w1
