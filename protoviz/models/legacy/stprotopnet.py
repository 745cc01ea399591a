"""ST-ProtoPNet research checkpoints (``torch.save(model.state_dict())``), full and cropped variants.

The variant shows in the add-on keys: full/ has convs at ``.1``/``.2`` (after Upsample or Identity),
cropped/ at ``.0``/``.2`` (with Tanh). Class identity is implicit: j // (P / C) in each set.
full/'s VGG features drop the last max-pool (``VGG_features(final_maxpool=False)``, stride 16, 14x14 maps
at 224 px) and its add-on has Identity where ResNets and DenseNets upsample; cropped/'s keep all pools.
"""

from __future__ import annotations

from torch import Tensor

from protoviz.errors import CheckpointError
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.legacy.common import class_names, input_spec, load_weights
from protoviz.models.stprotopnet import SETS, STProtoPNet, STProtoPNetConfig
from protoviz.models.tesnet import default_identity


def build(state: dict[str, Tensor], label: str) -> STProtoPNet:
    """An :class:`STProtoPNet` holding the research weights."""
    vectors = state.get("prototype_vectors_support")
    last = state.get("last_layer_support.weight")
    if vectors is None or last is None or "prototype_vectors_trivial" not in state:
        raise CheckpointError(f"{label}: expected prototype_vectors_support/_trivial and last_layer_support/_trivial")
    P, D, C = int(vectors.shape[0]), int(vectors.shape[1]), int(last.shape[0])
    if P % C:
        raise CheckpointError(f"{label}: {P} prototypes per set is not a multiple of {C} classes")
    if "add_on_layers_support.1.weight" in state:
        variant = "full"
    elif "add_on_layers_support.0.weight" in state:
        variant = "cropped"
    else:
        raise CheckpointError(f"{label}: cannot tell the full/ from the cropped/ variant from add_on_layers_support keys")
    backbone = infer_backbone(state, "features.", final_pool=variant == "cropped")
    upsample = variant == "full" and not backbone.startswith("vgg")
    model = STProtoPNet(STProtoPNetConfig(class_names(C), backbone, P, D, variant, upsample, input_spec()))
    weights = {k: v for k, v in state.items() if k != "ones"}
    for name in SETS:
        weights[f"class_identity_{name}"] = default_identity(P, C)
    load_weights(model, weights, label)
    return model
