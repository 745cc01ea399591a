"""Feature extractors, built with ``weights=None`` and cut where the research code cuts them.

Every backbone class is defined here once, for the native families and the research importers alike.
Parameter names match the research repositories' feature modules (and so torchvision's): ``conv1.weight``
/ ``layer1.0.conv1.weight`` for ResNets, ``features.0.weight`` for VGG, ``features.conv0.weight`` for
DenseNet and ``features.0.0.weight`` for PIP-Net's ConvNeXt, so research state dicts load without renaming.

A backbone is named either by a standard name (``resnet18``, ``vgg16_stride16``, ``convnext_tiny_26`` ...,
see :func:`list_backbones`) or by a parametric descriptor ``kind:key=value;...`` for the shapes a
research checkpoint may hold (:func:`protoviz.models.legacy.arch.infer_backbone` writes them):

- ``vgg:cfg=8,M,16,M;bn=0``: 3x3 conv widths and 2x2 max-pools ("M"), with or without BatchNorm;
- ``resnet:block=basic;layers=1,1;widths=8,16;stem=8;stride8=0``: any block counts and widths;
- ``densenet:growth=4;blocks=2,2;init=8``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm

from protoviz.errors import ConfigError

VGG_NAMES = ("vgg11", "vgg13", "vgg16", "vgg19")
RESNET_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
DENSENET_NAMES = ("densenet121", "densenet161", "densenet169", "densenet201")
# PIP-Net's ConvNeXt-tiny variants: stride-2 convolutions with more input channels than this become stride 1.
CONVNEXT_THRESHOLDS = {"convnext_tiny_26": 100, "convnext_tiny_13": 300}


class ResNetFeatures(nn.Module):
    """A torchvision-shaped ResNet without avgpool/fc: ``conv1, bn1, relu, maxpool, layer1 .. layer{depth}``."""

    def __init__(self, conv1: nn.Conv2d, bn1: nn.BatchNorm2d, layers: Sequence[nn.Sequential]):
        super().__init__()
        self.conv1, self.bn1 = conv1, bn1
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.depth = len(layers)
        for i, layer in enumerate(layers, start=1):
            setattr(self, f"layer{i}", layer)

    @classmethod
    def from_torchvision(cls, net: tvm.ResNet, depth: int = 4, strides: tuple[int, int] | None = None) -> ResNetFeatures:
        """``net`` cut after ``layer{depth}``; ``strides`` overrides the first-block stride of layer3 / layer4
        (PIP-Net uses 1, 1)."""
        layers = [getattr(net, f"layer{i}") for i in range(1, depth + 1)]
        if strides is not None:
            for layer_index, stride in zip((3, 4), strides, strict=True):
                if layer_index <= depth:
                    _set_first_block_stride(layers[layer_index - 1], stride)
        return cls(net.conv1, net.bn1, layers)

    @classmethod
    def from_shape(cls, block: str, layers: tuple[int, ...], widths: tuple[int, ...], stem: int,
                   stride8: bool) -> ResNetFeatures:
        """Any block kind (``basic`` / ``bottleneck``), block counts and widths; ``stride8`` makes the first
        blocks of layer3 and layer4 stride 1 (PIP-Net)."""
        kind = tvm.resnet.BasicBlock if block == "basic" else tvm.resnet.Bottleneck
        built: list[nn.Sequential] = []
        channels = stem
        for i, (count, width) in enumerate(zip(layers, widths, strict=True), start=1):
            stride = 1 if i == 1 or (stride8 and i >= 3) else 2
            blocks: list[nn.Module] = []
            for b in range(count):
                down = None
                out = width * kind.expansion
                if b == 0 and (stride != 1 or channels != out):
                    down = nn.Sequential(nn.Conv2d(channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
                blocks.append(kind(channels, width, stride if b == 0 else 1, down))
                channels = out
            built.append(nn.Sequential(*blocks))
        return cls(nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(stem), built)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/s, W/s)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.depth + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


def _set_first_block_stride(layer: nn.Sequential, stride: int) -> None:
    block = layer[0]
    conv = cast(nn.Conv2d, block.conv2 if isinstance(block, tvm.resnet.Bottleneck) else block.conv1)
    conv.stride = (stride, stride)
    if block.downsample is not None:
        cast(nn.Conv2d, cast(nn.Sequential, block.downsample)[0]).stride = (stride, stride)


class VGGFeatures(nn.Module):
    """VGG convolutions (``features.*``): 3x3 convs (+ BatchNorm) + ReLU, and 2x2 max-pools."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features

    @classmethod
    def from_torchvision(cls, net: tvm.VGG, final_pool: bool = True) -> VGGFeatures:
        """torchvision's ``features``; without ``final_pool`` the last max-pool is dropped (stride 16, as
        ST-ProtoPNet's full/ variant). Dropping the last module keeps every parameter name."""
        layers = list(net.features)
        if not final_pool and isinstance(layers[-1], nn.MaxPool2d):
            layers = layers[:-1]
        return cls(nn.Sequential(*layers))

    @classmethod
    def from_cfg(cls, cfg: Sequence[int | str], batch_norm: bool) -> VGGFeatures:
        """From a cfg list (ints = conv widths, ``"M"`` = 2x2 max-pool), as the research ``VGG_features``."""
        layers: list[nn.Module] = []
        channels = 3
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(channels, int(item), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(item)))
            layers.append(nn.ReLU(inplace=True))
            channels = int(item)
        return cls(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/2^m, W/2^m) for m max-pools."""
        return self.features(x)


class DenseNetFeatures(nn.Module):
    """torchvision DenseNet ``features`` followed by the ReLU ProtoPNet adds after ``norm5``."""

    def __init__(self, net: tvm.DenseNet):
        super().__init__()
        self.features = net.features

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/32, W/32)."""
        return F.relu(self.features(x))


class ConvNeXtFeatures(nn.Module):
    """PIP-Net's ConvNeXt: torchvision's ConvNeXt ``features`` (avgpool and classifier replaced by Identity),
    with every stride-2 convolution of more than ``threshold`` input channels set to stride 1.

    For ConvNeXt-tiny, threshold 100 keeps only the first downsampling (26x26 maps at 224 px) and 300
    the first two (13x13), as ``features/convnext_features.py`` of PIP-Net.
    """

    def __init__(self, net: tvm.ConvNeXt, threshold: int):
        super().__init__()
        self.features = net.features
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d) and module.stride[0] == 2 and module.in_channels > threshold:
                module.stride = tuple(s // 2 for s in module.stride)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 768, h, w)."""
        return self.features(x)


class TinyCNN(nn.Module):
    """A small stride-16 CNN for tests and demo models (a few hundred thousand parameters)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for width in widths:
            layers += [nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            in_channels = width
        layers += [nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False), nn.BatchNorm2d(in_channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, widths[-1], H/16, W/16)."""
        return self.features(x)


@dataclass(frozen=True)
class Backbone:
    """A built feature extractor and the number of channels it outputs."""

    module: nn.Module
    out_channels: int


def _resnet(name: str, depth: int = 4, strides: tuple[int, int] | None = None) -> Callable[[], nn.Module]:
    return lambda: ResNetFeatures.from_torchvision(getattr(tvm, name)(weights=None), depth=depth, strides=strides)


def _vgg(name: str, final_pool: bool) -> Callable[[], nn.Module]:
    return lambda: VGGFeatures.from_torchvision(getattr(tvm, name)(weights=None), final_pool=final_pool)


def _densenet(name: str) -> Callable[[], nn.Module]:
    return lambda: DenseNetFeatures(getattr(tvm, name)(weights=None))


def _convnext(threshold: int) -> Callable[[], nn.Module]:
    return lambda: ConvNeXtFeatures(tvm.convnext_tiny(weights=None), threshold)


_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "tiny_cnn": TinyCNN,
    "tiny_cnn_small": lambda: TinyCNN(widths=(8, 16, 16, 16)),
    **{n: _resnet(n) for n in RESNET_NAMES},
    "resnet18_layer3": _resnet("resnet18", depth=3),
    "resnet34_layer3": _resnet("resnet34", depth=3),
    **{f"{n}_stride8": _resnet(n, strides=(1, 1)) for n in ("resnet18", "resnet34", "resnet50")},
    **{n: _vgg(n, final_pool=True) for n in VGG_NAMES},
    **{f"{n}_stride16": _vgg(n, final_pool=False) for n in VGG_NAMES},
    **{n: _densenet(n) for n in DENSENET_NAMES},
    **{n: _convnext(t) for n, t in CONVNEXT_THRESHOLDS.items()},
}


def list_backbones() -> list[str]:
    """Standard names accepted by :func:`build_backbone` (parametric descriptors are accepted too)."""
    return sorted(_BUILDERS)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def build_parametric(name: str) -> nn.Module:
    """Build a backbone from a descriptor ``kind:key=value;key=value`` (see the module docstring)."""
    kind, _, rest = name.partition(":")
    try:
        params = dict(item.split("=", 1) for item in rest.split(";") if item)
        if kind == "vgg":
            cfg: list[int | str] = [v if v == "M" else int(v) for v in params["cfg"].split(",")]
            return VGGFeatures.from_cfg(cfg, params.get("bn", "0") == "1")
        if kind == "resnet":
            return ResNetFeatures.from_shape(params["block"], _ints(params["layers"]), _ints(params["widths"]),
                                             int(params["stem"]), params.get("stride8", "0") == "1")
        if kind == "densenet":
            net = tvm.DenseNet(growth_rate=int(params["growth"]), block_config=_ints(params["blocks"]),
                               num_init_features=int(params["init"]))
            return DenseNetFeatures(net)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"malformed backbone descriptor {name!r}: {error}") from error
    raise ConfigError(f"unknown backbone descriptor kind {kind!r} in {name!r} (expected vgg, resnet or densenet)")


def build_backbone(name: str) -> Backbone:
    """Build a backbone by name or descriptor with random weights (nothing is downloaded)."""
    if ":" in name:
        module = build_parametric(name)
    elif name not in _BUILDERS:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}")
    else:
        module = _BUILDERS[name]()
    with torch.no_grad():
        was_training = module.training
        module.eval()
        out_channels = int(module(torch.zeros(1, 3, 64, 64)).shape[1])
        module.train(was_training)
    return Backbone(module, out_channels)
