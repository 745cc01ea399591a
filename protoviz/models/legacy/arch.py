"""Backbones of the research repositories: parametric builders and inference from state-dict keys.

The research code cuts torchvision-shaped ResNets, VGGs and DenseNets; a checkpoint only tells us the
shapes. :func:`infer_backbone` reads the keys under a prefix (``features.``, ``_net.``) and returns a
backbone name :func:`protoviz.models.backbones.build_backbone` understands: a standard name
(``resnet18``, ``vgg11``, ``resnet50_stride8`` ...) when the shapes match one, else a parametric
descriptor such as ``vgg:cfg=8,M,16,M;bn=0`` or ``resnet:block=basic;layers=1,1;widths=8,16;stem=8``,
built here with the same parameter names so the state dict loads unchanged.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn
from torchvision import models as tvm

from protoviz.errors import CheckpointError, ConfigError

_RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
_STANDARD_WIDTHS = (64, 128, 256, 512)
_VGGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
_DENSENETS = {
    "densenet121": (32, (6, 12, 24, 16), 64), "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64), "densenet201": (32, (6, 12, 48, 32), 64),
}


# ----- parametric builders -----------------------------------------------------------------
class VGGFeatures(nn.Module):
    """VGG convolutions from a cfg list (ints = 3x3 conv widths, 'M' = 2x2 max-pool)."""

    def __init__(self, cfg: list[int | str], batch_norm: bool):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(channels, int(item), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(item)))
            layers.append(nn.ReLU())
            channels = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/2^m, W/2^m)."""
        return self.features(x)


class ResNetFeatures(nn.Module):
    """A torchvision-shaped ResNet with any block counts and widths (keys ``conv1``, ``layer1.0.*``).

    ``stride8`` sets the first-block stride of layer3 and layer4 to 1 (PIP-Net).
    """

    def __init__(self, block: str, layers: tuple[int, ...], widths: tuple[int, ...], stem: int, stride8: bool):
        super().__init__()
        kind = tvm.resnet.BasicBlock if block == "basic" else tvm.resnet.Bottleneck
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.depth = len(layers)
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
            setattr(self, f"layer{i}", nn.Sequential(*blocks))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/s, W/s)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.depth + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


class DenseNetFeatures(nn.Module):
    """torchvision DenseNet ``features`` with any growth rate / block counts, plus ProtoPNet's final ReLU."""

    def __init__(self, growth: int, blocks: tuple[int, ...], init: int):
        super().__init__()
        self.features = tvm.DenseNet(growth_rate=growth, block_config=blocks, num_init_features=init).features

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, C, H/32, W/32)."""
        return torch.relu(self.features(x))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def build_parametric(name: str) -> nn.Module:
    """Build a backbone from a descriptor ``kind:key=value;key=value``."""
    kind, _, rest = name.partition(":")
    try:
        params = dict(item.split("=", 1) for item in rest.split(";") if item)
        if kind == "vgg":
            cfg: list[int | str] = [v if v == "M" else int(v) for v in params["cfg"].split(",")]
            return VGGFeatures(cfg, params.get("bn", "0") == "1")
        if kind == "resnet":
            return ResNetFeatures(params["block"], _ints(params["layers"]), _ints(params["widths"]),
                                  int(params["stem"]), params.get("stride8", "0") == "1")
        if kind == "densenet":
            return DenseNetFeatures(int(params["growth"]), _ints(params["blocks"]), int(params["init"]))
    except (KeyError, ValueError) as error:
        raise ConfigError(f"malformed backbone descriptor {name!r}: {error}") from error
    raise ConfigError(f"unknown backbone descriptor kind {kind!r} in {name!r} (expected vgg, resnet or densenet)")


# ----- inference from keys ----------------------------------------------------------------
def infer_backbone(state: dict[str, Tensor], prefix: str, stride8: bool = False) -> str:
    """The backbone name for the tensors under ``prefix`` (e.g. ``features.``) of a research state dict."""
    keys = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        return _infer_resnet(keys, stride8)
    if "features.conv0.weight" in keys:
        return _infer_densenet(keys)
    if "features.0.weight" in keys:
        return _infer_vgg(keys)
    sample = ", ".join(sorted(keys)[:4]) or "none"
    raise CheckpointError(f"cannot recognise the backbone under {prefix!r} (keys: {sample}); "
                          "expected a ResNet, VGG or DenseNet as in the research code")


def _infer_resnet(keys: dict[str, Tensor], stride8: bool) -> str:
    block = "bottleneck" if "layer1.0.conv3.weight" in keys else "basic"
    layers, widths = [], []
    for i in range(1, 5):
        indices = {int(m.group(1)) for k in keys if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        if not indices:
            break
        layers.append(max(indices) + 1)
        widths.append(int(keys[f"layer{i}.0.conv1.weight"].shape[0]))
    stem = int(keys["conv1.weight"].shape[0])
    for name, (kind, counts) in _RESNETS.items():
        if kind == block and stem == 64 and tuple(widths) == _STANDARD_WIDTHS[:len(widths)]:
            if tuple(layers) == counts:
                return f"{name}_stride8" if stride8 else name
            if tuple(layers) == counts[:3] and not stride8 and name in ("resnet18", "resnet34"):
                return f"{name}_layer3"
    return (f"resnet:block={block};layers={','.join(map(str, layers))};widths={','.join(map(str, widths))};"
            f"stem={stem};stride8={int(stride8)}")


def _infer_vgg(keys: dict[str, Tensor]) -> str:
    convs = sorted(int(m.group(1)) for k, v in keys.items()
                   if (m := re.fullmatch(r"features\.(\d+)\.weight", k)) and v.dim() == 4)
    bn = f"features.{convs[0] + 1}.running_mean" in keys
    step = 3 if bn else 2
    cfg: list[int | str] = []
    for position, index in enumerate(convs):
        cfg.append(int(keys[f"features.{index}.weight"].shape[0]))
        following = convs[position + 1] if position + 1 < len(convs) else index + step + 1
        cfg += ["M"] * (following - index - step)
    for name, standard in _VGGS.items():
        if cfg == standard and not bn:
            return name
    return f"vgg:cfg={','.join(map(str, cfg))};bn={int(bn)}"


def _infer_densenet(keys: dict[str, Tensor]) -> str:
    blocks = []
    for i in range(1, 10):
        layers = {int(m.group(1)) for k in keys if (m := re.match(rf"features\.denseblock{i}\.denselayer(\d+)\.", k))}
        if not layers:
            break
        blocks.append(max(layers))
    growth = int(keys["features.denseblock1.denselayer1.conv2.weight"].shape[0])
    init = int(keys["features.conv0.weight"].shape[0])
    for name, spec in _DENSENETS.items():
        if spec == (growth, tuple(blocks), init):
            return name
    return f"densenet:growth={growth};blocks={','.join(map(str, blocks))};init={init}"
