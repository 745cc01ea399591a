"""Session helpers shared by the Prototypes and Compare pages: the probe dataset, each model's pass
over it (top-k patches, profiles, accuracy), and the scores other work left in the session.

Results live in ``session_results("compare")``: ``datasets``, ``runs``, ``evaluations``,
``characteristics``; the Why and Evaluate pages' namespaces are read, never written. Scores join a
model's row only when their :class:`~protoviz.provenance.RunKey` is the one this page would have made:
same checkpoint, same dataset fingerprint and split, same images and settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from app.cache import LoadedModel
from app.progress_bar import BarProgress
from app.state import session_results
from app.widgets import server_path_input
from protoviz.compare.summary import CompareConfig, ModelRun, open_probe_dataset, probe_indices, scan_dataset
from protoviz.provenance import DatasetIdentity, RunKey, dataset_identity, selection_digest

NAMESPACE = "compare"
SYNTHETIC = "bundled synthetic test set"
MAX_RUNS = 12  # passes kept per session (each holds crops, latents and profiles on the CPU)
PART_METRICS = ("consistency", "stability")


def dataset_widget(prefix: str) -> tuple[str | None, str, int | None]:
    """(folder or None for the synthetic set, split, max images or None) chosen on the page."""
    source_col, split_col, size_col = st.columns([2, 1, 1])
    source = source_col.radio("Dataset", [SYNTHETIC, "local folder"], horizontal=True, key=f"{prefix}.source")
    folder = None
    if source != SYNTHETIC:
        with source_col:
            folder = server_path_input("Folder (CUB-200-2011 layout, Stanford Cars/Dogs or ImageFolder)",
                                       key=f"{prefix}.folder")
    split = split_col.selectbox("Split", ["test", "train", "all"], key=f"{prefix}.split")
    limit = size_col.number_input("Images (0 = all)", min_value=0, value=200, step=50, key=f"{prefix}.limit",
                                  help="A seeded random subset keeps quick runs quick; the same for every model.")
    return folder, split, int(limit) or None


def open_dataset_cached(folder: str | None, split: str) -> Any:
    """Open (and for the synthetic set, generate once) the dataset; kept in the session."""
    datasets = session_results(NAMESPACE).setdefault("datasets", {})
    key = (folder, split)
    if key not in datasets:
        with st.spinner("Opening the dataset (the synthetic set is generated once, ~10 s) ..."):
            datasets[key] = open_probe_dataset(folder, split)
    return datasets[key]


def identity(dataset: Any) -> DatasetIdentity:
    """The dataset's fingerprint and split, computed once per opened dataset in this session."""
    known = session_results(NAMESPACE).setdefault("identities", {})
    if id(dataset) not in known:
        known[id(dataset)] = (dataset, dataset_identity(dataset))  # the dataset kept alive with its id
    return known[id(dataset)][1]


def run_key(loaded: LoadedModel, folder: str | None, split: str, config: CompareConfig) -> tuple[Any, ...]:
    """What a pass depends on: the model file, the images, and the pass parameters."""
    return (loaded.name, loaded.sha256, folder, split, config.max_images, config.seed, config.topk,
            config.profile, config.duplicate_correlation, config.duplicate_cosine)


def stored_run(loaded: LoadedModel, folder: str | None, split: str, config: CompareConfig) -> ModelRun | None:
    return session_results(NAMESPACE).get("runs", {}).get(run_key(loaded, folder, split, config))


def compute_run(loaded: LoadedModel, dataset: Any, folder: str | None, split: str, config: CompareConfig) -> ModelRun:
    """The model's pass over the dataset, computed now with a progress bar (the model's lock is taken
    per batch, so other sessions using the model are not held up for the whole pass)."""
    runs = session_results(NAMESPACE).setdefault("runs", {})
    key = run_key(loaded, folder, split, config)
    if key in runs:
        return runs[key]
    indices = probe_indices(len(dataset), config.max_images, config.seed)
    progress = BarProgress(loaded.name)
    run = scan_dataset(loaded.name, loaded.model, dataset, indices, config, progress, lock=loaded.lock)
    progress.close()
    if run is None:  # only a torchrun shard returns None
        raise RuntimeError("compare: a single-process pass returned no run")
    runs[key] = run
    while len(runs) > MAX_RUNS:  # forget the oldest passes first
        runs.pop(next(iter(runs)))
    return run


# ----- consistency / stability (protoviz.metrics) and characteristics (protoviz.explain) -------------
def _part_config(config: CompareConfig) -> Any:
    from protoviz.metrics.runner import EvaluationConfig

    return EvaluationConfig(metrics=PART_METRICS, batch_size=config.batch_size)


def part_scores_key(loaded: LoadedModel, dataset: Any, config: CompareConfig) -> RunKey:
    """The key of consistency/stability with the default parameters over this page's probe images: the
    only scores that may join this model's row."""
    indices = probe_indices(len(dataset), config.max_images, config.seed)
    ident = identity(dataset)
    return RunKey.of("evaluate", loaded.sha256, ident, _part_config(config).settings(indices))


def compute_part_scores(loaded: LoadedModel, dataset: Any, config: CompareConfig) -> Any:
    """Huang et al.'s consistency and stability over the same images as the pass (needs part annotations)."""
    from protoviz.metrics.runner import evaluate

    dataset.require_parts("consistency and stability")
    store = session_results(NAMESPACE).setdefault("evaluations", {})
    key = part_scores_key(loaded, dataset, config)
    if key not in store:
        indices = probe_indices(len(dataset), config.max_images, config.seed)
        progress = BarProgress(f"{loaded.name}: consistency and stability")
        store[key] = evaluate(loaded.model, dataset, _part_config(config), progress, lock=loaded.lock,
                              indices=indices)
        progress.close()
    return store[key]


def characteristics_key(loaded: LoadedModel, dataset: Any, limit: int | None) -> RunKey:
    """The key of the default global characteristics over the first ``limit`` images (see
    :func:`compute_characteristics`)."""
    from protoviz.explain.params import ExplainConfig

    total = len(dataset) if limit is None else min(len(dataset), limit)
    ident = identity(dataset)
    settings = {"explain": ExplainConfig(), "images": selection_digest(range(total)), "image_count": total}
    return RunKey.of("why", loaded.sha256, ident, settings)


def compute_characteristics(loaded: LoadedModel, dataset: Any, limit: int | None) -> Any:
    """Global colour/shape/texture/contrast/saturation importance of every prototype (Nauta et al.)."""
    from protoviz.explain.global_ import explain_dataset

    store = session_results(NAMESPACE).setdefault("characteristics", {})
    key = characteristics_key(loaded, dataset, limit)
    if key not in store:
        progress = BarProgress(f"{loaded.name}: characteristics")
        store[key] = explain_dataset(loaded.model, dataset, limit=limit, progress=progress, lock=loaded.lock,
                                     provenance={"checkpoint_sha256": loaded.sha256, "model": loaded.name})
        progress.close()
    return store[key]


# ----- finding results by key ----------------------------------------------------------------------------
def result_key(value: Any) -> RunKey | None:
    """The key of a stored result: its pass provenance (``provenance`` or ``run``), or None."""
    for name in ("provenance", "run"):
        provenance = getattr(value, name, None)
        key = getattr(provenance, "key", None)
        if isinstance(key, RunKey):
            return key
    return None


def session_found(kind: type) -> list[Any]:
    """Every result of type ``kind`` in the session (this page's, then the Why and Evaluate pages'), oldest
    first, one dict level deep."""
    found: list[Any] = []
    for namespace in (NAMESPACE, "why", "evaluate"):
        for value in session_results(namespace).values():
            items = value.values() if isinstance(value, dict) else [value]
            found += [item for item in items if isinstance(item, kind)]
    return found


def keyed(kind: type, key: RunKey) -> Any | None:
    """The latest result of type ``kind`` whose key equals ``key``, or None."""
    matches = [item for item in session_found(kind) if key.complete and result_key(item) == key]
    return matches[-1] if matches else None


def for_model(kind: type, loaded: LoadedModel) -> Any | None:
    """The latest result of type ``kind`` made with this model file (any dataset), or None."""
    matches = [item for item in session_found(kind) if (k := result_key(item)) is not None
               and loaded.sha256 is not None and k.model_sha256 == loaded.sha256
               and getattr(item, "num_prototypes", loaded.model.num_prototypes) == loaded.model.num_prototypes]
    return matches[-1] if matches else None


def model_scores(loaded: LoadedModel, key: RunKey) -> dict[str, float]:
    """Headline scores (besides accuracy) of this model computed this session with exactly ``key``,
    by column with its unit, e.g. ``{"consistency (%)": 62.5}``; empty when there are none."""
    from protoviz.metrics.runner import EvaluationResult

    result = keyed(EvaluationResult, key)
    if result is None:
        return {}
    units = result.units
    return {f"{column} ({units[column]})": float(value) for column, value in result.scores.items()
            if not column.endswith("accuracy")}


@dataclass(frozen=True)
class CardScores:
    """What a prototype card shows: the model's consistency/stability (value, unit), the prototype's own
    facts, and where they were computed (``origin``)."""

    headline: dict[str, tuple[float, str]]
    facts: dict[str, Any]
    origin: str


def prototype_scores(loaded: LoadedModel, index: int, key: RunKey | None) -> CardScores | None:
    """One prototype's scores: from the result made with exactly ``key`` (this page's images) if there is
    one, else from this model's latest result on any images, said so in ``origin``; or None."""
    from protoviz.metrics.runner import EvaluationResult

    result, origin = latest(EvaluationResult, loaded, key)
    if result is None:
        return None
    facts = {"dominant part": result.prototype_part(index) or "-", **result.prototype_scores(index)}
    headline = {c: (v, result.units[c]) for c, v in result.scores.items() if c in PART_METRICS}
    return CardScores(headline, facts, origin)


def latest(kind: type, loaded: LoadedModel, key: RunKey | None) -> tuple[Any | None, str]:
    """The result of type ``kind`` with exactly ``key``, else this model's latest on other images, with
    a caption saying which."""
    result = keyed(kind, key) if key is not None else None
    if result is not None:
        return result, f"these images ({source_caption(result)})"
    result = for_model(kind, loaded)
    return result, "" if result is None else f"other images: {source_caption(result)}"


def source_caption(result: Any) -> str:
    """Where a result was computed, e.g. ``'test split of /data/CUB, 200 images'``."""
    provenance = getattr(result, "provenance", None) or getattr(result, "run", None)
    dataset = getattr(provenance, "dataset", None)
    if dataset is None:
        return "unknown images"
    root = dataset.description.get("root", "an image list")
    return f"{dataset.split or '?'} split of {root}, {getattr(provenance, 'images', '?')} images"
