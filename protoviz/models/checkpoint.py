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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from protoviz.errors import CheckpointError, ProtovizError
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.models.source_record import source_from_record

FORMAT_NAME = "protoviz"
FORMAT_VERSION = "2"  # 2: prototype sources may carry rf_box, push_box, distance, distance_kind, origin
READABLE_VERSIONS: tuple[str, ...] = ("1", "2")
_SOURCE_PREFIX = "protoviz.source."


def is_safetensors(path: Path) -> bool:
    """True if the file starts like a safetensors file (8-byte header length, then '{')."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return path.suffix == ".safetensors"
    size = int.from_bytes(head[:8], "little")
    return 0 < size < 100_000_000


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


def load_native(path: str | Path, device: torch.device | str = "cpu") -> PrototypeModel:
    """Read a native checkpoint; raise :class:`CheckpointError` saying what is wrong if it is not one."""
    from protoviz.models.registry import FAMILIES

    path = Path(path)
    metadata, tensors = _read(path)
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path.name} is a safetensors file without protoviz metadata; "
                              "convert research checkpoints with `protoviz convert`")
    if metadata.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path.name} has format version {metadata.get('format_version')!r}; "
                              f"this protoviz reads versions {', '.join(READABLE_VERSIONS)}")
    try:
        family = metadata["family"]
        config = json.loads(metadata["config"])
        model = FAMILIES.get(family).from_config(config)
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path.name}: the model config in its metadata is malformed ({error})") from error
    except ProtovizError as error:
        raise CheckpointError(f"{path.name}: {error}") from error
    weights = {k: v for k, v in tensors.items() if not k.startswith(_SOURCE_PREFIX)}
    _check_state_dict(path.name, model.state_dict(), weights)
    model.load_state_dict(weights, strict=True)
    model.prototype_sources = _sources(metadata, tensors, model.num_prototypes)
    model.metadata = json.loads(metadata.get("extra", "{}"))
    model.metadata["checkpoint_sha256"] = file_sha256(path)
    return model.to(device).eval()


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as error:  # safetensors raises its own error types and OSError
        raise CheckpointError(f"{path.name} is not a readable safetensors file (truncated or corrupt?): {error}") from error
    return metadata, tensors


def _check_state_dict(name: str, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    problems = state_dict_problems(expected, found)
    if problems:
        raise CheckpointError(f"{name} does not match the model its config describes: " + "; ".join(problems))


def state_dict_problems(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between two state dicts: missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: file {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in sorted(set(expected) & set(found)) if found[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
    return problems


def _sources(metadata: dict[str, str], tensors: dict[str, torch.Tensor], num_prototypes: int) -> list[PrototypeSource | None]:
    try:
        raw = json.loads(metadata.get("prototype_sources", "[]"))
    except ValueError as error:
        raise CheckpointError(f"the prototype_sources metadata is not valid JSON ({error})") from error
    if not isinstance(raw, list):
        raise CheckpointError("the prototype_sources metadata must be a JSON list")
    if raw and len(raw) != num_prototypes:
        raise CheckpointError(f"checkpoint lists {len(raw)} prototype sources for {num_prototypes} prototypes")
    sources: list[PrototypeSource | None] = []
    for j, item in enumerate(raw):
        if item is None:
            sources.append(None)
            continue
        image = tensors.get(f"{_SOURCE_PREFIX}{j}.image")
        patch = tensors.get(f"{_SOURCE_PREFIX}{j}.patch")
        sources.append(source_from_record(item, j, _thumbnail(image, j), _thumbnail(patch, j)))
    return sources


def _thumbnail(tensor: torch.Tensor | None, index: int) -> np.ndarray | None:
    if tensor is None:
        return None
    if tensor.dim() != 3 or tensor.shape[2] != 3 or tensor.dtype != torch.uint8:
        raise CheckpointError(f"prototype source {index}: thumbnails must be (h, w, 3) uint8, "
                              f"got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.numpy()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, for reproducibility records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
