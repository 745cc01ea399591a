"""Small helpers shared by the research-checkpoint importers: state dicts, attributes, validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from protoviz.errors import CheckpointError
from protoviz.models.base import InputSpec
from protoviz.models.checkpoint import state_dict_problems
from protoviz.models.legacy.unpickler import StandIn
from protoviz.models.limits import DEFAULT_LIMITS, check_int, check_state_keys, safe_name


def class_names(count: int) -> tuple[str, ...]:
    """Research checkpoints carry no class names: ``class_0`` ... ``class_{C-1}``."""
    check_int(count, "the number of classes", 1, DEFAULT_LIMITS.max_classes, "the checkpoint")
    return tuple(f"class_{i}" for i in range(count))


def input_spec(image_size: Any = 224) -> InputSpec:
    """ImageNet-normalised square input of the pickled ``img_size`` (default 224 when absent)."""
    if image_size is None or isinstance(image_size, bool) or not isinstance(image_size, int | float):
        return InputSpec(image_size=(224, 224))
    limits = DEFAULT_LIMITS
    if not limits.min_image_side <= image_size <= limits.max_image_side:
        raise CheckpointError(f"the checkpoint's img_size is {image_size}; protoviz accepts "
                              f"{limits.min_image_side} to {limits.max_image_side} pixels")
    size = int(image_size)
    return InputSpec(image_size=(size, size))


def check_state(state: Mapping[str, Tensor], label: str) -> None:
    """Tensor names within bounds (see :func:`check_state_keys`) and no tensor with an empty dimension
    (zero classes or prototypes would only fail later, with a division by zero)."""
    check_state_keys(state.keys(), label)
    empty = [k for k, v in state.items() if v.dim() > 0 and 0 in v.shape]
    if empty:
        raise CheckpointError(f"{label}: tensor {safe_name(empty[0])} has an empty dimension "
                              f"{tuple(state[empty[0]].shape)} (no classes or prototypes?)")


def tensor_state(obj: Any, label: str) -> dict[str, Tensor]:
    """The tensors of a loaded state dict or module, validated (str keys, tensor values, bounded names)."""
    if isinstance(obj, nn.Module):
        obj = module_tensors(obj, label)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{label}: expected a state dict or a model, found {safe_name(type(obj).__name__)}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{label}: the state dict holds non-tensor entries (e.g. {safe_name(bad[0])})")
    check_state(obj, label)
    return {k: v.detach() for k, v in obj.items()}


def module_tensors(module: nn.Module, label: str, prefix: str = "", depth: int = 0,
                   seen: set[int] | None = None) -> dict[str, Tensor]:
    """A module's parameters and buffers by state-dict key, read from its dicts directly.

    Unlike ``state_dict()`` this runs no hooks or overridden methods a pickle could have planted. A
    module reached twice is read once (as ``state_dict`` does), so shared submodules cannot make the
    walk exponential.
    """
    if depth > 64:
        raise CheckpointError(f"{label}: modules nested more than 64 deep (a cyclic or hostile pickle?)")
    top = seen is None
    seen = set() if seen is None else seen
    if id(module) in seen:
        return {}
    seen.add(id(module))
    found: dict[str, Tensor] = {}
    for store in ("_parameters", "_buffers"):
        items = vars(module).get(store) or {}
        if not isinstance(items, dict):
            raise CheckpointError(f"{label}: {prefix or 'the model'} has a malformed {store}")
        non_persistent = vars(module).get("_non_persistent_buffers_set") or set()
        for name, value in items.items():
            if value is None or (store == "_buffers" and name in non_persistent):
                continue
            if not isinstance(name, str) or not isinstance(value, Tensor):
                raise CheckpointError(f"{label}: {safe_name(prefix + str(name))} is not a tensor")
            found[prefix + name] = value.detach()
    children = vars(module).get("_modules") or {}
    if not isinstance(children, dict):
        raise CheckpointError(f"{label}: {prefix or 'the model'} has malformed submodules")
    for name, child in children.items():
        if child is None:
            continue
        if not isinstance(child, nn.Module) or not isinstance(name, str):
            raise CheckpointError(f"{label}: {safe_name(prefix + str(name))} is not a module")
        found.update(module_tensors(child, label, f"{prefix}{name}.", depth + 1, seen))
        if len(found) > DEFAULT_LIMITS.max_tensors:
            raise CheckpointError(f"{label} holds more than {DEFAULT_LIMITS.max_tensors} tensors")
    if top:
        check_state(found, label)
    return found


def strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Remove ``prefix`` (e.g. DataParallel's ``module.``) from every key that has it."""
    return {(k.removeprefix(prefix)): v for k, v in state.items()}


def rename(state: dict[str, Tensor], old: str, new: str) -> dict[str, Tensor]:
    """Keys starting with ``old`` start with ``new`` instead."""
    return {(new + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}


def attribute(module: nn.Module, name: str, kind: type | tuple[type, ...], label: str) -> Any:
    """A pickled attribute of a stand-in, checked to be of ``kind``."""
    value = getattr(module, name, None)
    if not isinstance(value, kind):
        raise CheckpointError(f"{label}: the pickled model's {name!r} should be {kind}, "
                              f"found {safe_name(type(value).__name__)}")
    return value


def research_class(obj: Any) -> str:
    """``module.qualname`` of a stand-in ('' for anything else)."""
    return obj.research_class if isinstance(obj, StandIn) else ""


def load_weights(model: nn.Module, state: dict[str, Tensor], label: str) -> None:
    """Load ``state`` into ``model`` strictly, with a message naming what does not fit."""
    expected = model.state_dict()
    state = dict(state)
    for key in expected:  # BatchNorm counters are missing from files written before PyTorch 0.4.1
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    problems = state_dict_problems(expected, state)
    if problems:
        raise CheckpointError(f"{label} does not fit the architecture inferred from it: " + "; ".join(problems))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def add_on_kind(state: dict[str, Tensor], prefix: str = "add_on_layers.") -> str:
    """``regular`` when the add-on has two convs (bottleneck with one stage is the same), else ``bottleneck``."""
    convs = [k for k, v in state.items() if k.startswith(prefix) and k.endswith(".weight") and v.dim() == 4]
    return "regular" if len(convs) == 2 else "bottleneck"
