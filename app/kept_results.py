"""Results the Evaluate and Why pages kept in the visitor's workspace, for the pages that show them beside
their own (the Prototypes cards and Compare): the run stored under one key, or a model's latest runs.

Those pages keep their results in the workspace, not in the session (a revisit, a refresh or a restart
serves them), so a reader finds them here. Only runs whose stored type is the one asked for are returned;
a run that no longer decodes (written by a newer protoviz, say) is skipped, never shown as an error.
"""

from __future__ import annotations

from typing import Any

from app.store import workspace
from protoviz.errors import ProtovizError
from protoviz.payload import decode
from protoviz.provenance import RunKey

KINDS = {"EvaluationResult": "evaluate", "GlobalExplanation": "why"}
"""The workspace run kind each readable result type is stored under (by class name)."""
LATEST = 3
"""How many of a model's newest runs :func:`kept_for_model` reads."""


def kept_for_key(kind: type, key: RunKey | None) -> list[Any]:
    """The stored result of type ``kind`` under exactly ``key`` (a list of at most one)."""
    if key is None or not key.complete or KINDS.get(kind.__name__) != key.kind:
        return []
    try:
        record = workspace().find_run(key)
        value = None if record is None else decode(record.payload)
    except ProtovizError:
        return []
    return [value] if isinstance(value, kind) else []


def kept_for_model(kind: type, model_sha256: str | None, latest: int = LATEST) -> list[Any]:
    """This model file's newest ``latest`` stored results of type ``kind`` (any dataset), oldest first."""
    run_kind = KINDS.get(kind.__name__)
    if run_kind is None or not model_sha256:
        return []
    found: list[Any] = []
    try:
        store = workspace()
        summaries = store.list_runs(kind=run_kind, model_sha256=model_sha256, limit=latest)
        for summary in summaries:
            try:
                value = decode(store.get_run(summary.id).payload)
            except ProtovizError:
                continue
            if isinstance(value, kind):
                found.append(value)
    except ProtovizError:
        return []
    return found[::-1]
