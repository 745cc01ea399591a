"""protoviz's native checkpoint: one ``.safetensors`` file, no pickle anywhere.

Tensors: the model's state dict, plus prototype-source thumbnails under ``protoviz.source.{j}.image``
and ``protoviz.source.{j}.patch`` ((h, w, 3) uint8).
Metadata (strings): ``format`` = ``protoviz``, ``format_version``, ``family``, ``config`` (JSON),
``class_names`` (JSON), ``prototype_sources`` (JSON list, null where unknown), ``extra`` (JSON: how the
model was made, accuracy ...).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from protoviz import files
from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.models.limits import (
    DEFAULT_LIMITS,
    ModelLimits,
    build_within_budget,
    check_config,
    check_state_keys,
    safe_name,
)
from protoviz.models.source_record import source_from_record

FORMAT_NAME = "protoviz"
FORMAT_VERSION = "2"  # 2: prototype sources may carry rf_box, push_box, distance, distance_kind, origin
READABLE_VERSIONS: tuple[str, ...] = ("1", "2")
_SOURCE_PREFIX = "protoviz.source."
_MAX_COORDINATE = 1 << 20


def is_safetensors(path: Path) -> bool:
    """True if the file starts like a safetensors file (8-byte header length, then '{')."""
    head, size = files.read_head(path, 9, CheckpointError)
    return looks_like_safetensors(head, size, path.suffix)


def looks_like_safetensors(head: bytes, size: int, suffix: str = "") -> bool:
    """True for a head of 8 bytes of header length (within the file) followed by '{'."""
    if len(head) < 9 or head[8:9] != b"{":
        return suffix == ".safetensors"
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= size - 8 or suffix == ".safetensors"


def save_model(model: PrototypeModel, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (weights, config, class names, prototype sources) to ``path``."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    sources: list[dict[str, Any] | None] = []
    for j, source in enumerate(model.prototype_sources):
        if source is None:
            sources.append(None)
            continue
        sources.append(source.to_dict())
        for kind, array in (("image", source.image_thumbnail), ("patch", source.patch_thumbnail)):
            if array is not None:
                tensors[f"{_SOURCE_PREFIX}{j}.{kind}"] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8))
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "family": model.family,
        "config": json.dumps(model.config_dict()),
        "class_names": json.dumps(list(model.class_names)),
        "prototype_sources": json.dumps(sources),
        "extra": json.dumps({**model.metadata, **(extra or {})}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_native(path: str | Path, device: torch.device | str = "cpu",
                limits: ModelLimits = DEFAULT_LIMITS) -> PrototypeModel:
    """Read a native checkpoint; raise :class:`CheckpointError` saying what is wrong if it is not one.

    The header is read and checked first (sizes, dtypes, the config's bounds); the model is built on
    the meta device and its tensor shapes compared with the header's; only then are weights read.
    """
    from protoviz.models.registry import FAMILIES

    path = Path(path)
    label = path.name
    metadata, infos = read_header(path, limits)
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{label} is a safetensors file without protoviz metadata; "
                              "convert research checkpoints with `protoviz convert`")
    if metadata.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{label} has format version {safe_name(metadata.get('format_version'))}; "
                              f"this protoviz reads versions {', '.join(READABLE_VERSIONS)}")
    family = metadata.get("family")
    if family not in FAMILIES.names():
        raise CheckpointError(f"{label}: unknown model family {safe_name(family)}; known: "
                              f"{', '.join(FAMILIES.names())}")
    config = _json(metadata, "config", dict, label)
    check_config(config, label, limits)
    shapes = {k: tuple(v["shape"]) for k, v in infos.items() if not k.startswith(_SOURCE_PREFIX)}
    check_state_keys(shapes, label, limits)
    present = sum(math.prod(shape) for shape in shapes.values())

    def same_shapes(meta: PrototypeModel) -> None:
        expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
        problems = shape_problems(expected, shapes)
        if problems:
            raise CheckpointError(f"{label} does not match the model its config describes: " + "; ".join(problems))

    def build() -> PrototypeModel:
        try:
            return FAMILIES.get(family).from_config(config)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise CheckpointError(f"{label}: the model config in its metadata is malformed "
                                  f"({type(error).__name__})") from error

    model = build_within_budget(build, present, label, limits, check=same_shapes)
    metadata, tensors = _read(path)
    weights = {k: v for k, v in tensors.items() if not k.startswith(_SOURCE_PREFIX)}
    _check_state_dict(label, model.state_dict(), weights)
    model.load_state_dict(weights, strict=True)
    model.prototype_sources = _sources(metadata, tensors, model, label)
    model.metadata = _json(metadata, "extra", dict, label, default={})
    model.metadata["checkpoint_sha256"] = file_sha256(path)
    return model.to(device).eval()


_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I8": 1, "I16": 2, "I32": 4, "I64": 8, "U8": 1, "BOOL": 1}


def read_header(path: Path, limits: ModelLimits = DEFAULT_LIMITS) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The metadata and tensor entries of a safetensors file, checked, without reading any tensor."""
    label = path.name
    head, size = files.read_head(path, 8, CheckpointError)
    if len(head) < 8:
        raise CheckpointError(f"{label} is not a readable safetensors file (truncated or corrupt?)")
    if size > limits.max_file_bytes:
        raise CheckpointError(f"{label} is {size / 2**30:.1f} GiB; protoviz reads checkpoints up to "
                              f"{limits.max_file_bytes / 2**30:.1f} GiB")
    length = int.from_bytes(head, "little")
    if length > limits.max_header_bytes or length > size - 8:
        raise CheckpointError(f"{label} is not a readable safetensors file (truncated or corrupt?): its header "
                              "length is larger than the file or the limit")
    try:
        header = json.loads(files.read_range(path, 8, length, CheckpointError))
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{label} is not a readable safetensors file (truncated or corrupt?): "
                              "its header is not JSON") from error
    if not isinstance(header, dict):
        raise CheckpointError(f"{label} is not a readable safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{label}: its metadata must map names to strings")
    if len(header) > limits.max_tensors:
        raise CheckpointError(f"{label} holds more than {limits.max_tensors} tensors")
    data_size = size - 8 - length
    for name, info in header.items():
        _check_entry(name, info, data_size, label)
    return metadata, header


def _check_entry(name: str, info: Any, data_size: int, label: str) -> None:
    if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
        raise CheckpointError(f"{label}: tensor {safe_name(name)} has no supported dtype "
                              f"({', '.join(_DTYPES)})")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or len(shape) > 16 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 48 for v in shape):
        raise CheckpointError(f"{label}: tensor {safe_name(name)} has a malformed shape")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(v, int) for v in offsets) \
            or not 0 <= offsets[0] <= offsets[1] <= data_size \
            or offsets[1] - offsets[0] != math.prod(shape) * _DTYPES[info["dtype"]]:
        raise CheckpointError(f"{label}: tensor {safe_name(name)} claims bytes the file does not hold "
                              "(truncated or corrupt?)")


def _json(metadata: dict[str, str], key: str, kind: type, label: str, default: Any = None) -> Any:
    if key not in metadata and default is not None:
        return default
    try:
        value = json.loads(metadata[key])
    except KeyError:
        raise CheckpointError(f"{label}: its metadata has no {key!r}") from None
    except (ValueError, RecursionError):
        raise CheckpointError(f"{label}: its metadata {key!r} is not valid JSON") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{label}: its metadata {key!r} should be a JSON {kind.__name__}")
    return value


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as error:  # safetensors raises its own error types and OSError
        raise CheckpointError(f"{path.name} is not a readable safetensors file (truncated or corrupt?) "
                              f"({type(error).__name__})") from error
    return metadata, tensors


def _check_state_dict(name: str, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    problems = state_dict_problems(expected, found)
    if problems:
        raise CheckpointError(f"{name} does not match the model its config describes: " + "; ".join(problems))


def state_dict_problems(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between two state dicts: missing, unexpected and mis-shaped tensors."""
    return shape_problems({k: tuple(v.shape) for k, v in expected.items()},
                          {k: tuple(v.shape) for k, v in found.items()})


def shape_problems(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> list[str]:
    """Human-readable differences between two name -> shape maps: missing, unexpected and mis-shaped."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: file {tuple(found[k])} vs model {tuple(expected[k])}"
             for k in sorted(set(expected) & set(found)) if tuple(found[k]) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(safe_name(k) for k in unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
    return problems


def _sources(metadata: dict[str, str], tensors: dict[str, torch.Tensor], model: PrototypeModel,
             label: str) -> list[PrototypeSource | None]:
    raw = _json(metadata, "prototype_sources", list, label, default=[])
    if raw and len(raw) != model.num_prototypes:
        raise CheckpointError(f"checkpoint lists {len(raw)} prototype sources for {model.num_prototypes} prototypes")
    sources: list[PrototypeSource | None] = []
    for j, item in enumerate(raw):
        if item is None:
            sources.append(None)
            continue
        image = _thumbnail(tensors.get(f"{_SOURCE_PREFIX}{j}.image"), j)
        patch = _thumbnail(tensors.get(f"{_SOURCE_PREFIX}{j}.patch"), j)
        source = source_from_record(item, j, image, patch)
        for name in ("box", "rf_box", "push_box", "map_location"):
            values = getattr(source, name, None) or ()
            if any(abs(v) > _MAX_COORDINATE for v in values):
                raise CheckpointError(f"{label}: prototype source {j}: {name} values beyond {_MAX_COORDINATE} pixels")
        sources.append(source)
    return sources


def _thumbnail(tensor: torch.Tensor | None, index: int) -> np.ndarray | None:
    """An (h, w, 3) uint8 picture of 1 to 1024 pixels a side, or None."""
    if tensor is None:
        return None
    if tensor.dim() != 3 or tensor.shape[2] != 3 or tensor.dtype != torch.uint8 or max(tensor.shape[:2]) > 1024 \
            or min(tensor.shape[:2]) < 1:
        raise CheckpointError(f"prototype source {index}: thumbnails must be (h, w, 3) uint8 of at most 1024 "
                              f"pixels a side, got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.numpy()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, for reproducibility records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
