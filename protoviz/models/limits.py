"""Every size bound a checkpoint must respect, in one place, and the checks that apply them.

A checkpoint is untrusted input: its sizes (prototypes P, classes C, prototype depth D, tree depth,
image size, backbone shape) are checked here *before* anything of that size is allocated, and the
model it describes is first built on ``torch.device("meta")`` (shapes only, no memory) and compared
with the elements the file really holds (:func:`build_within_budget`). Loading entry points
(:mod:`protoviz.models.loading`, :mod:`protoviz.models.checkpoint`, :mod:`protoviz.models.legacy`)
call these helpers; the family modules do not need to know about them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from protoviz.errors import CheckpointError, ProtovizError

M = TypeVar("M", bound=nn.Module)
# Loading real weights into a model built on the meta device is the point of the size check; torch
# warns that the copy is a no-op. (A filter, not catch_warnings, which is not thread-safe.)
warnings.filterwarnings("ignore", message=r"for .*: copying from a non-meta parameter in the checkpoint to a meta",
                        category=UserWarning)


@dataclass(frozen=True)
class ModelLimits:
    """Bounds on what a checkpoint may ask protoviz to read or build.

    The defaults admit every published model of the supported families (ResNet-152, DenseNet-201,
    VGG-19-BN backbones; CUB's 2000 prototypes; iNaturalist-sized class counts) with a wide margin.
    """

    max_file_bytes: int = 2 << 30
    max_header_bytes: int = 32 << 20  # a safetensors JSON header (shapes, names, metadata)
    max_pickle_ops: int = 2_000_000  # opcodes of one pickle stream (a whole DenseNet-161 module: 94k)
    max_zip_entries: int = 100_000
    max_tensors: int = 100_000
    max_key_length: int = 512
    max_key_index: int = 512  # numbers in state-dict keys (``layer3.35``, ``denselayer48``, ``features.52``)
    max_prototypes: int = 100_000
    max_classes: int = 100_000
    max_prototype_class_pairs: int = 100_000_000  # P x C: identity and class-weight matrices (400 MB)
    max_class_name: int = 256
    max_prototype_dim: int = 16_384
    max_prototype_side: int = 16
    max_slots: int = 1_024
    max_tree_nodes: int = 100_001
    max_tree_depth: int = 32
    max_image_side: int = 1_024
    min_image_side: int = 8
    max_backbone_stages: int = 8
    max_backbone_blocks: int = 128  # blocks per ResNet stage, layers per DenseNet block, VGG cfg entries
    max_backbone_width: int = 16_384
    max_offset_layers: int = 16
    max_activation_elements: int = 1 << 28  # largest single tensor of a one-image forward (1 GiB in float32)
    element_slack: int = 1 << 16


DEFAULT_LIMITS = ModelLimits()
_NUMBER = re.compile(r"\d+")


# ----- scalar checks -------------------------------------------------------------------------
def check_int(value: Any, name: str, low: int, high: int, label: str) -> int:
    """``value`` as an int within [low, high], else CheckpointError naming ``name`` and the bound."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{label}: {name} should be a whole number, found {type(value).__name__}")
    if not low <= value <= high:
        raise CheckpointError(f"{label}: {name} is {value}; protoviz accepts {low} to {high}")
    return value


def check_image_size(size: Any, label: str, limits: ModelLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """An (H, W) input size within [min_image_side, max_image_side]."""
    if not isinstance(size, list | tuple) or len(size) != 2:
        raise CheckpointError(f"{label}: the input image size should be two numbers (H, W)")
    return (check_int(size[0], "the input height", limits.min_image_side, limits.max_image_side, label),
            check_int(size[1], "the input width", limits.min_image_side, limits.max_image_side, label))


def check_normalisation(mean: Iterable[Any], std: Iterable[Any], label: str) -> None:
    """Three finite means and three finite, positive standard deviations."""
    mean, std = list(mean), list(std)
    if len(mean) != 3 or len(std) != 3:
        raise CheckpointError(f"{label}: the input normalisation needs 3 means and 3 standard deviations")
    for value in (*mean, *std):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CheckpointError(f"{label}: the input normalisation holds a non-finite or non-numeric value; "
                                  "every output would be NaN")
    if min(std) <= 0:
        raise CheckpointError(f"{label}: an input standard deviation is {min(std)}; it must be positive "
                              "(zero divides every pixel by zero)")


def check_class_names(names: Any, label: str, limits: ModelLimits = DEFAULT_LIMITS) -> None:
    """1..max_classes names, each a short string."""
    if not isinstance(names, list | tuple):
        raise CheckpointError(f"{label}: the model config is malformed (class names should be a list of strings)")
    check_int(len(names), "the number of classes", 1, limits.max_classes, label)
    for name in names:
        if not isinstance(name, str) or len(name) > limits.max_class_name or not name.isprintable():
            raise CheckpointError(f"{label}: every class name must be printable text of at most "
                                  f"{limits.max_class_name} characters")


def check_state_keys(keys: Iterable[Any], label: str, limits: ModelLimits = DEFAULT_LIMITS) -> None:
    """State-dict keys: bounded in number and length; every number in a key at most max_key_index.

    Backbones are inferred from key names (``layer1.99999.conv1`` would mean 100,000 blocks), so the
    numbers are bounded before any architecture is inferred from them.
    """
    for count, key in enumerate(keys, start=1):
        if count > limits.max_tensors:
            raise CheckpointError(f"{label} holds more than {limits.max_tensors} tensors")
        if not isinstance(key, str) or len(key) > limits.max_key_length:
            raise CheckpointError(f"{label}: a tensor name is not a string of at most {limits.max_key_length} "
                                  "characters")
        for number in _NUMBER.findall(key):
            if len(number) > 6 or int(number) > limits.max_key_index:
                raise CheckpointError(f"{label}: the tensor name {safe_name(key)} numbers a layer beyond "
                                      f"{limits.max_key_index}; no supported backbone is that deep")


def safe_name(text: Any, limit: int = 80) -> str:
    """A name from a file, quoted and cut, with anything but plain identifier characters replaced
    (only strings and numbers are shown; other objects by their type, never by ``str()``)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str | int | float) or (isinstance(text, int) and text.bit_length() > 64):
        return f"<{type(text).__name__}>"
    clean = re.sub(r"[^A-Za-z0-9_.:/\-]", "?", str(text)[: limit + 1])
    return repr(clean if len(clean) <= limit else clean[:limit] + "...")


# ----- structures ----------------------------------------------------------------------------
def check_tree(nodes: Any, label: str, limits: ModelLimits = DEFAULT_LIMITS, num_prototypes: int = 0) -> None:
    """A ProtoTree node list: a binary tree rooted at position 0, acyclic, every position reached once,
    leaf rows 0..L-1 each used once, prototype indices in [0, P) (P = ``num_prototypes``, or the number
    of branches when 0), depth at most ``max_tree_depth``."""
    if not isinstance(nodes, list | tuple) or not nodes:
        raise CheckpointError(f"{label}: the ProtoTree has no nodes")
    check_int(len(nodes), "the number of tree nodes", 1, limits.max_tree_nodes, label)
    rows = num_prototypes or sum(isinstance(n, Mapping) and "leaf" not in n for n in nodes)
    seen: set[int] = set()
    leaves: list[int] = []
    stack = [(0, 0)]
    while stack:
        position, depth = stack.pop()
        if depth > limits.max_tree_depth:
            raise CheckpointError(f"{label}: the tree is deeper than {limits.max_tree_depth} levels")
        if position in seen:
            raise CheckpointError(f"{label}: tree node {position} is reached twice (the tree has a cycle or "
                                  "shared subtrees)")
        seen.add(position)
        node = nodes[position]
        if not isinstance(node, Mapping):
            raise CheckpointError(f"{label}: tree node {position} is not a mapping")
        if "leaf" in node:
            leaves.append(check_int(node["leaf"], f"leaf row of node {position}", 0, len(nodes), label))
            continue
        check_int(node.get("prototype"), f"prototype of node {position}", 0, max(0, rows - 1), label)
        for side in ("left", "right"):
            child = check_int(node.get(side), f"{side} child of node {position}", 0, len(nodes) - 1, label)
            stack.append((child, depth + 1))
    if len(seen) != len(nodes):
        raise CheckpointError(f"{label}: {len(nodes) - len(seen)} tree node(s) are not reachable from the root")
    if sorted(leaves) != list(range(len(leaves))):
        raise CheckpointError(f"{label}: leaf rows must be 0..{len(leaves) - 1}, each used once")


_DESCRIPTOR = re.compile(r"[a-z]+:[A-Za-z0-9_=,;]*")


def check_backbone(name: Any, label: str, limits: ModelLimits = DEFAULT_LIMITS) -> None:
    """A backbone name: a registered name, or a parametric descriptor (``vgg:cfg=...``) within bounds."""
    if not isinstance(name, str) or not 0 < len(name) <= 4096:
        raise CheckpointError(f"{label}: the backbone name should be a short string")
    if ":" not in name:
        return
    if not _DESCRIPTOR.fullmatch(name):
        raise CheckpointError(f"{label}: malformed backbone descriptor {safe_name(name)}")
    params = dict(item.split("=", 1) for item in name.partition(":")[2].split(";") if "=" in item)
    numbers = [v for key, value in params.items() if key not in ("cfg", "block") for v in value.split(",") if v]
    cfg = [v for v in params.get("cfg", "").split(",") if v]
    lists = [value.split(",") for key, value in params.items() if key in ("layers", "widths", "blocks")]
    if len(cfg) > limits.max_backbone_blocks or any(len(v) > limits.max_backbone_stages for v in lists):
        raise CheckpointError(f"{label}: the backbone descriptor describes more layers than protoviz builds "
                              f"({limits.max_backbone_blocks} per stage, {limits.max_backbone_stages} stages)")
    for value in [*numbers, *(v for v in cfg if v != "M")]:
        if not value.isdigit() or len(value) > 6 or int(value) > limits.max_backbone_width:
            raise CheckpointError(f"{label}: the backbone descriptor has a width or count beyond "
                                  f"{limits.max_backbone_width}")
    counts = [int(v) for key in ("layers", "blocks") for v in params.get(key, "").split(",") if v.isdigit()]
    if any(c > limits.max_backbone_blocks for c in counts):
        raise CheckpointError(f"{label}: the backbone descriptor has a stage of more than "
                              f"{limits.max_backbone_blocks} blocks")


_COUNT_FIELDS = {"num_prototypes": "max_prototypes", "prototypes_per_class": "max_prototypes",
                 "prototype_dim": "max_prototype_dim", "num_slots": "max_slots", "num_features": "max_prototype_dim"}


def check_config(config: Any, label: str, limits: ModelLimits = DEFAULT_LIMITS) -> None:
    """The sizes of a family config dict (native checkpoints' metadata) before any model is built."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{label}: the model config is malformed (not a JSON object)")
    check_class_names(config.get("class_names"), label, limits)
    spec = config.get("input")
    if not isinstance(spec, dict):
        raise CheckpointError(f"{label}: the model config is malformed (no input specification)")
    check_image_size(spec.get("image_size"), label, limits)
    mean, std = spec.get("mean"), spec.get("std")
    if not isinstance(mean, list) or not isinstance(std, list):
        raise CheckpointError(f"{label}: the input normalisation should be lists of numbers")
    check_normalisation(mean, std, label)
    check_backbone(config.get("backbone"), label, limits)
    for field, bound in _COUNT_FIELDS.items():
        if config.get(field) is not None:
            check_int(config[field], field, 0, getattr(limits, bound), label)
    classes = len(config["class_names"])
    if isinstance(config.get("prototypes_per_class"), int):
        check_int(config["prototypes_per_class"] * classes, "the number of prototypes", 1, limits.max_prototypes,
                  label)
    prototypes = _prototype_count(config, classes)
    if prototypes * classes > limits.max_prototype_class_pairs:
        raise CheckpointError(f"{label}: {prototypes:,} prototypes x {classes:,} classes is more than protoviz holds "
                              f"({limits.max_prototype_class_pairs:,} prototype-class pairs)")
    if "prototype_size" in config:
        size = config["prototype_size"]
        if not isinstance(size, list) or len(size) != 2:
            raise CheckpointError(f"{label}: prototype_size should be two numbers")
        for side in size:
            check_int(side, "the prototype size", 1, limits.max_prototype_side, label)
    if "tree" in config:
        count = config.get("num_prototypes") or 0
        check_tree(config["tree"], label, limits, count if isinstance(count, int) else 0)
    if "offset_layers" in config:
        _check_offset_layers(config["offset_layers"], label, limits)
    sets = config.get("prototype_sets")
    if sets is not None and (not isinstance(sets, list) or not 1 <= len(sets) <= 4):
        raise CheckpointError(f"{label}: prototype_sets should list one to four names")


def _prototype_count(config: dict[str, Any], classes: int) -> int:
    """P as the config states it (0 when only the weights say, e.g. PIP-Net's channels)."""
    count = config.get("num_prototypes")
    if isinstance(count, int) and count > 0:
        return count
    if isinstance(config.get("prototypes_per_class"), int):
        return config["prototypes_per_class"] * classes
    tree = config.get("tree")
    return sum(isinstance(n, dict) and "leaf" not in n for n in tree) if isinstance(tree, list) else 0


def _check_offset_layers(layers: Any, label: str, limits: ModelLimits) -> None:
    if not isinstance(layers, list) or not 1 <= len(layers) <= limits.max_offset_layers:
        raise CheckpointError(f"{label}: offset_layers should list 1 to {limits.max_offset_layers} layers")
    for layer in layers:
        if not isinstance(layer, dict):
            raise CheckpointError(f"{label}: every offset layer should be a JSON object")
        if layer.get("kind") == "conv":
            check_int(layer.get("out"), "an offset layer's channels", 1, limits.max_backbone_width, label)
            check_int(layer.get("kernel"), "an offset layer's kernel", 1, 7, label)
            check_int(layer.get("padding"), "an offset layer's padding", 0, 16, label)
            check_int(layer.get("dilation"), "an offset layer's dilation", 1, 16, label)


# ----- the model against the bytes present -------------------------------------------------------
def state_elements(module: nn.Module) -> int:
    """Elements of a module's state dict (parameters and persistent buffers)."""
    return sum(t.numel() for t in module.state_dict().values())


def build_within_budget(build: Callable[[], M], present_elements: int, label: str,
                        limits: ModelLimits = DEFAULT_LIMITS, check: Callable[[M], None] | None = None) -> M:
    """Run ``build`` on the meta device, check its size, then run it for real.

    The meta model must pass ``check`` (e.g. its config's bounds, or its shapes against the file's),
    need at most twice the elements the file holds (class-identity buffers the file does not store are
    the legitimate difference), and a one-image forward at its own input size must not create a tensor
    over ``max_activation_elements``. Only then is memory allocated.
    """
    meta = build_on_meta(build, label)
    if check is not None:
        try:
            check(meta)
        except ProtovizError:
            raise
        except Exception as error:
            raise CheckpointError(f"{label}: its model could not be checked ({type(error).__name__})") from error
    needed = state_elements(meta)
    if needed > 2 * present_elements + limits.element_slack:
        raise CheckpointError(f"{label}: the model it describes needs {needed:,} weights but the file holds "
                              f"{present_elements:,}; refusing to allocate what the file does not contain")
    check_forward_size(meta, label, limits)
    return build()


def build_on_meta(build: Callable[[], M], label: str) -> M:
    """``build()`` with every new tensor on the meta device (shapes only)."""
    try:
        with torch.device("meta"):
            return build()
    except ProtovizError:
        raise
    except Exception as error:  # any failure of a hostile structure is the file's fault
        raise CheckpointError(f"{label}: its structure does not describe a model protoviz can build "
                              f"({type(error).__name__})") from error


class _PeakSize(TorchDispatchMode):
    """Records the largest tensor any operation produces."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if isinstance(item, Tensor):
                self.peak = max(self.peak, item.numel())
        return out


def check_forward_size(meta_model: nn.Module, label: str, limits: ModelLimits = DEFAULT_LIMITS) -> None:
    """Run a one-image forward of a meta model at its input size and bound its largest tensor."""
    spec = getattr(meta_model, "input_spec", None)
    similarity = getattr(meta_model, "similarity_maps", None)
    if spec is None or similarity is None:
        return
    height, width = check_image_size(spec.image_size, label, limits)
    probe = torch.zeros(1, 3, height, width, device="meta")
    recorder = _PeakSize()
    try:
        with torch.no_grad(), recorder:
            similarity(probe)
    except ProtovizError:
        raise
    except NotImplementedError:
        return  # an operator without a meta kernel: the size cannot be measured this way
    except Exception as error:
        raise CheckpointError(f"{label}: the model it describes cannot run on a {height}x{width} image "
                              f"({type(error).__name__})") from error
    if recorder.peak > limits.max_activation_elements:
        raise CheckpointError(f"{label}: one {height}x{width} image would need a tensor of {recorder.peak:,} "
                              f"values (limit {limits.max_activation_elements:,}); the input size or layer "
                              "widths are too large")


def check_finite(module: nn.Module, label: str) -> None:
    """Refuse NaN or infinite weights: every output of such a model would be NaN."""
    bad = [name for name, tensor in module.state_dict().items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise CheckpointError(f"{label} holds NaN or infinite values in {len(bad)} tensor(s) "
                              f"(e.g. {', '.join(safe_name(b) for b in bad[:3])}); every output would be NaN")
