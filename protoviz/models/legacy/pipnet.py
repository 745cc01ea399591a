"""PIP-Net research checkpoints: ``{'model_state_dict': DataParallel state, 'optimizer_*'}``.

Keys (after ``module.``): ``_net.*`` (a stride-8 ResNet, or torchvision's ConvNeXt-tiny under
``_net.features.*``), ``_add_on.0.*`` when ``num_features`` > 0, ``_classification.weight`` (C, P),
``.bias`` with ``--bias``, ``.normalization_multiplier`` and a duplicate ``_multiplier``.

``convnext_tiny_26`` and ``convnext_tiny_13`` have the same weights (only strides differ), so the variant
comes from the ``backbone`` hint, else from the run folder's ``metadata/args.txt`` (``net: '...'``,
written by PIP-Net's ``save_args`` beside ``checkpoints/``), else PIP-Net's default ``convnext_tiny_26``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from protoviz.errors import CheckpointError
from protoviz.models.backbones import CONVNEXT_THRESHOLDS
from protoviz.models.hints import LoadHints, record_choice
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.legacy.common import class_names, input_spec, load_weights, rename
from protoviz.models.pipnet import PIPNet, PIPNetConfig

_ARGS_MAX_BYTES = 64 * 1024


def run_folder_net(file: Path) -> str | None:
    """The ``net`` a PIP-Net run folder's ``metadata/args.txt`` names, for a file in its ``checkpoints/``."""
    args = file.parent.parent / "metadata" / "args.txt"
    if file.parent.name != "checkpoints" or not args.is_file() or args.stat().st_size > _ARGS_MAX_BYTES:
        return None
    match = re.search(r"^net: '([A-Za-z0-9_]+)'$", args.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
    return match.group(1) if match else None


def build(state: dict[str, Tensor], label: str, hints: LoadHints | None = None) -> PIPNet:
    """A :class:`PIPNet` holding the research weights."""
    hints = hints or LoadHints()
    weight = state.get("_classification.weight")
    if weight is None or weight.dim() != 2:
        raise CheckpointError(f"{label}: expected _classification.weight (C, P)")
    convnext = "_net.features.0.0.weight" in state
    variant = hints.backbone or "convnext_tiny_26"
    backbone = infer_backbone(state, "_net.", stride8=True, convnext=variant)
    if hints.backbone is not None and not convnext:
        raise CheckpointError(f"{label} holds a {backbone} backbone; the backbone hint {hints.backbone!r} applies "
                              "only to PIP-Net's ConvNeXt checkpoints")
    add_on = state.get("_add_on.0.weight")
    config = PIPNetConfig(class_names(int(weight.shape[0])), backbone,
                          int(add_on.shape[0]) if add_on is not None else 0, "_classification.bias" in state,
                          input=input_spec())
    model = PIPNet(config)
    weights = rename(rename(state, "_net.", "features."), "_add_on.0.", "add_on.")
    weights = {k.replace("_classification.", "classification_") if k.startswith(("_classification.w", "_classification.b")) else k: v for k, v in weights.items()}
    weights["normalization_multiplier"] = weights.pop("_classification.normalization_multiplier", torch.ones(1))
    weights.pop("_multiplier", None)
    load_weights(model, weights, label)
    if convnext:
        record_choice(model.metadata, "backbone", variant, "given" if hints.backbone else "assumed: PIP-Net's default --net; the weights of convnext_tiny_26 "
                      f"and convnext_tiny_13 are identical (stride thresholds {CONVNEXT_THRESHOLDS})")
    return model
