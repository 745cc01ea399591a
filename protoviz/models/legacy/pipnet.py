"""PIP-Net research checkpoints: ``{'model_state_dict': DataParallel state, 'optimizer_*'}``.

Keys (after ``module.``): ``_net.*`` (stride-8 ResNet), ``_add_on.0.*`` when ``num_features`` > 0,
``_classification.weight`` (C, P), ``.bias`` with ``--bias``, ``.normalization_multiplier`` and a
duplicate ``_multiplier``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from protoviz.errors import CheckpointError
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.legacy.common import class_names, input_spec, load_weights, rename
from protoviz.models.pipnet import PIPNet, PIPNetConfig


def build(state: dict[str, Tensor], label: str) -> PIPNet:
    """A :class:`PIPNet` holding the research weights."""
    weight = state.get("_classification.weight")
    if weight is None or weight.dim() != 2:
        raise CheckpointError(f"{label}: expected _classification.weight (C, P)")
    if "_net.conv1.weight" not in state:
        raise CheckpointError(f"{label}: only PIP-Net's ResNet backbones are supported (ConvNeXt keys found)")
    add_on = state.get("_add_on.0.weight")
    config = PIPNetConfig(class_names(int(weight.shape[0])), infer_backbone(state, "_net.", stride8=True),
                          int(add_on.shape[0]) if add_on is not None else 0, "_classification.bias" in state,
                          input=input_spec())
    model = PIPNet(config)
    weights = rename(rename(state, "_net.", "features."), "_add_on.0.", "add_on.")
    weights = {k.replace("_classification.", "classification_") if k.startswith(("_classification.w", "_classification.b")) else k: v for k, v in weights.items()}
    weights["normalization_multiplier"] = weights.pop("_classification.normalization_multiplier", torch.ones(1))
    weights.pop("_multiplier", None)
    load_weights(model, weights, label)
    return model
