"""Evaluate: dataset-wide scores of one or more models (consistency, stability, accuracy, purity ...),
per-prototype results, figures and downloads. The work is in protoviz.metrics; results stay in the
session under the 'evaluate' namespace (the Prototypes page reads them for its cards)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.progress_bar import BarProgress
from app.state import get_model, session_results
from app.widgets import figure_downloads, model_picker, server_path_input, show_error
from protoviz.data.datasets import ImageDataset, open_dataset
from protoviz.errors import ProtovizError
from protoviz.metrics.config import PARAMETER_HELP, PartMetricConfig
from protoviz.metrics.export import scores_csv, to_csv, to_json
from protoviz.metrics.registry import default_metrics, get_metric, list_metrics, metric_help
from protoviz.metrics.runner import EvaluationConfig, EvaluationResult, evaluate
from protoviz.viz.metrics import (
    best_frequency_histogram,
    deletion_curves_figure,
    dominant_part_bars,
    part_frequency_heatmap,
)

NAMESPACE = "evaluate"
SYNTHETIC = "bundled synthetic set"


def dataset_choice() -> tuple[str | None, str, bool, int | None]:
    """(folder or None for the synthetic set, split, crop to boxes, image limit or None)."""
    source_col, split_col, limit_col = st.columns([2, 1, 1])
    source = source_col.radio("Dataset", [SYNTHETIC, "local folder"], horizontal=True, key="evaluate.source",
                              help="The synthetic set (birds with 8 annotated parts, CUB layout) is generated "
                                   "once into the cache folder. A local folder: CUB-200-2011, Stanford Cars/Dogs "
                                   "or an ImageFolder.")
    folder = None
    if source != SYNTHETIC:
        with source_col:
            folder = server_path_input("Folder", key="evaluate.folder", placeholder="CUB_200_2011")
    split = split_col.selectbox("Split", ["test", "train", "all"], key="evaluate.split")
    limit = limit_col.number_input("Images (0 = all)", min_value=0, value=0, step=50, key="evaluate.limit",
                                   help="Evaluate this many images, evenly spaced over the dataset.")
    crop = st.checkbox("Crop to bounding boxes", value=True, key="evaluate.crop", help=PARAMETER_HELP["crop_to_box"])
    return folder, split, crop, int(limit) or None


def crop_hint(names: list[str]) -> None:
    """Say so when a model records that it was trained on whole images (its metadata has both accuracies)."""
    for name in names:
        meta = get_model(name).model.metadata
        whole, cropped = meta.get("test_accuracy"), meta.get("test_accuracy_cropped_to_box")
        if isinstance(whole, float) and isinstance(cropped, float) and whole > cropped:
            st.caption(f"{name} was trained on whole images (test accuracy {100 * whole:.1f}% whole, "
                       f"{100 * cropped:.1f}% cropped to boxes): consider unticking the crop for it.")


def load_dataset(folder: str | None, split: str, crop: bool) -> ImageDataset:
    """Open the dataset (generating the synthetic set once); kept in the session."""
    datasets = session_results(NAMESPACE).setdefault("datasets", {})
    key = (folder, split, crop)
    if key not in datasets:
        with st.spinner("Opening the dataset ..."):
            if folder is None:
                from protoviz.data.demo import synthetic_dataset

                path = synthetic_dataset()
            else:
                path = Path(folder)
            datasets[key] = open_dataset(path, split=split, crop_to_box=crop)
    return datasets[key]


def parameters(dataset: ImageDataset) -> EvaluationConfig:
    """Metric choice and parameters, with the help text of each."""
    default = list(default_metrics(dataset))
    if not dataset.has_parts:
        needing = ", ".join(m for m in list_metrics() if "parts" in get_metric(m).needs)
        st.info(f"Part metrics ({needing}) are unavailable: {dataset.parts_reason}. "
                "Region stability needs no parts.", icon=":material/info:")
    metrics = st.multiselect("Metrics", list_metrics(), default=default, key="evaluate.metrics",
                             format_func=lambda m: f"{m.replace('_', ' ')} ({get_metric(m).unit})",
                             help="; ".join(f"{k}: {v}" for k, v in metric_help().items()))
    base = PartMetricConfig()
    with st.expander("Parameters (defaults = Huang et al.'s reference)"):
        a, b, c = st.columns(3)
        half = a.number_input("half_size (px at 224)", 0.0, 224.0, base.half_size, 1.0, key="evaluate.half",
                              help=PARAMETER_HELP["half_size"])
        mu = b.number_input("mu", 0.0, 1.0, base.mu, 0.05, key="evaluate.mu", help=PARAMETER_HELP["mu"])
        seed = c.number_input("seed", 0, 2**31 - 1, base.seed, key="evaluate.seed", help=PARAMETER_HELP["seed"])
        std = a.number_input("noise std", 0.0, 2.0, base.noise_std, 0.05, key="evaluate.std",
                             help=PARAMETER_HELP["noise_std"])
        clip = b.number_input("noise clip", 0.0, 5.0, float(base.noise_clip or 0.0), 0.05, key="evaluate.clip",
                              help=PARAMETER_HELP["noise_clip"])
        draws = c.number_input("noise draws", 1, 20, base.noise_draws, key="evaluate.draws",
                               help=PARAMETER_HELP["noise_draws"])
        merge = a.checkbox("merge left/right parts", base.merge_left_right, key="evaluate.merge",
                           help=PARAMETER_HELP["merge_left_right"])
        batch = b.number_input("batch size", 1, 512, 32, key="evaluate.batch",
                               help="Images per forward pass (halved automatically on GPU out-of-memory).")
    parts = replace(base, half_size=float(half), mu=float(mu), seed=int(seed), noise_std=float(std),
                    noise_clip=float(clip) or None, noise_draws=int(draws), merge_left_right=bool(merge))
    return EvaluationConfig(metrics=tuple(metrics) or ("accuracy",), parts=parts, batch_size=int(batch))


def result_key(name: str, sha: str | None, source: tuple[Any, ...], config: EvaluationConfig) -> tuple[Any, ...]:
    """What a result depends on; the last element is the title other pages show."""
    return (name, sha, *source, repr(config), f"{name} · {', '.join(config.metrics)}")


def run_models(names: list[str], dataset: ImageDataset, source: tuple[Any, ...], config: EvaluationConfig,
               ) -> dict[str, EvaluationResult]:
    """Evaluate each model (or reuse this session's result), with a progress bar."""
    store: dict[Any, Any] = session_results(NAMESPACE)
    results: dict[str, EvaluationResult] = {}
    for name in names:
        loaded = get_model(name)
        key = result_key(name, loaded.sha256, source, config)
        if key not in store:
            progress = BarProgress(name)
            store[key] = evaluate(loaded.model, dataset, config, progress, lock=loaded.lock)  # locked per batch
            progress.close()
        results[name] = store[key]
    return results


def stored(names: list[str], source: tuple[Any, ...], config: EvaluationConfig) -> dict[str, EvaluationResult]:
    """Results already computed this session for these models, dataset and parameters."""
    store: dict[Any, Any] = session_results(NAMESPACE)
    found = {}
    for name in names:
        key = result_key(name, get_model(name).sha256, source, config)
        if key in store:
            found[name] = store[key]
    return found


def score_columns(result: EvaluationResult) -> dict[str, float]:
    """Headline scores by column with its unit, e.g. ``{"accuracy (%)": 97.5, "purity (fraction)": 0.8}``."""
    return {f"{k} ({result.units[k]})": v for k, v in result.scores.items()}


def show_results(results: dict[str, EvaluationResult], config: EvaluationConfig) -> None:
    st.subheader("Scores")
    st.dataframe(pd.DataFrame([{"model": n, **score_columns(r), "images": r.provenance.images,
                                "seconds": round(r.provenance.seconds, 3)} for n, r in results.items()]),
                 hide_index=True, key="evaluate.scores")
    first = next(iter(results.values())).provenance
    st.caption(f"half_size {config.parts.half_size:g} at 224 px = {first.notes.get('half_size_pixels')} px at the "
               f"model input · device {first.device} · class matching: {first.notes.get('class_matching')} · "
               "% = share of images or prototypes (0-100); purity is a fraction (0-1); deletion/insertion AUC "
               "are ratios to the clean similarity")
    downloads(results)
    with_parts = {n: r for n, r in results.items() if r.parts is not None}
    if with_parts:
        figure_row(best_frequency_histogram({n: r.parts.dominant_frequency for n, r in with_parts.items()},
                                            config.parts.mu), "best_frequency")
        names = next(iter(with_parts.values())).parts.part_names
        figure_row(dominant_part_bars({n: r.parts.dominant_part_names() for n, r in with_parts.items()}, names),
                   "dominant_parts")
    st.subheader("Per prototype")
    chosen = st.selectbox("Model", list(results), key="evaluate.table_model")
    result = results[chosen]
    st.caption("Click a column header to sort.")
    st.dataframe(pd.DataFrame(result.prototypes), hide_index=True, key="evaluate.prototypes")
    if result.parts is not None:
        labels = [f"#{row['prototype']} {row['classes']}" for row in result.prototypes]
        figure_row(part_frequency_heatmap(result.parts.frequencies, result.parts.part_names, labels,
                                          f"{chosen}: part frequencies f_p[k]"), f"heatmap_{chosen}")
    curves = {n: r.deletion for n, r in results.items() if r.deletion is not None}
    if curves:
        fractions = next(iter(curves.values())).fractions
        figure_row(deletion_curves_figure(fractions, {n: d.deletion.mean(0) for n, d in curves.items()},
                                          {n: d.insertion.mean(0) for n, d in curves.items()}), "deletion")


def figure_row(figure: Any, name: str) -> None:
    st.plotly_chart(figure, key=f"evaluate.fig.{name}")
    figure_downloads(figure, f"evaluate_{name}", key=f"evaluate.dl.{name}")  # PNG at a DPI, SVG, PDF, offline HTML


def downloads(results: dict[str, EvaluationResult]) -> None:
    a, b, c = st.columns(3)
    a.download_button("Per-prototype results (CSV)", to_csv(results), "evaluate_prototypes.csv", "text/csv",
                      key="evaluate.dl.csv", on_click="ignore", icon=":material/table:")
    b.download_button("Scores (CSV)", scores_csv(results), "evaluate_scores.csv", "text/csv",
                      key="evaluate.dl.scores", on_click="ignore", icon=":material/table:")
    c.download_button("Everything with provenance (JSON)", to_json(results), "evaluate.json", "application/json",
                      key="evaluate.dl.json", on_click="ignore", icon=":material/data_object:")


def main() -> None:
    st.title("Evaluate")
    st.caption("How trustworthy are the prototypes? Consistency: does a prototype always land on the same "
               "object part? Stability: does it stay there under small noise? (Huang et al., ICCV 2023), "
               "plus accuracy, PIP-Net purity and deletion/insertion curves.")
    names = model_picker("evaluate.models", multi=True)
    if not names:
        return
    folder, split, crop, limit = dataset_choice()
    try:
        if crop:
            crop_hint(list(names))
        dataset = load_dataset(folder, split, crop)
        st.caption(f"{dataset.kind} · {len(dataset)} images · {len(dataset.class_names)} classes · "
                   f"parts: {', '.join(dataset.part_names) if dataset.part_names else 'none'}")
        config = replace(parameters(dataset), limit=limit)
        source = (folder, split, crop)
        if st.button("Run", type="primary", key="evaluate.run", icon=":material/play_arrow:"):
            results = run_models(list(names), dataset, source, config)
        else:
            results = stored(list(names), source, config)
        if results:
            show_results(results, config)
        else:
            st.info("Choose models, a dataset and parameters, then press Run.", icon=":material/info:")
    except ProtovizError as error:
        show_error(error)


main()
