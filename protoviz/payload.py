"""How a result is kept: a :class:`Payload` of JSON data, named tables of rows and named binary blobs.

The workspace stores any result that is, or converts to, a Payload:

- ``data``: a JSON-able dict (headline scores, parameters, anything small);
- ``tables``: named lists of dict rows (``"scores"``: one row per score; ``"prototypes"``: one row per
  prototype ...), exported as CSV;
- ``blobs``: named bytes for arrays and thumbnails (:func:`array_to_bytes`; never pickled);
- ``provenance``: how the result was made (model sha256, dataset fingerprint, settings, seed, device,
  versions), a JSON-able dict.

A typed result plugs in with two methods and one registration::

    @result_type("evaluation")
    @dataclass(frozen=True)
    class Evaluation:
        def to_payload(self) -> Payload: ...
        @classmethod
        def from_payload(cls, payload: Payload) -> "Evaluation": ...

and :func:`decode` turns a stored payload back into an ``Evaluation``. Pure Python + numpy, no torch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from protoviz.errors import ConfigError, WorkspaceError

RAW_TYPE = "payload"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\[\]-]{0,199}$")


@dataclass(frozen=True)
class Payload:
    """A result in storable form. ``type`` names the registered class that :func:`decode` rebuilds."""

    type: str = RAW_TYPE
    data: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, names in (("table", self.tables), ("blob", self.blobs)):
            for name in names:
                check_name(name, kind)
        for name, rows in self.tables.items():
            if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
                raise WorkspaceError(f"table {name!r} must be a list of dict rows")
        for name, blob in self.blobs.items():
            if not isinstance(blob, (bytes, bytearray, memoryview)):
                raise WorkspaceError(f"blob {name!r} must be bytes, got {type(blob).__name__}")


@runtime_checkable
class Storable(Protocol):
    """A typed result the workspace can keep: it converts to a :class:`Payload` and back."""

    def to_payload(self) -> Payload: ...


T = TypeVar("T")
_TYPES: dict[str, type] = {}  # registry: result type name -> class with from_payload


def result_type(name: str) -> Callable[[type[T]], type[T]]:
    """Register a class (with ``to_payload`` and classmethod ``from_payload``) under ``name``."""
    check_name(name, "result type")

    def register(cls: type[T]) -> type[T]:
        if name in _TYPES or name == RAW_TYPE:
            raise ConfigError(f"result type {name!r} is already registered")
        if not callable(getattr(cls, "to_payload", None)) or not callable(getattr(cls, "from_payload", None)):
            raise ConfigError(f"{cls.__name__} needs to_payload() and a from_payload() classmethod")
        _TYPES[name] = cls
        cls.__result_type__ = name  # type: ignore[attr-defined]
        return cls

    return register


def list_result_types() -> list[str]:
    return sorted(_TYPES)


def as_payload(result: Payload | Storable | Mapping[str, Any]) -> Payload:
    """The payload of ``result``: itself, its ``to_payload()`` (typed with its registered name), or a dict as data."""
    if isinstance(result, Payload):
        return result
    if isinstance(result, Storable):
        payload = result.to_payload()
        name = getattr(type(result), "__result_type__", None)
        if name is not None and payload.type == RAW_TYPE:
            payload = dataclasses.replace(payload, type=name)
        return payload
    if isinstance(result, Mapping):
        return Payload(data=dict(result))
    raise WorkspaceError(f"cannot keep a result of type {type(result).__name__}: "
                         "return a Payload, a dict, or an object with to_payload()")


def decode(payload: Payload) -> Any:
    """The typed result a payload was made from (the payload itself for untyped ones)."""
    if payload.type == RAW_TYPE:
        return payload
    cls = _TYPES.get(payload.type)
    if cls is None:
        raise WorkspaceError(f"stored result of type {payload.type!r} is not known to this protoviz "
                             f"(known: {', '.join(list_result_types()) or 'none'})")
    return cls.from_payload(payload)  # type: ignore[attr-defined]


def check_name(name: str, kind: str) -> str:
    """``name`` if it is a safe table/blob/type name (letters, digits, ``._/[]-``, up to 200 chars)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise WorkspaceError(f"{kind} name {name!r} must be 1-200 letters, digits or ._/[]- (starting with a "
                             "letter or digit)")
    return name


def array_to_bytes(array: np.ndarray) -> bytes:
    """``.npy`` bytes of a numeric array (object arrays are refused: blobs are never pickled)."""
    buffer = io.BytesIO()
    try:
        np.save(buffer, np.asarray(array), allow_pickle=False)
    except ValueError as error:
        raise WorkspaceError(f"cannot store an array of dtype {np.asarray(array).dtype}: {error}") from error
    return buffer.getvalue()


def array_from_bytes(data: bytes) -> np.ndarray:
    """The array of :func:`array_to_bytes` (read without pickle)."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise WorkspaceError(f"a stored array is unreadable: {error}") from error


def _plain(value: Any) -> Any:
    """``json.dumps`` default: numpy values and arrays, paths and dataclasses as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return value.as_posix()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def canonical_json(settings: Mapping[str, Any] | Any) -> str:
    """One string per settings: sorted keys, no spaces, tuples as lists, dataclasses as dicts.

    Equal settings give equal strings whatever the key order, so they key stored results. NaN and
    infinities are refused (they compare unequal to themselves).
    """
    try:
        return json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, default=_plain)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"settings cannot key a result: {error}") from error


def dumps(value: Any, what: str) -> str:
    """Storage JSON of ``value`` (NaN and infinities kept, so a round trip is exact)."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True, default=_plain)
    except (TypeError, ValueError) as error:
        raise WorkspaceError(f"{what} cannot be stored as JSON: {error}") from error


def export_clean(value: Any) -> Any:
    """A standard-JSON copy: NaN and infinities become None, tuples lists."""
    if isinstance(value, Mapping):
        return {str(k): export_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [export_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def rows_csv(rows: list[Mapping[str, Any]]) -> str:
    """CSV text of dict rows; the columns are the union of their keys, in first-seen order (lists and
    dicts in a cell are written as JSON)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(export_clean(v), default=_plain) if isinstance(v, (Mapping, list, tuple)) else v
                         for k, v in row.items()})
    return buffer.getvalue()
