"""A metric's full result (``Score.details``: PartScores, DeletionCurves ...) in storable form.

A details class is a frozen dataclass registered with ``@stored_details("name")``. :func:`encode_details`
writes its numpy array fields as ``.npy`` blobs (never pickled) and every other field as JSON (nested
dataclasses as dicts, tuples as lists); :func:`decode_details` rebuilds it from the field types. So a
result re-opened from the workspace draws the same figures as the one just computed. Pure Python +
numpy (no torch).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from protoviz.errors import ConfigError, WorkspaceError
from protoviz.payload import array_from_bytes, array_to_bytes

T = TypeVar("T")
_DETAILS: dict[str, type] = {}


def stored_details(name: str) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass as a storable metric result under ``name``."""

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"{cls.__name__}: only dataclasses can be stored as metric details")
        if _DETAILS.get(name, cls) is not cls:
            raise ConfigError(f"metric details {name!r} are already registered ({_DETAILS[name].__name__})")
        _DETAILS[name] = cls
        cls.__details_name__ = name  # type: ignore[attr-defined]
        return cls

    return register


def encode_details(value: Any, prefix: str) -> tuple[dict[str, Any] | None, dict[str, bytes]]:
    """(JSON record, blobs named ``{prefix}/{field}``) of a registered details object; (None, {}) for None or
    an unregistered type (such details are not kept: a re-opened result lacks only their figures)."""
    name = getattr(type(value), "__details_name__", None)
    if value is None or name is None:
        return None, {}
    fields: dict[str, Any] = {}
    arrays: list[str] = []
    blobs: dict[str, bytes] = {}
    for item in dataclasses.fields(value):
        field_value = getattr(value, item.name)
        if isinstance(field_value, np.ndarray):
            arrays.append(item.name)
            blobs[f"{prefix}/{item.name}"] = array_to_bytes(field_value)
        else:
            fields[item.name] = _plain(field_value)
    return {"type": name, "fields": fields, "arrays": arrays}, blobs


def decode_details(record: Mapping[str, Any] | None, blobs: Mapping[str, bytes], prefix: str) -> Any:
    """The details object :func:`encode_details` stored, or None (none stored, or blobs not loaded)."""
    if not record:
        return None
    cls = _DETAILS.get(str(record.get("type")))
    if cls is None:
        raise WorkspaceError(f"stored metric details of type {record.get('type')!r} are unknown to this protoviz")
    arrays = list(record.get("arrays", []))
    if any(f"{prefix}/{name}" not in blobs for name in arrays):
        return None
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {name: array_from_bytes(blobs[f"{prefix}/{name}"]) for name in arrays}
    for name, value in dict(record.get("fields", {})).items():
        values[name] = _typed(value, hints.get(name))
    try:
        return cls(**values)
    except TypeError as error:
        raise WorkspaceError(f"stored metric details {record.get('type')!r} do not match this protoviz: {error}") \
            from error


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _typed(value: Any, hint: Any) -> Any:
    """A JSON value back in the field's type: dataclass fields from dicts, tuples from lists."""
    if value is None or hint is None:
        return value
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    for option in options:
        if isinstance(option, type) and dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            inner = typing.get_type_hints(option)
            return option(**{k: _typed(v, inner.get(k)) for k, v in value.items()})
        if (option is tuple or typing.get_origin(option) is tuple) and isinstance(value, list):
            return tuple(value)
    return value
