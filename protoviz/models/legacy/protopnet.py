"""ProtoPNet and TesNet research checkpoints: whole pickled ``model.PPNet`` / ``model.TESNet`` or state dicts.

Both share the skeleton ``features.*``, ``add_on_layers.*``, ``prototype_vectors`` (P, D, 1, 1), ``ones``,
``last_layer.weight`` (C, P). A whole module also carries ``prototype_class_identity`` (P, C) (pruned
models: P need not be a multiple of C), ``img_size`` and ``prototype_activation_function`` (ProtoPNet:
``log`` or ``linear``; a state dict does not record it, so the ``activation`` hint says, default ``log``).
TesNet's similarity is a projection whatever that attribute says.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeModel
from protoviz.models.hints import ACTIVATIONS, LoadHints, record_choice
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.legacy.common import (
    add_on_kind,
    attribute,
    class_names,
    input_spec,
    load_weights,
    module_tensors,
)
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig
from protoviz.models.tesnet import TesNet, TesNetConfig, default_identity


def _shapes(state: dict[str, Tensor], label: str) -> tuple[int, int, int]:
    vectors, last = state.get("prototype_vectors"), state.get("last_layer.weight")
    if vectors is None or last is None or vectors.dim() != 4 or last.dim() != 2:
        raise CheckpointError(f"{label}: expected prototype_vectors (P, D, 1, 1) and last_layer.weight (C, P)")
    if tuple(vectors.shape[2:]) != (1, 1):
        raise CheckpointError(f"{label}: prototypes of spatial size {tuple(vectors.shape[2:])} are not ProtoPNet's 1x1 "
                              "(2x2 prototypes with conv_offset are Deformable ProtoPNet)")
    P, D = int(vectors.shape[0]), int(vectors.shape[1])
    if last.shape[1] != P:
        raise CheckpointError(f"{label}: last_layer.weight {tuple(last.shape)} does not match {P} prototypes")
    return P, D, int(last.shape[0])


def build(family: str, state: dict[str, Tensor], identity: Tensor | None, image_size: Any, label: str,
          activation: str = "log") -> PrototypeModel:
    """A native ProtoPNet (``protopnet``, with ``log`` or ``linear`` activation) or :class:`TesNet`
    (``tesnet``) holding the research weights."""
    P, D, C = _shapes(state, label)
    pickled = identity is not None
    if identity is None:
        if P % C:
            raise CheckpointError(f"{label}: {P} prototypes for {C} classes and no pickled class identity; "
                                  "give the whole pickled model (it stores prototype_class_identity)")
        identity = default_identity(P, C)
    if tuple(identity.shape) != (P, C):
        raise CheckpointError(f"{label}: prototype_class_identity has shape {tuple(identity.shape)}, expected {(P, C)}")
    backbone = infer_backbone(state, "features.")
    names, spec, add_on = class_names(C), input_spec(image_size), add_on_kind(state)
    weights = {k: v for k, v in state.items() if k != "ones"}
    if family == "tesnet":
        model: PrototypeModel = TesNet(TesNetConfig(names, backbone, P, D, add_on, spec))
        weights["class_identity"] = identity
    else:
        with torch.device(identity.device):  # also when built on the meta device (identity stays on the CPU)
            standard = P % C == 0 and (not pickled or torch.equal(identity.float(), default_identity(P, C)))
        config = ProtoPNetConfig(names, backbone, max(1, P // C), D, add_on, activation, input=spec,
                                 num_prototypes=None if standard else P)
        model = ProtoPNet(config)
        weights["class_identity"] = identity
    load_weights(model, weights, label)
    return model


def from_state(family: str, state: dict[str, Tensor], label: str, hints: LoadHints) -> PrototypeModel:
    """Convert a state dict (224 px, class identity j // (P / C)); ProtoPNet's activation from the hint."""
    activation = hints.activation or "log"
    model = build(family, state, None, 224, label, activation)
    if family == "protopnet":
        record_choice(model.metadata, "activation", activation, "given" if hints.activation else
                      "assumed: a state dict does not record prototype_activation_function (the default is log)")
    return model


def from_module(family: str, module: nn.Module, label: str, hints: LoadHints | None = None) -> PrototypeModel:
    """Convert an unpickled ``model.PPNet`` / ``model.TESNet`` stand-in."""
    hints = hints or LoadHints()
    activation = "log"
    if family == "protopnet":
        activation = getattr(module, "prototype_activation_function", "log")
        if activation not in ACTIVATIONS:
            raise CheckpointError(f"{label}: prototype_activation_function {activation!r} is not supported "
                                  f"(protoviz reads ProtoPNet's {' and '.join(ACTIVATIONS)} activations)")
        if hints.activation is not None and hints.activation != activation:
            raise CheckpointError(f"{label} records prototype_activation_function {activation!r}, "
                                  f"not {hints.activation!r} as the activation hint says")
    identity = attribute(module, "prototype_class_identity", Tensor, label)
    state = module_tensors(module, label)
    return build(family, state, identity.detach().float(), getattr(module, "img_size", 224), label, activation)
