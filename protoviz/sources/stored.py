"""Prototype sources as a kept result: what a projection or a push-folder import found, stored in the workspace.

:class:`SourceSet` is a workspace result type (``"prototype-sources"``): the dashboard's projection job
returns one, the workspace keeps it as a run (so the same request is served from the store, and the
Results page lists and exports it), and a kept model names the run whose sources it wears
(:mod:`protoviz.kept_loading`). In storage:

- ``data``: how the sources were found (method, dataset, summary lines, details) and one JSON record
  per prototype (:meth:`PrototypeSource.to_dict`, null where none);
- ``tables["sources"]``: one flat row per prototype with a source, for CSV export;
- ``blobs``: ``image/<j>`` and ``patch/<j>``, each thumbnail as ``.npy`` bytes (never pickled).

Reading back checks every record (:func:`~protoviz.models.source_record.source_from_record`) and every
thumbnail's shape and type, so a damaged store gives a clear error, not a wrong card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protoviz.errors import CheckpointError, WorkspaceError
from protoviz.models.base import PrototypeSource
from protoviz.models.source_record import source_from_record
from protoviz.payload import Payload, array_from_bytes, array_to_bytes, result_type

METHODS = ("projection", "push-folder")
MAX_THUMBNAIL_SIDE = 1024
MAX_COORDINATE = 1 << 20


@result_type("prototype-sources")
@dataclass(frozen=True)
class SourceSet:
    """Sources for every prototype of one model (None where none was found).

    method: ``projection`` (nearest training patch) or ``push-folder`` (read from an original push).
    data: the image folder they index, as shown to the user. summary: human-readable lines.
    details: small JSON-able facts (images seen, layout, epoch, agreement counts ...).
    """

    sources: tuple[PrototypeSource | None, ...]
    method: str
    data: str
    summary: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> int:
        return sum(source is not None for source in self.sources)

    def description(self) -> dict[str, Any]:
        """What a kept model records about its attached sources (without the sources themselves)."""
        return {"method": self.method, "data": self.data, "found": self.found, "prototypes": len(self.sources),
                "summary": list(self.summary), **{k: v for k, v in self.details.items() if k not in ("method", "data")}}

    def to_payload(self) -> Payload:
        records = [None if s is None else s.to_dict() for s in self.sources]
        blobs: dict[str, bytes] = {}
        rows = []
        for j, source in enumerate(self.sources):
            if source is None:
                continue
            for kind, picture in (("image", source.image_thumbnail), ("patch", source.patch_thumbnail)):
                if picture is not None:
                    blobs[f"{kind}/{j}"] = array_to_bytes(np.ascontiguousarray(picture, dtype=np.uint8))
            rows.append(_row(j, source))
        data = {"method": self.method, "data": self.data, "summary": list(self.summary),
                "details": dict(self.details), "records": records}
        return Payload(type="prototype-sources", data=data, tables={"sources": rows}, blobs=blobs)

    @classmethod
    def from_payload(cls, payload: Payload) -> SourceSet:
        data = payload.data
        records = data.get("records")
        method = data.get("method")
        if not isinstance(records, list) or method not in METHODS:
            raise WorkspaceError("stored prototype sources are damaged (no records, or an unknown method)")
        sources: list[PrototypeSource | None] = []
        try:
            for j, record in enumerate(records):
                if record is None:
                    sources.append(None)
                    continue
                image = _picture(payload.blobs.get(f"image/{j}"), j)
                patch = _picture(payload.blobs.get(f"patch/{j}"), j)
                source = source_from_record(record, j, image, patch)
                _check_coordinates(source, j)
                sources.append(source)
        except CheckpointError as error:
            raise WorkspaceError(f"stored prototype sources are damaged: {error}") from error
        summary = data.get("summary") or []
        details = data.get("details") or {}
        return cls(tuple(sources), str(method), str(data.get("data", "")),
                   tuple(str(line) for line in summary), dict(details) if isinstance(details, dict) else {})


def source_set(sources: Sequence[PrototypeSource | None], method: str, data: str, summary: Sequence[str] = (),
               **details: Any) -> SourceSet:
    """A :class:`SourceSet` (``method`` checked)."""
    if method not in METHODS:
        raise WorkspaceError(f"unknown way of finding sources {method!r}; known: {', '.join(METHODS)}")
    return SourceSet(tuple(sources), method, data, tuple(summary), details)


def _row(index: int, source: PrototypeSource) -> dict[str, Any]:
    row: dict[str, Any] = {"prototype": index, "image": source.image_id, "class_index": source.class_index}
    if source.map_location is not None:
        row["map_row"], row["map_col"] = source.map_location
    for name in ("box", "rf_box", "push_box"):
        value = getattr(source, name)
        if value is not None:
            row.update({f"{name}_{part}": v for part, v in zip(("y0", "y1", "x0", "x1"), value, strict=True)})
    row.update({"distance": source.distance, "distance_kind": source.distance_kind, "origin": source.origin})
    return row


def _picture(blob: bytes | None, index: int) -> np.ndarray | None:
    if blob is None:
        return None
    try:
        array = array_from_bytes(blob)
    except WorkspaceError as error:
        raise CheckpointError(f"prototype source {index}: unreadable thumbnail ({error})") from error
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or min(array.shape[:2]) < 1 \
            or max(array.shape[:2]) > MAX_THUMBNAIL_SIDE:
        raise CheckpointError(f"prototype source {index}: thumbnails must be (h, w, 3) uint8 of at most "
                              f"{MAX_THUMBNAIL_SIDE} pixels a side, got {array.shape} {array.dtype}")
    return array


def _check_coordinates(source: PrototypeSource, index: int) -> None:
    for name in ("box", "rf_box", "push_box", "map_location"):
        values = getattr(source, name) or ()
        if any(abs(v) > MAX_COORDINATE for v in values):
            raise CheckpointError(f"prototype source {index}: {name} values beyond {MAX_COORDINATE} pixels")
