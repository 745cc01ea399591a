"""The tables a global explanation is kept and exported with (workspace payload, Results page).

- ``scores``: one row per characteristic over the explained prototypes: mean and median importance G,
  for how many prototypes it ranks first, and, when noise floors were run, for how many it is above its
  floor. The unit is a difference of the model's similarity (``Δ similarity``).
- ``importance``: one row per (prototype, characteristic) (:func:`protoviz.explain.export.global_rows`).
- ``summary``: each characteristic against its own noise floor (:mod:`protoviz.explain.summary`), when
  floors (``floor:NAME`` or ``identity``) were computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from protoviz.explain.summary import measured, summarise

if TYPE_CHECKING:
    from protoviz.explain.global_ import GlobalExplanation

UNIT = "Δ similarity"


def score_rows(result: GlobalExplanation) -> list[dict[str, Any]]:
    """Per measured characteristic: mean / median G over the explained prototypes, how often it ranks first,
    how often it is above its noise floor (None without floors)."""
    names = measured(result)
    explained = result.explained
    summary = summarise(result)
    has_floor = any(r.floor_source is not None for r in summary)
    rows = []
    for name in names:
        values = result.importance[explained, result.characteristics.index(name)]
        finite = values[np.isfinite(values)]
        first = sum(1 for r in summary if r.characteristic == name and r.rank == 1 and not np.isnan(r.importance))
        above = sum(1 for r in summary if r.characteristic == name and r.above_floor) if has_floor else None
        rows.append({"characteristic": name, "mean_importance": float(finite.mean()) if finite.size else None,
                     "median_importance": float(np.median(finite)) if finite.size else None,
                     "ranked_first": first, "above_noise_floor": above, "prototypes": len(explained), "unit": UNIT})
    return rows


def global_tables(result: GlobalExplanation) -> dict[str, list[dict[str, Any]]]:
    """``scores``, ``importance`` and (with floors) ``summary`` tables of ``result``."""
    from protoviz.explain.export import global_rows

    explained = set(result.explained)
    tables = {"scores": score_rows(result),
              "importance": [row for row in global_rows(result) if row["prototype"] in explained]}
    summary = summarise(result)
    if any(r.floor_source is not None for r in summary):
        tables["summary"] = [r.as_record() for r in summary]
    return tables
