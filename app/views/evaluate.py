"""Evaluate: dataset-wide scores of one or more models (consistency, stability, accuracy, purity, pointing
game ...), per-prototype results, figures and downloads. The work is in protoviz.metrics.

Each (model, dataset, data path, parameters) is one background job (:func:`app.jobs.job_result`):
progress with rate and time left and a Stop button while it runs, its result kept in the visitor's
workspace under the key :func:`~protoviz.metrics.runner.evaluation_key` makes, so it appears again when
the user comes back or refreshes, and the same request is answered from the store. The data path is
"as published" (EvalProtoPNet's JPEG crops and int() keypoints) or "clean" (in memory); both can be
shown side by side with their difference.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pandas as pd
import streamlit as st

from app.datasets import PageDataset, page_dataset
from app.jobs import earlier_runs, job_result
from app.state import get_model
from app.store import job_manager
from app.widgets import figure_downloads, model_picker, plain, server_path_input, show_error
from protoviz.data.published import WHY_THEY_DIFFER, paper_path
from protoviz.errors import ProtovizError
from protoviz.metrics.config import PARAMETER_HELP, PartMetricConfig
from protoviz.metrics.export import scores_csv, to_csv, to_json
from protoviz.metrics.registry import default_metrics, get_metric, list_metrics, metric_help
from protoviz.metrics.runner import KIND, EvaluationConfig, EvaluationResult, evaluate, evaluation_key
from protoviz.payload import decode
from protoviz.viz.metrics import (
    best_frequency_histogram,
    deletion_curves_figure,
    dominant_part_bars,
    part_frequency_heatmap,
)

SYNTHETIC = "bundled synthetic set"
PATHS = ("published", "clean")
PATH_LABELS = {"published": "as published (EvalProtoPNet)", "clean": "clean"}
PATH_HELP = ("As published: every crop is written as JPEG (quality 95, as cv2.imwrite) and read back, and keypoints "
             "are truncated with int(), as EvalProtoPNet's preprocessing does: this reproduces the paper's numbers. "
             "Clean: crops stay in memory and keypoints keep their decimals: the better-founded numbers. "
             "Default: as published for a CUB-layout folder cropped to its boxes (where the papers' numbers come "
             "from), clean for the bundled synthetic set and other data.")


def dataset_choice() -> tuple[str | None, str, bool, int | None]:
    """(folder or None for the synthetic set, split, crop to boxes, image limit or None)."""
    source_col, split_col, limit_col = st.columns([2, 1, 1])
    source = source_col.radio("Dataset", [SYNTHETIC, "local folder"], horizontal=True, key="evaluate.source",
                              help="The synthetic set (birds with 8 annotated parts and object masks, CUB layout) is "
                                   "generated once into the cache folder. A local folder: CUB-200-2011, Stanford "
                                   "Cars/Dogs or an ImageFolder.")
    folder = None
    if source != SYNTHETIC:
        with source_col:
            folder = server_path_input("Folder", key="evaluate.folder", placeholder="CUB_200_2011")
    split = split_col.selectbox("Split", ["test", "train", "all"], key="evaluate.split")
    limit = limit_col.number_input("Images (0 = all)", min_value=0, value=0, step=50, key="evaluate.limit",
                                   help="Evaluate this many images, evenly spaced over the dataset.")
    crop = st.checkbox("Crop to bounding boxes", value=True, key="evaluate.crop", help=PARAMETER_HELP["crop_to_box"])
    return folder, split, crop, int(limit) or None


def path_choice(default: str) -> tuple[str, bool]:
    """(data path, show both paths side by side). Each default has its own widget state, so the choice
    follows the dataset until the user picks another."""
    left, right = st.columns([2, 1])
    path = left.radio("Data path", PATHS, index=PATHS.index(default), format_func=PATH_LABELS.get, horizontal=True,
                      key=f"evaluate.path.{default}", help=PATH_HELP)
    both = right.checkbox("Show both data paths side by side", key="evaluate.both",
                          help="Runs the other path too and shows both scores and their difference.")
    return str(path), both


def crop_hint(names: list[str]) -> None:
    """Say so when a model records that it was trained on whole images (its metadata has both accuracies)."""
    for name in names:
        meta = get_model(name).model.metadata
        whole, cropped = meta.get("test_accuracy"), meta.get("test_accuracy_cropped_to_box")
        if isinstance(whole, float) and isinstance(cropped, float) and whole > cropped:
            st.caption(f"{plain(name)} was trained on whole images (test accuracy {100 * whole:.1f}% whole, "
                       f"{100 * cropped:.1f}% cropped to boxes): consider unticking the crop for it.")


def parameters(dataset: Any) -> EvaluationConfig:
    """Metric choice and parameters, with the help text of each."""
    default = list(default_metrics(dataset))
    if not dataset.has_parts:
        needing = ", ".join(m for m in list_metrics() if "parts" in get_metric(m).needs)
        st.info(f"Part metrics ({needing}) are unavailable: {plain(str(dataset.parts_reason))}. "
                "Region stability needs no parts.", icon=":material/info:")
    if not dataset.has_masks:
        needing = ", ".join(m.replace("_", " ") for m in list_metrics() if "masks" in get_metric(m).needs)
        st.caption(f"{needing.capitalize()} needs object masks, which this dataset does not have.")
    metrics = st.multiselect("Metrics", list_metrics(), default=default, key="evaluate.metrics",
                             format_func=lambda m: f"{m.replace('_', ' ')} ({get_metric(m).unit})",
                             help="; ".join(f"{k}: {v}" for k, v in metric_help().items()))
    base, plain_config = PartMetricConfig(), EvaluationConfig()
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
        area = c.number_input("pointing game: top share of pixels", 0.01, 1.0, plain_config.pointing_area, 0.05,
                              key="evaluate.pointing_area",
                              help="The pointing game keeps the heatmap's hottest pixels, this share of the image "
                                   "(CaBRNet: 0.1), and counts how many lie on the object.")
    parts = replace(base, half_size=float(half), mu=float(mu), seed=int(seed), noise_std=float(std),
                    noise_clip=float(clip) or None, noise_draws=int(draws), merge_left_right=bool(merge))
    return EvaluationConfig(metrics=tuple(metrics) or ("accuracy",), parts=parts, batch_size=int(batch),
                            pointing_area=float(area))


def run_job(name: str, data: PageDataset, config: EvaluationConfig, start: bool) -> EvaluationResult | bool:
    """This model's result on ``data`` (stored, or started now when ``start``); else whether a job for it is
    queued or running (its progress panel is shown)."""
    loaded = get_model(name)
    model, lock, dataset = loaded.model, loaded.lock, data.dataset  # read now: the job runs without the session

    def work(progress: Any) -> EvaluationResult:
        return evaluate(model, dataset, config, progress, lock=lock)

    key = evaluation_key(loaded.sha256, dataset, config, identity=data.identity)
    record = job_result(key, work, start=start, label=f"Evaluate {name} on {data.name}", model_name=name,
                        dataset_name=data.name)
    if record is None:
        return start or job_manager().find(key) is not None
    result: EvaluationResult = decode(record.payload)
    return result


def score_columns(result: EvaluationResult) -> dict[str, float]:
    """Headline scores by column with its unit, e.g. ``{"accuracy (%)": 97.5, "purity (fraction)": 0.8}``."""
    return {f"{k} ({result.units[k]})": v for k, v in result.scores.items()}


def show_results(results: dict[str, EvaluationResult], config: EvaluationConfig, path: str) -> None:
    st.subheader(f"Scores ({PATH_LABELS[path]})")
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


def both_paths(results: dict[tuple[str, str], EvaluationResult]) -> None:
    """Each model's scores on both data paths, their difference, and why they differ."""
    rows = []
    for name in dict.fromkeys(n for n, _ in results):
        published, clean = results.get((name, "published")), results.get((name, "clean"))
        if published is None or clean is None:
            continue
        for column, value in published.scores.items():
            other = clean.scores.get(column, math.nan)
            rows.append({"model": name, "score": column, "unit": published.units[column],
                         PATH_LABELS["published"]: value, PATH_LABELS["clean"]: other,
                         "difference (published − clean)": value - other})
    if not rows:
        return
    st.subheader("Both data paths")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="evaluate.both_paths")
    st.caption(f"Why they differ: {WHY_THEY_DIFFER}.")


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
               "plus accuracy, PIP-Net purity, CaBRNet's pointing game and deletion/insertion curves. Runs go on "
               "in the background while you use other pages; their results are kept (see Results).")
    names = model_picker("evaluate.models", multi=True)
    if not names:
        return
    folder, split, crop, limit = dataset_choice()
    try:
        if crop:
            crop_hint(list(names))
        clean = page_dataset(folder, split, crop, "clean")
        path, both = path_choice("clean" if folder is None else paper_path(clean.dataset))
        data = {p: clean if p == "clean" else page_dataset(folder, split, crop, p)
                for p in (PATHS if both else (path,))}
        dataset = data[path].dataset
        st.caption(f"{dataset.kind} · {len(dataset)} images · {len(dataset.class_names)} classes · "
                   f"parts: {plain(', '.join(dataset.part_names)) if dataset.part_names else 'none'} · "
                   f"object masks: {'yes' if dataset.has_masks else 'no'}")
        config = replace(parameters(dataset), limit=limit)
        start = st.button("Run", type="primary", key="evaluate.run", icon=":material/play_arrow:")
        outcomes = {(name, p): run_job(name, d, config, start) for name in names for p, d in data.items()}
        results = {k: r for k, r in outcomes.items() if isinstance(r, EvaluationResult)}
        shown = {name: r for (name, p), r in results.items() if p == path}
        if shown:
            show_results(shown, config, path)
        if both:
            both_paths(results)
        if not any(outcomes.values()):
            st.info("Choose models, a dataset and parameters, then press Run.", icon=":material/info:")
            earlier_runs(KIND)
    except ProtovizError as error:
        show_error(error)


main()
