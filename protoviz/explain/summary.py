"""Per-prototype summary of every characteristic, each against its own noise floor.

A global run with ``ExplainConfig(floors=True)`` also computes ``floor:NAME`` for every characteristic:
the same path at its neutral parameters (hue shift 0 through the HSV round trip, the texture filter
at h = 0.01 through its Lab round trip, each published codec's JPEG round trip of the unmodified
image, ...). With ``noise_floor=True`` it computes the shared ``identity`` floor. The summary sets each
characteristic's importance next to its floor: ``margin`` = G - |floor G| and ``above_floor`` when the
margin is positive, so a reader sees which values are more than what the path alone changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protoviz.explain.characteristics import FLOOR_PREFIX
from protoviz.explain.global_ import GlobalExplanation
from protoviz.explain.params import IDENTITY


@dataclass(frozen=True)
class CharacteristicSummary:
    """One prototype and one characteristic: importance G, its noise floor (|G| of the floor column,
    NaN when none was computed), the margin G - floor, and the rank of G among the prototype's
    characteristics (1 = most important; floors and identity excluded)."""

    prototype: int
    characteristic: str
    importance: float
    floor: float
    floor_source: str | None
    margin: float
    above_floor: bool | None
    rank: int

    def as_record(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if math.isnan(value) else float(value)
        return {"prototype": self.prototype, "characteristic": self.characteristic,
                "importance": clean(self.importance), "noise_floor": clean(self.floor),
                "noise_floor_source": self.floor_source, "margin": clean(self.margin),
                "above_floor": self.above_floor, "rank": self.rank}


def measured(result: GlobalExplanation) -> list[str]:
    """The characteristics of a result that are not noise floors."""
    return [n for n in result.characteristics if not n.startswith(FLOOR_PREFIX) and n != IDENTITY]


def floor_column(result: GlobalExplanation, name: str) -> tuple[np.ndarray, str | None]:
    """(P,) |G| of ``name``'s own floor, else of the shared identity floor, else NaN; and which it was."""
    for source in (FLOOR_PREFIX + name, IDENTITY):
        if source in result.characteristics:
            return np.abs(result.importance[:, result.characteristics.index(source)]), source
    return np.full(result.num_prototypes, np.nan), None


def summarise(result: GlobalExplanation) -> list[CharacteristicSummary]:
    """One :class:`CharacteristicSummary` per (prototype, measured characteristic), prototype-major."""
    names = measured(result)
    columns = [result.characteristics.index(n) for n in names]
    values = result.importance[:, columns]  # (P, M)
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(values.shape[0])[:, None], order] = np.arange(1, values.shape[1] + 1)[None, :]
    floors = [floor_column(result, n) for n in names]
    rows = []
    for j in result.explained:  # a region run explains only the prototypes it named
        for m, name in enumerate(names):
            floor, source = floors[m][0][j], floors[m][1]
            value = float(values[j, m])
            margin = value - float(floor)
            above = None if math.isnan(margin) else bool(margin > 0)
            rows.append(CharacteristicSummary(j, name, value, float(floor), source, margin, above, int(ranks[j, m])))
    return rows


def prototype_summary(result: GlobalExplanation, prototype: int) -> dict[str, Any]:
    """One prototype: its characteristics from most to least important with their floors, and the
    most important one that is above its floor (None if none is)."""
    rows = [r for r in summarise(result) if r.prototype == prototype]
    rows.sort(key=lambda r: r.rank)
    top = next((r.characteristic for r in rows if r.above_floor), None)
    return {"prototype": prototype, "top_above_floor": top, "characteristics": [r.as_record() for r in rows]}


def summarise_vector(values: Mapping[str, float], prototype: int) -> list[CharacteristicSummary]:
    """The summary of one prototype's values by name (a local Delta or a global G, floors included), from
    the most to the least important measured characteristic, each against its own floor (``floor:NAME``),
    else the shared ``identity`` floor, else none (NaN): the same rules as :func:`summarise`."""
    names = [n for n in values if not n.startswith(FLOOR_PREFIX) and n != IDENTITY]
    order = sorted(range(len(names)), key=lambda m: -np.nan_to_num(float(values[names[m]]), nan=-np.inf))
    rows = []
    for rank, m in enumerate(order, start=1):
        name = names[m]
        source = next((s for s in (FLOOR_PREFIX + name, IDENTITY) if s in values), None)
        floor = abs(float(values[source])) if source is not None else math.nan
        value = float(values[name])
        margin = value - floor
        rows.append(CharacteristicSummary(prototype, name, value, floor, source, margin,
                                          None if math.isnan(margin) else bool(margin > 0), rank))
    return rows
