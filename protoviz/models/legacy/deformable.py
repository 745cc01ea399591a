"""Deformable ProtoPNet research checkpoints: whole pickled ``model.PPNet`` with ``conv_offset`` and
(P, D, 2, 2) prototypes (or its state dict). The pickled torch.nn layers give conv_offset's padding and
dilation and the add-on's upsampling exactly; from a bare state dict they are assumed (kernel 2:
dilation 2, padding 1, as the prototypes; activation between convs: ReLU) and recorded as assumptions.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

from protoviz.errors import CheckpointError
from protoviz.models.deformable import ACTIVATIONS, DeformableConfig, DeformableProtoPNet
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.legacy.common import class_names, input_spec, load_weights, rename
from protoviz.models.tesnet import default_identity

_KINDS = {cls: name for name, cls in ACTIVATIONS.items()}


def _layers_from_module(offset: nn.Module, label: str) -> list[dict[str, Any]]:
    children = list(offset.children()) if isinstance(offset, nn.Sequential) else [offset]
    layers: list[dict[str, Any]] = []
    for child in children:
        if isinstance(child, nn.Conv2d):
            if child.stride != (1, 1) or child.groups != 1 or len(set(child.kernel_size)) != 1:
                raise CheckpointError(f"{label}: conv_offset layer {child} is not a square stride-1 conv")
            layers.append({"kind": "conv", "out": child.out_channels, "kernel": child.kernel_size[0],
                           "padding": int(child.padding[0]), "dilation": int(child.dilation[0]),
                           "bias": child.bias is not None})
        elif type(child) in _KINDS:
            layers.append({"kind": _KINDS[type(child)]})
        else:
            raise CheckpointError(f"{label}: unsupported conv_offset layer {type(child).__name__}")
    return layers


def _layers_from_keys(state: dict[str, Tensor]) -> list[dict[str, Any]]:
    indices = sorted({int(m.group(1)) for k in state if (m := re.match(r"conv_offset\.(\d+)\.weight$", k))})
    layers: list[dict[str, Any]] = []
    for position, index in enumerate(indices):
        if position:
            layers += [{"kind": "relu"}] * (index - indices[position - 1] - 1)
        weight = state[f"conv_offset.{index}.weight"]
        kernel = int(weight.shape[-1])
        layers.append({"kind": "conv", "out": int(weight.shape[0]), "kernel": kernel,
                       "padding": 1 if kernel in (2, 3) else 0, "dilation": 2 if kernel == 2 else 1,
                       "bias": f"conv_offset.{index}.bias" in state})
    return layers


def _upsample(module: nn.Module | None, label: str) -> tuple[bool, bool]:
    add_on = getattr(module, "add_on_layers", None) if module is not None else None
    if add_on is None:
        return True, False
    children = list(add_on.children()) if isinstance(add_on, nn.Sequential) else [add_on]
    if any(not isinstance(c, nn.Upsample | nn.Identity) for c in children):
        raise CheckpointError(f"{label}: only the 'upsample' add-on of Deformable ProtoPNet is supported")
    ups = [c for c in children if isinstance(c, nn.Upsample)]
    if ups and (ups[0].mode != "bilinear" or ups[0].scale_factor not in (2, 2.0, (2.0, 2.0))):
        raise CheckpointError(f"{label}: expected a x2 bilinear Upsample add-on, found {ups[0]}")
    return bool(ups), bool(ups and ups[0].align_corners)


def _number(module: nn.Module | None, name: str, default: float) -> float:
    value = getattr(module, name, default) if module is not None else default
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def build(state: dict[str, Tensor], module: nn.Module | None, label: str) -> DeformableProtoPNet:
    """A :class:`DeformableProtoPNet` holding the research weights."""
    if "conv_offset.weight" in state:
        state = rename(state, "conv_offset.", "conv_offset.0.")
    vectors, last = state.get("prototype_vectors"), state.get("last_layer.weight")
    if vectors is None or last is None or vectors.dim() != 4:
        raise CheckpointError(f"{label}: expected prototype_vectors (P, D, kh, kw) and last_layer.weight (C, P)")
    P, C = int(vectors.shape[0]), int(last.shape[0])
    offset = getattr(module, "conv_offset", None) if module is not None else None
    layers = _layers_from_module(offset, label) if isinstance(offset, nn.Module) else _layers_from_keys(state)
    upsample, align = _upsample(module, label)
    identity = getattr(module, "prototype_class_identity", None) if module is not None else None
    if not isinstance(identity, Tensor):
        if P % C:
            raise CheckpointError(f"{label}: {P} prototypes for {C} classes and no pickled class identity")
        identity = default_identity(P, C)
    config = DeformableConfig(
        class_names(C), infer_backbone(state, "features."), P, (int(vectors.shape[2]), int(vectors.shape[3])),
        tuple(layers), upsample, align, epsilon=_number(module, "epsilon_val", 1e-5),
        input_vector_length=_number(module, "input_vector_length", 64.0),
        input=input_spec(getattr(module, "img_size", 224) if module is not None else 224))
    model = DeformableProtoPNet(config)
    weights = {k: v for k, v in state.items() if k != "ones" and not k.startswith("add_on_layers.")}
    weights["class_identity"] = identity.detach().float()
    load_weights(model, weights, label)
    model.metadata["note"] = ("deformable sampling emulated with grid_sample (norm-preserving bilinear); "
                              "equivalence with the original CUDA kernel is unverified")
    if module is None:
        model.metadata["assumed"] = "conv_offset padding/dilation/activations and the upsample add-on (state dict only)"
    return model
