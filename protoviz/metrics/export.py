"""Evaluation results as JSON (scores, per-prototype rows, provenance) and CSV (one row per prototype)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from protoviz.metrics.runner import EvaluationResult
from protoviz.tables import csv_text


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy -> Python, NaN/inf -> None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def result_dict(result: EvaluationResult, name: str | None = None) -> dict[str, Any]:
    """Everything a result file holds: model name, scores, provenance, per-prototype rows, curves."""
    data: dict[str, Any] = {"model_name": name, "scores": result.scores, "provenance": result.provenance,
                            "prototypes": result.prototypes}
    if result.parts is not None:
        data["parts"] = {"names": list(result.parts.part_names), "frequencies": result.parts.frequencies,
                         "stability_per_draw": result.parts.stability_per_draw}
    if result.deletion is not None:
        d = result.deletion
        data["deletion_curves"] = {"fractions": d.fractions, "deletion_mean": d.deletion.mean(axis=0),
                                   "insertion_mean": d.insertion.mean(axis=0), "pairs": len(d.images)}
    return _clean(data)


def to_json(results: dict[str, EvaluationResult]) -> str:
    """Results of one or more models (by name) as one JSON document."""
    return json.dumps({"results": [result_dict(r, name) for name, r in results.items()]}, indent=2) + "\n"


def to_csv(results: dict[str, EvaluationResult]) -> str:
    """One row per (model, prototype), columns the union of the per-prototype fields."""
    return csv_text([{"model": name, **row} for name, r in results.items() for row in r.prototypes])


def scores_csv(results: dict[str, EvaluationResult]) -> str:
    """One row per model with its headline scores."""
    return csv_text([{"model": name, **r.scores} for name, r in results.items()])
