"""Tables as files: the one CSV writer of protoviz, and provenance in a sidecar JSON.

Every CSV protoviz writes is plain: a header row, then one row per record, nothing before the header,
so ``pandas.read_csv(path)`` reads it as it is. How a table was made (model, dataset, settings,
versions) goes into a sidecar ``<stem>.provenance.json`` next to it, never into the CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protoviz.errors import ConfigError

SIDECAR_SUFFIX = ".provenance.json"


def _cell(value: Any) -> Any:
    """A CSV cell: numbers as numbers, NaN / None as empty, lists and dicts as JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return value


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text of dict rows; the columns are the union of their keys, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [str(k) for k in row if str(k) not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({str(k): _cell(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def sidecar_path(path: str | Path) -> Path:
    """``results/x.csv`` -> ``results/x.provenance.json``."""
    target = Path(path)
    return target.with_name(target.stem + SIDECAR_SUFFIX)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any] | None = None
              ) -> list[Path]:
    """Write ``rows`` as CSV at ``path`` and, if given, ``provenance`` as its sidecar JSON; returns the paths."""
    target = Path(path)
    if target.suffix.lower() != ".csv":
        raise ConfigError(f"a table file must end in .csv, got {target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(csv_text(rows), encoding="utf-8")
    written = [target]
    if provenance is not None:
        side = sidecar_path(target)
        side.write_text(json.dumps({"table": target.name, **provenance}, indent=2, default=str) + "\n",
                        encoding="utf-8")
        written.append(side)
    return written
