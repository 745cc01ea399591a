"""Which research family wrote a loaded checkpoint object, and its conversion to a protoviz model.

Order of evidence: the pickled class name of a whole module (``model.PPNet``, ``model.TESNet``,
``prototree.prototree.ProtoTree``), then the keys of the state dict (after unwrapping
``model_state_dict`` and DataParallel's ``module.``): ``prototype_vectors_trivial`` -> ST-ProtoPNet,
``proto_presence`` -> ProtoPool, ``_classification.weight`` -> PIP-Net, ``_root.``/``prototype_layer.``
-> ProtoTree, ``conv_offset.`` or 2x2 prototypes -> Deformable ProtoPNet, plain ``prototype_vectors``
-> ProtoPNet or TesNet, which only a ``family`` hint can tell apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeModel
from protoviz.models.hints import LoadHints
from protoviz.models.legacy import pipnet, protopnet, protopool, prototree, stprotopnet
from protoviz.models.legacy.common import research_class, strip_prefix, tensor_state
from protoviz.models.legacy.unpickler import StandIn
from protoviz.models.limits import safe_name

FAMILIES = ("protopnet", "tesnet", "stprotopnet", "protopool", "prototree", "pipnet", "deformable")
_CLASS_FAMILIES = {"PPNet": "protopnet", "TESNet": "tesnet", "ProtoTree": "prototree"}


def family_of_keys(keys: set[str], hint: str | None) -> str:
    """The family a research state dict belongs to, from its key names."""
    if any(k.startswith("prototype_vectors_trivial") for k in keys):
        return "stprotopnet"
    if "proto_presence" in keys:
        return "protopool"
    if "_classification.weight" in keys:
        return "pipnet"
    if any(k.startswith(("_root.", "prototype_layer.")) for k in keys):
        return "prototree"
    if any(k.startswith("conv_offset") for k in keys):
        return "deformable"
    if "prototype_vectors" in keys:
        if hint in ("protopnet", "tesnet"):
            return hint
        raise CheckpointError("this state dict fits both ProtoPNet and TesNet (identical keys); "
                              "say which with the family hint (--family protopnet or --family tesnet)")
    sample = ", ".join(safe_name(k) for k in sorted(keys)[:5]) or "no tensors"
    raise CheckpointError(f"no research family recognised from the state-dict keys ({sample})")


def convert(obj: Any, hint: str | None, label: str, hints: LoadHints | None = None) -> PrototypeModel:
    """Turn a safely loaded checkpoint object into a protoviz model of its family.

    ``hint`` names the family; ``hints`` carries the other facts a file cannot tell (slots, activation,
    backbone: :mod:`protoviz.models.hints`); ``label`` is the file name.
    """
    hints = hints or LoadHints(family=hint)
    if hint is not None and hint not in FAMILIES:
        raise CheckpointError(f"unknown family hint {safe_name(hint)}; expected one of {', '.join(FAMILIES)}")
    if isinstance(obj, nn.DataParallel):
        obj = obj.module
    if isinstance(obj, StandIn):
        return _convert_module(obj, hint, label, hints)
    if isinstance(obj, Mapping) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if isinstance(obj, nn.Module):
        raise CheckpointError(f"{label} holds a {safe_name(type(obj).__name__)} module, not a part-prototype network")
    state = strip_prefix(tensor_state(obj, label), "module.")
    family = family_of_keys(set(state), hint)
    _check_hint(family, hint, label)
    hints.check_family(family, label)
    if family == "prototree":
        raise CheckpointError(f"{label} {prototree.STATE_ONLY_MESSAGE}")
    return _from_state(family, state, label, hints)


def _check_hint(found: str, hint: str | None, label: str) -> None:
    if hint is not None and hint != found:
        raise CheckpointError(f"{label} is a {found} checkpoint, not {hint} as the family hint says")


def _convert_module(module: StandIn, hint: str | None, label: str, hints: LoadHints) -> PrototypeModel:
    name = research_class(module).rsplit(".", 1)[-1]
    if name not in _CLASS_FAMILIES:
        raise CheckpointError(f"{label} pickles {safe_name(research_class(module))}, which is not a known research "
                              "model class")
    family = _CLASS_FAMILIES[name]
    vectors = getattr(module, "prototype_vectors", None)
    if family == "protopnet" and (hasattr(module, "conv_offset") or
                                  (isinstance(vectors, Tensor) and tuple(vectors.shape[2:]) == (2, 2))):
        family = "deformable"
    _check_hint(family, hint, label)
    hints.check_family(family, label)
    if family == "prototree":
        return prototree.from_module(module, label)
    if family == "deformable":
        return _from_state("deformable", tensor_state(module, label), label, hints, module)
    return protopnet.from_module(family, module, label, hints)


def _from_state(family: str, state: dict[str, Tensor], label: str, hints: LoadHints,
                module: nn.Module | None = None) -> PrototypeModel:
    if family in ("protopnet", "tesnet"):
        return protopnet.from_state(family, state, label, hints)
    if family == "stprotopnet":
        return stprotopnet.build(state, label)
    if family == "protopool":
        return protopool.build(state, label, hints)
    if family == "pipnet":
        return pipnet.build(state, label, hints)
    from protoviz.models.legacy import deformable

    return deformable.build(state, module, label)
