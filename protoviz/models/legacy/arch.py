"""Backbones of the research repositories, inferred from state-dict keys.

The research code cuts torchvision-shaped ResNets, VGGs and DenseNets (and PIP-Net a ConvNeXt); a
checkpoint only tells us the shapes. :func:`infer_backbone` reads the keys under a prefix (``features.``,
``_net.``) and returns a backbone name :func:`protoviz.models.backbones.build_backbone` understands: a
standard name (``resnet18``, ``vgg11``, ``resnet50_stride8``, ``convnext_tiny_26`` ...) when the shapes
match one, else a parametric descriptor such as ``vgg:cfg=8,M,16,M;bn=0`` or
``resnet:block=basic;layers=1,1;widths=8,16;stem=8``, built by :mod:`protoviz.models.backbones` with the
same parameter names so the state dict loads unchanged.

What the weights cannot tell (a layer without parameters, a stride) is passed in: ``final_pool=False``
for VGGs whose last max-pool was removed (ST-ProtoPNet's full/ variant), ``stride8`` for PIP-Net's
ResNets, ``convnext`` for which of PIP-Net's ConvNeXt-tiny stride variants.
"""

from __future__ import annotations

import re

from torch import Tensor

from protoviz.errors import CheckpointError
from protoviz.models.backbones import CONVNEXT_THRESHOLDS

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


_CONVNEXT_TINY = ((3, 3, 9, 3), (96, 192, 384, 768))


# ----- inference from keys ----------------------------------------------------------------
def infer_backbone(state: dict[str, Tensor], prefix: str, stride8: bool = False, final_pool: bool = True,
                   convnext: str = "convnext_tiny_26") -> str:
    """The backbone name for the tensors under ``prefix`` (e.g. ``features.``) of a research state dict.

    ``final_pool=False``: a VGG without its last max-pool. ``convnext``: the ConvNeXt stride variant to name
    (the weights of ``convnext_tiny_26`` and ``convnext_tiny_13`` are identical).
    """
    keys = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        return _infer_resnet(keys, stride8)
    if "features.conv0.weight" in keys:
        return _infer_densenet(keys)
    if "features.0.weight" in keys:
        return _infer_vgg(keys, final_pool)
    if "features.0.0.weight" in keys and "features.1.0.layer_scale" in keys:
        return _infer_convnext(keys, convnext)
    sample = ", ".join(sorted(keys)[:4]) or "none"
    raise CheckpointError(f"cannot recognise the backbone under {prefix!r} (keys: {sample}); "
                          "expected a ResNet, VGG, DenseNet or ConvNeXt as in the research code")


def _infer_convnext(keys: dict[str, Tensor], variant: str) -> str:
    if variant not in CONVNEXT_THRESHOLDS:
        raise CheckpointError(f"unknown ConvNeXt variant {variant!r}; expected one of {', '.join(CONVNEXT_THRESHOLDS)}")
    depths, dims = [], []
    for stage in (1, 3, 5, 7):
        blocks = {int(m.group(1)) for k in keys if (m := re.match(rf"features\.{stage}\.(\d+)\.", k))}
        depths.append(max(blocks) + 1 if blocks else 0)
        scale = keys.get(f"features.{stage}.0.layer_scale")
        dims.append(int(scale.shape[0]) if scale is not None else 0)
    if (tuple(depths), tuple(dims)) != _CONVNEXT_TINY:
        raise CheckpointError(f"a ConvNeXt with stage depths {tuple(depths)} and widths {tuple(dims)}: only PIP-Net's "
                              f"ConvNeXt-tiny {_CONVNEXT_TINY} is supported")
    return variant


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


def _infer_vgg(keys: dict[str, Tensor], final_pool: bool) -> str:
    convs = sorted(int(m.group(1)) for k, v in keys.items()
                   if (m := re.fullmatch(r"features\.(\d+)\.weight", k)) and v.dim() == 4)
    bn = f"features.{convs[0] + 1}.running_mean" in keys
    step = 3 if bn else 2
    cfg: list[int | str] = []
    for position, index in enumerate(convs):
        cfg.append(int(keys[f"features.{index}.weight"].shape[0]))
        following = convs[position + 1] if position + 1 < len(convs) else index + step + 1
        cfg += ["M"] * (following - index - step)  # the pools after the last conv have no keys: assume one
    for name, standard in _VGGS.items():
        if cfg == standard and not bn:
            return name if final_pool else f"{name}_stride16"
    if not final_pool and cfg[-1] == "M":
        cfg = cfg[:-1]
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
