"""Feature extractors, built with ``weights=None`` and cut where ProtoPNet cuts them.

Parameter names match ProtoPNet's own feature modules (and so torchvision's under ``features.``):
``conv1.weight`` / ``layer1.0.conv1.weight`` for ResNets, ``features.0.weight`` for VGG and
``features.conv0.weight`` for DenseNet, so research state dicts load without renaming.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm

from protoviz.errors import ConfigError


class ResNetFeatures(nn.Module):
    """A torchvision ResNet without avgpool/fc, optionally cut after ``layer{depth}``.

    ``strides`` overrides the stride of the first block of layer3 / layer4 (PIP-Net uses 1, 1).
    """

    def __init__(self, net: tvm.ResNet, depth: int = 4, strides: tuple[int, int] | None = None):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.depth = depth
        for i in range(1, depth + 1):
            setattr(self, f"layer{i}", getattr(net, f"layer{i}"))
        if strides is not None:
            for layer_index, stride in zip((3, 4), strides, strict=True):
                if layer_index <= depth:
                    _set_first_block_stride(getattr(self, f"layer{layer_index}"), stride)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/s, W/s)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.depth + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


def _set_first_block_stride(layer: nn.Sequential, stride: int) -> None:
    block = layer[0]
    conv = block.conv2 if isinstance(block, tvm.resnet.Bottleneck) else block.conv1
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


class VGGFeatures(nn.Module):
    """torchvision VGG ``features`` (the convolutions and all five max-pools)."""

    def __init__(self, net: tvm.VGG):
        super().__init__()
        self.features = net.features

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 512, H/32, W/32)."""
        return self.features(x)


class DenseNetFeatures(nn.Module):
    """torchvision DenseNet ``features`` followed by the ReLU ProtoPNet adds after ``norm5``."""

    def __init__(self, net: tvm.DenseNet):
        super().__init__()
        self.features = net.features

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/32, W/32)."""
        return F.relu(self.features(x))


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


def _resnet(name: str, depth: int = 4) -> Callable[[], nn.Module]:
    return lambda: ResNetFeatures(getattr(tvm, name)(weights=None), depth=depth)


def _pipnet_resnet(name: str) -> Callable[[], nn.Module]:
    return lambda: ResNetFeatures(getattr(tvm, name)(weights=None), strides=(1, 1))


_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "tiny_cnn": TinyCNN,
    "tiny_cnn_small": lambda: TinyCNN(widths=(8, 16, 16, 16)),
    **{n: _resnet(n) for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    "resnet18_layer3": _resnet("resnet18", depth=3),
    "resnet34_layer3": _resnet("resnet34", depth=3),
    **{f"{n}_stride8": _pipnet_resnet(n) for n in ("resnet18", "resnet34", "resnet50")},
    **{n: (lambda n=n: VGGFeatures(getattr(tvm, n)(weights=None))) for n in ("vgg11", "vgg13", "vgg16", "vgg19")},
    **{n: (lambda n=n: DenseNetFeatures(getattr(tvm, n)(weights=None))) for n in ("densenet121", "densenet161", "densenet169", "densenet201")},
}


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone`."""
    return sorted(_BUILDERS)


def build_backbone(name: str) -> Backbone:
    """Build a backbone by name with random weights (nothing is downloaded)."""
    if ":" in name:  # a research-repository shape, e.g. ``vgg:cfg=8,M,16,M;bn=0`` (see legacy/arch.py)
        from protoviz.models.legacy.arch import build_parametric

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
