"""A typed score: one headline number with its unit and spread, per-prototype rows and provenance.

Units (one convention, carried by every score): shares of images or prototypes — accuracy, balanced
accuracy, consistency, stability, region stability, object overlap — are in percent, ``"%"`` (0-100,
as Huang et al. report consistency and stability). PIP-Net's purity keeps its published form, a
``"fraction"`` in [0, 1]. Deletion / insertion AUCs are ``"ratio"``: areas relative to the prototype's
clean similarity.

A Score is stored in the workspace as a typed payload (``@result_type("score")``): its headline numbers
in a ``scores`` table (one row per column with its unit), its per-prototype rows in a ``prototypes``
table, its details' arrays as blobs (:mod:`protoviz.metrics.details`) and its provenance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from protoviz.metrics.details import decode_details, encode_details
from protoviz.payload import Payload, result_type
from protoviz.provenance import Provenance, RunKey

PERCENT, FRACTION, RATIO = "%", "fraction", "ratio"
UNITS = (PERCENT, FRACTION, RATIO)


@result_type("score")
@dataclass(frozen=True)
class Score:
    """One metric's result.

    metric: the registered metric's name. column: the headline's name in tables and files (the metric's
    name unless it says otherwise, e.g. ``deletion_auc``). value: the headline number in ``unit``.
    spread: standard deviation over noise draws (None where there is none). extra: further headline
    numbers in the same unit (e.g. ``balanced_accuracy``). rows: one mapping per prototype (column ->
    value), in prototype order. details: the metric's full result (e.g. ``PartScores``), for figures.
    provenance: the pass that made it (None until stamped).
    """

    metric: str
    value: float
    unit: str
    column: str = ""
    spread: float | None = None
    extra: Mapping[str, float] = field(default_factory=dict)
    rows: tuple[Mapping[str, Any], ...] = ()
    details: Any = None
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"score {self.metric}: unit must be one of {UNITS}, got {self.unit!r}")
        if not self.column:
            object.__setattr__(self, "column", self.metric)

    @property
    def key(self) -> RunKey | None:
        """The key of the pass that made this score (None before provenance is stamped)."""
        return None if self.provenance is None else self.provenance.key

    def headline(self) -> dict[str, float]:
        """``{column: value}``, then ``{column}_spread`` when there is a spread, then ``extra``."""
        out = {self.column: float(self.value)}
        if self.spread is not None:
            out[f"{self.column}_spread"] = float(self.spread)
        out.update({k: float(v) for k, v in self.extra.items()})
        return out

    def table(self) -> list[dict[str, Any]]:
        """The headline as table rows: ``{"metric", "score", "value", "unit"}`` per column (spread and extra too)."""
        return [{"metric": self.metric, "score": column, "value": value, "unit": self.unit}
                for column, value in self.headline().items()]

    def record(self, prefix: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        """(JSON record without the rows, blobs of the details named under ``prefix``)."""
        details, blobs = encode_details(self.details, prefix)
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        return {"metric": self.metric, "value": float(self.value), "unit": self.unit, "column": self.column,
                "spread": None if self.spread is None else float(self.spread),
                "extra": {k: float(v) for k, v in self.extra.items()}, "row_columns": columns,
                "details": details}, blobs

    @classmethod
    def from_record(cls, record: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], blobs: Mapping[str, bytes],
                    prefix: str, provenance: Provenance | None) -> Score:
        """The score :meth:`record` wrote; ``rows``: per-prototype rows holding its ``row_columns``."""
        columns = list(record.get("row_columns", []))
        own = tuple({k: row[k] for k in columns if k in row} for row in rows) if columns else ()
        spread = record.get("spread")
        return cls(metric=str(record["metric"]), value=float(record["value"]), unit=str(record["unit"]),
                   column=str(record.get("column", "")), spread=None if spread is None else float(spread),
                   extra={k: float(v) for k, v in dict(record.get("extra", {})).items()}, rows=own,
                   details=decode_details(record.get("details"), blobs, prefix), provenance=provenance)

    def to_payload(self) -> Payload:
        data, blobs = self.record("details")
        return Payload(data=data, tables={"scores": self.table(), "prototypes": [dict(r) for r in self.rows]},
                       blobs=blobs, provenance={} if self.provenance is None else self.provenance.to_dict())

    @classmethod
    def from_payload(cls, payload: Payload) -> Score:
        _load_metrics()
        provenance = Provenance.from_dict(payload.provenance) if payload.provenance else None
        return cls.from_record(payload.data, payload.tables.get("prototypes", []), payload.blobs, "details", provenance)


def _load_metrics() -> None:
    """Register the built-in metrics (and so their details types) before decoding stored details."""
    from protoviz.metrics.registry import list_metrics

    list_metrics()
