"""Session helpers shared by the Prototypes and Compare pages: the probe dataset, each model's pass
over it (top-k patches, profiles, accuracy), and the per-prototype scores other work left in the session.

Results live in ``session_results("compare")``: ``datasets``, ``runs``, ``part_scores``,
``characteristics``; the Why and Evaluate pages' namespaces are read, never written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from app.cache import LoadedModel
from app.state import session_results
from app.widgets import server_path_input
from protoviz.compare.summary import CompareConfig, ModelRun, open_probe_dataset, probe_indices, scan_dataset

NAMESPACE = "compare"
SYNTHETIC = "bundled synthetic test set"
MAX_RUNS = 12  # passes kept per session (each holds crops, latents and profiles on the CPU)


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


def run_key(loaded: LoadedModel, folder: str | None, split: str, config: CompareConfig) -> tuple[Any, ...]:
    """What a pass depends on: the model file, the images, and the pass parameters."""
    return (loaded.name, loaded.sha256, folder, split, config.max_images, config.seed, config.topk,
            config.profile, config.duplicate_correlation, config.duplicate_cosine)


def stored_run(loaded: LoadedModel, folder: str | None, split: str, config: CompareConfig) -> ModelRun | None:
    return session_results(NAMESPACE).get("runs", {}).get(run_key(loaded, folder, split, config))


def compute_run(loaded: LoadedModel, dataset: Any, folder: str | None, split: str, config: CompareConfig) -> ModelRun:
    """The model's pass over the dataset, computed now with a progress bar (under the model's lock)."""
    runs = session_results(NAMESPACE).setdefault("runs", {})
    key = run_key(loaded, folder, split, config)
    if key in runs:
        return runs[key]
    indices = probe_indices(len(dataset), config.max_images, config.seed)
    bar = st.progress(0.0, text=f"{loaded.name}: scanning {len(indices)} images ...")

    def progress(done: int, total: int | None) -> None:
        bar.progress(min(1.0, done / max(1, total or done)), text=f"{loaded.name}: {done}/{total} images")

    with loaded.lock:
        run = scan_dataset(loaded.name, loaded.model, dataset, indices, config, progress)
    bar.empty()
    runs[key] = run
    while len(runs) > MAX_RUNS:  # forget the oldest passes first
        runs.pop(next(iter(runs)))
    return run


# ----- consistency / stability (protoviz.metrics) and characteristics (protoviz.explain) -------------
def compute_part_scores(loaded: LoadedModel, dataset: Any, folder: str | None, split: str,
                        config: CompareConfig) -> Any:
    """Huang et al.'s consistency and stability over the same images as the pass (needs part annotations)."""
    from protoviz.data.datasets import iterate_batches
    from protoviz.metrics.consistency import class_mapping, part_scores

    dataset.require_parts("consistency and stability")
    store = session_results(NAMESPACE).setdefault("part_scores", {})
    key = run_key(loaded, folder, split, config)
    if key not in store:
        indices = probe_indices(len(dataset), config.max_images, config.seed)
        label_map, _ = class_mapping(loaded.model.class_names, dataset.class_names)
        bar = st.progress(0.0, text=f"{loaded.name}: consistency and stability ...")
        done = [0]

        def progress(count: int) -> None:
            done[0] += count
            bar.progress(min(1.0, done[0] / len(indices)), text=f"{loaded.name}: {done[0]}/{len(indices)} images")

        with loaded.lock:
            batches = iterate_batches(dataset, loaded.model.input_spec, config.batch_size, indices=indices)
            store[key] = part_scores(loaded.model, batches, dataset.part_names, label_map=label_map,
                                     progress=progress)
        bar.empty()
    return store[key]


def compute_characteristics(loaded: LoadedModel, dataset: Any, limit: int | None) -> Any:
    """Global colour/shape/texture/contrast/saturation importance of every prototype (Nauta et al.)."""
    from protoviz.explain.global_ import explain_dataset

    store = session_results(NAMESPACE).setdefault("characteristics", {})
    key = (loaded.name, loaded.sha256, str(getattr(dataset, "root", "")), getattr(dataset, "split", ""), limit)
    if key not in store:
        bar = st.progress(0.0, text=f"{loaded.name}: characteristics ...")
        with loaded.lock:
            store[key] = explain_dataset(
                loaded.model, dataset, limit=limit,
                progress=lambda done, total: bar.progress(min(1.0, done / max(1, total)),
                                                          text=f"{loaded.name}: {done}/{total} images"),
                provenance={"checkpoint_sha256": loaded.sha256, "model": loaded.name})
        bar.empty()
    return store[key]


def recorded_sha256(value: Any) -> str | None:
    """The checkpoint hash a result recorded: ``model_sha256``, or in its provenance (flat or under 'model')."""
    direct = getattr(value, "model_sha256", None)
    if direct:
        return str(direct)
    provenance = getattr(value, "provenance", None)
    if not isinstance(provenance, dict):
        return None
    model = provenance.get("model")
    nested = model.get("checkpoint_sha256") if isinstance(model, dict) else None
    return provenance.get("checkpoint_sha256") or provenance.get("sha256") or nested


def _matches(value: Any, loaded: LoadedModel, key: Any) -> bool:
    """Whether a stored result belongs to this model: by its recorded hash, else by the model's name in its key."""
    recorded = recorded_sha256(value)
    if recorded:
        return recorded == loaded.sha256
    parts = key if isinstance(key, tuple) else (key,)
    return loaded.name in parts or (loaded.sha256 is not None and loaded.sha256 in parts)


def session_scores(loaded: LoadedModel, kind: type) -> list[Any]:
    """Every result of type ``kind`` (e.g. PartScores, GlobalExplanation) for this model in the session:
    this page's own, then the Why and Evaluate pages' (one dict level deep)."""
    found: list[Any] = []
    for namespace in (NAMESPACE, "why", "evaluate"):
        for key, value in session_results(namespace).items():
            items = value.items() if isinstance(value, dict) else [(key, value)]
            for inner_key, item in items:
                full_key = (key, *inner_key) if isinstance(inner_key, tuple) else (key, inner_key)
                if isinstance(item, kind) and _matches(item, loaded, full_key) and \
                        getattr(item, "num_prototypes", None) in (None, loaded.model.num_prototypes):
                    found.append(item)
    return found


def prototype_part_facts(scores: Any, index: int) -> dict[str, Any]:
    """One prototype's row of a PartScores: dominant part and frequency, consistent, stable fraction."""
    stable = None if scores.stable_fraction is None else float(scores.stable_fraction[index])
    return {"dominant part": scores.dominant_part_names()[index],
            "dominant part frequency": float(scores.dominant_frequency[index]),
            "consistent": bool(scores.consistent[index]),
            "stable fraction": None if stable is None or np.isnan(stable) else stable,
            "images": int(scores.n_images[index])}


def model_scores(loaded: LoadedModel) -> dict[str, float]:
    """Headline scores of this model computed this session: the Evaluate page's (consistency, stability,
    purity ...), else consistency/stability computed here."""
    from protoviz.metrics.consistency import PartScores
    from protoviz.metrics.runner import EvaluationResult

    evaluations = session_scores(loaded, EvaluationResult)
    if evaluations:
        return {k: float(v) for k, v in evaluations[-1].scores.items() if isinstance(v, (int, float))}
    parts = session_scores(loaded, PartScores)
    if parts:
        stability = parts[-1].stability
        return {"consistency": parts[-1].consistency, **({} if stability is None else {"stability": stability})}
    return {}


def prototype_scores(loaded: LoadedModel, index: int) -> tuple[dict[str, Any], str] | None:
    """One prototype's scores computed this session and where they came from, or None."""
    from protoviz.metrics.consistency import PartScores
    from protoviz.metrics.runner import EvaluationResult

    evaluations = session_scores(loaded, EvaluationResult)
    if evaluations:
        result = evaluations[-1]
        return ({"dominant part": result.prototype_part(index) or "-", **result.prototype_scores(index)},
                "Evaluate page")
    parts = session_scores(loaded, PartScores)
    if parts:
        return prototype_part_facts(parts[-1], index), "computed here"
    return None
