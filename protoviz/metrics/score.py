"""A typed score: one headline number with its unit and spread, per-prototype rows and provenance.

Units (one convention, carried by every score): shares of images or prototypes — accuracy, balanced
accuracy, consistency, stability, region stability, object overlap — are in percent, ``"%"`` (0-100,
as Huang et al. report consistency and stability). PIP-Net's purity keeps its published form, a
``"fraction"`` in [0, 1]. Deletion / insertion AUCs are ``"ratio"``: areas relative to the prototype's
clean similarity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protoviz.provenance import Provenance, RunKey

PERCENT, FRACTION, RATIO = "%", "fraction", "ratio"
UNITS = (PERCENT, FRACTION, RATIO)


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
        """The join key of the pass that made this score (None before provenance is stamped)."""
        return None if self.provenance is None else self.provenance.key

    def headline(self) -> dict[str, float]:
        """``{column: value}``, then ``{column}_spread`` when there is a spread, then ``extra``."""
        out = {self.column: float(self.value)}
        if self.spread is not None:
            out[f"{self.column}_spread"] = float(self.spread)
        out.update({k: float(v) for k, v in self.extra.items()})
        return out
