"""Reading one prototype-source record of a native checkpoint's ``prototype_sources`` metadata.

Format version 1 wrote ``image_id``, ``box``, ``map_location`` and ``class_index``; version 2 adds the
optional ``rf_box``, ``push_box``, ``distance``, ``distance_kind`` and ``origin`` (see
:class:`~protoviz.models.base.PrototypeSource`). Both read through :func:`source_from_record`, which
checks every value's type and range so a malformed file gives a clear :class:`CheckpointError`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeSource

ORIGINS: tuple[str, ...] = ("push", "push-folder", "projection")
_MAX_TEXT = 4096


def source_from_record(item: Any, index: int, image: np.ndarray | None = None,
                       patch: np.ndarray | None = None) -> PrototypeSource:
    """One JSON record (a dict) -> :class:`PrototypeSource`; ``index`` names the prototype in errors."""
    where = f"prototype source {index}"
    if not isinstance(item, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(item).__name__}")
    image_id = item.get("image_id")
    if not isinstance(image_id, (str, int)) or len(str(image_id)) > _MAX_TEXT:
        raise CheckpointError(f"{where}: image_id must be a string of at most {_MAX_TEXT} characters")
    origin = _text(item.get("origin"), where, "origin")
    if origin is not None and origin not in ORIGINS:
        raise CheckpointError(f"{where}: origin must be one of {ORIGINS}, got {origin!r}")
    distance = item.get("distance")
    if distance is not None and (isinstance(distance, bool) or not isinstance(distance, (int, float))
                                 or not math.isfinite(distance)):
        raise CheckpointError(f"{where}: distance must be a finite number, got {distance!r}")
    class_index = item.get("class_index")
    if class_index is not None and (isinstance(class_index, bool) or not isinstance(class_index, int)):
        raise CheckpointError(f"{where}: class_index must be an integer, got {class_index!r}")
    box = _ints(item.get("box"), 4, where, "box")
    if box is None:
        raise CheckpointError(f"{where}: box is missing")
    location = _ints(item.get("map_location"), 2, where, "map_location")
    return PrototypeSource(
        image_id=str(image_id), box=box, image_thumbnail=image, patch_thumbnail=patch,  # type: ignore[arg-type]
        map_location=location,  # type: ignore[arg-type]
        class_index=class_index, rf_box=_ints(item.get("rf_box"), 4, where, "rf_box"),  # type: ignore[arg-type]
        push_box=_ints(item.get("push_box"), 4, where, "push_box"),  # type: ignore[arg-type]
        distance=None if distance is None else float(distance),
        distance_kind=_text(item.get("distance_kind"), where, "distance_kind"), origin=origin)


def _ints(value: Any, length: int, where: str, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != length
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise CheckpointError(f"{where}: {name} must be a list of {length} integers, got {value!r}"[:300])
    return tuple(value)


def _text(value: Any, where: str, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise CheckpointError(f"{where}: {name} must be a string of at most {_MAX_TEXT} characters")
    return value
