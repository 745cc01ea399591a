"""Trust: how far to trust each heatmap method on a model (sanity checks and faithfulness).

Per method: the model-parameter randomisation check, deletion / insertion curves and, on the
synthetic set, the share of heatmap mass inside the prototype's part and the object; then the maps of
every method side by side for one image and prototype. The work is
:func:`protoviz.heatmaps.trust_report.evaluate_methods`; this file only lays it out.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from app.cache import LoadedModel
from app.state import get_model, session_results
from app.widgets import figure_downloads, image_picker, model_picker, show_error
from protoviz.data.transforms import denormalize, preprocess, to_uint8_image
from protoviz.errors import ProtovizError
from protoviz.heatmaps.methods import HeatmapOptions, get_method, list_methods
from protoviz.heatmaps.trust import PerturbationConfig, RandomisationConfig
from protoviz.heatmaps.trust_report import TrustConfig, TrustReport, evaluate_methods, synthetic_images, top_prototypes
from protoviz.tables import csv_text
from protoviz.viz.overlay import enlarge
from protoviz.viz.scale import with_colour_scale
from protoviz.viz.trust import curves_figure, method_panels, randomisation_figure, relevance_figure

SYNTHETIC, OWN = "Synthetic birds (with part masks)", "My images"
MAX_KEPT_RESULTS = 8
PICTURE_WIDTH = 180


def settings_form() -> tuple[TrustConfig, int]:
    """Methods and check parameters chosen by the user."""
    methods = st.multiselect("Heatmap methods", list_methods(), default=list_methods(), key="trust.methods",
                             format_func=lambda n: get_method(n).label)
    per_image = st.slider("Prototypes per image (the most activated)", 1, 5, 2, key="trust.k")
    with st.expander("Check parameters"):
        stages = st.slider("Randomisation stages", 1, 6, 3, key="trust.stages")
        mode = st.radio("Randomisation", ["cascading", "independent"], horizontal=True, key="trust.mode")
        threshold = st.slider("Pass if mean Spearman rho is below", 0.0, 1.0, 0.5, 0.05, key="trust.threshold")
        steps = st.slider("Deletion / insertion steps", 4, 32, 12, key="trust.steps")
        score = st.radio("Prototype score", ["max", "location"], horizontal=True, key="trust.score",
                         help="max: its max similarity (what the head uses); location: its similarity at "
                              "the cell where it peaked on the original image")
        samples = st.slider("SmoothGrad samples", 2, 32, 8, key="trust.samples")
        seed = st.number_input("Seed of the re-randomised weights", 0, 10_000, 1, key="trust.seed")
    config = TrustConfig(
        methods=tuple(methods) or ("upsample",),
        options=HeatmapOptions(smoothgrad_samples=int(samples), random_seed=int(seed)),
        randomisation=RandomisationConfig(stages=int(stages), mode=str(mode), seed=int(seed),
                                          threshold=float(threshold)),
        perturbation=PerturbationConfig(steps=int(steps), score=str(score)),
    )
    return config, int(per_image)


def gather_images(loaded: LoadedModel, source: str, count: int) -> tuple[Any, Any, list[str]] | None:
    """(images (B, 3, H, W) normalised, masks or None, names) from the chosen source."""
    if source == SYNTHETIC:
        with st.spinner("Preparing the synthetic set (generated once) ..."):
            masked = synthetic_images(loaded.model.input_spec, count)
        return masked.images, masked.masks, [f"synthetic #{n}" for n in masked.names]
    picked = image_picker("trust.images")
    if not picked:
        return None
    images = preprocess([p.image for p in picked], loaded.model.input_spec)
    return images, None, [p.name for p in picked]


def run(loaded: LoadedModel, images: Any, masks: Any, names: list[str], config: TrustConfig,
        per_image: int) -> TrustReport:
    bar = st.progress(0.0, text="Starting ...")
    with loaded.lock:
        indices = top_prototypes(loaded.model, images, per_image)
        report = evaluate_methods(loaded.model, images, indices, config, part_masks=masks, image_names=names,
                                  model_name=loaded.name,
                                  progress=lambda f, message: bar.progress(min(1.0, f), text=message))
    report.provenance["model"] = loaded.provenance()
    bar.empty()
    return report


def csv_bytes(report: TrustReport) -> bytes:
    return csv_text(report.summary_rows()).encode()


def render_figures(report: TrustReport, stem: str) -> None:
    results = report.results
    first = next(iter(results.values()))
    figures = {
        "randomisation": randomisation_figure(first.randomisation.stage_labels,
                                              {n: r.randomisation.mean_rho.tolist() for n, r in results.items()},
                                              first.randomisation.config.threshold),
        "curves": curves_figure(first.curves.fractions.tolist(), {n: r.curves.deletion for n, r in results.items()},
                                {n: r.curves.insertion for n, r in results.items()}),
    }
    if first.relevance is not None:
        rows = report.summary_rows()
        figures["relevance"] = relevance_figure([r["method"] for r in rows], [r.get("mass in part") for r in rows],
                                                rows[0].get("part area"), [r.get("mass in object") for r in rows],
                                                rows[0].get("object area"))
    for name, figure in figures.items():
        st.plotly_chart(figure, key=f"trust.fig.{name}")
        figure_downloads(figure, f"{stem}_{name}", key=f"trust.dl.{name}", label=f"Download the {name} figure")


def render_maps(report: TrustReport, images: Any, loaded: LoadedModel, stem: str) -> None:
    st.subheader("The maps side by side")
    left, right = st.columns(2)
    b = left.selectbox("Image", range(len(report.image_names)), format_func=lambda i: report.image_names[i],
                       key="trust.map_image")
    k = right.selectbox("Prototype", range(report.prototype_indices.shape[1]),
                        format_func=lambda j: f"prototype {int(report.prototype_indices[b, j])}", key="trust.map_k")
    picture = to_uint8_image(denormalize(images[b:b + 1], loaded.model.input_spec)[0])
    maps = {n: r.maps[b, k] for n, r in report.results.items()}
    signed = {n: get_method(n).signed for n in report.results}
    panels = method_panels(picture, maps, signed)
    with st.container(horizontal=True, gap="small"):
        for name, panel in panels.items():
            result = report.results[name]
            heat = np.asarray(maps[name], dtype=np.float64)
            scaled = with_colour_scale(enlarge(panel, 128), float(np.nanmin(heat)), float(np.nanmax(heat)),
                                       signed=signed[name])
            with st.container(width=PICTURE_WIDTH + 60):
                st.image(scaled, width="stretch", caption=get_method(name).label)
                st.caption(f"rho {float(result.randomisation.rho[-1, b, k]):.2f} · deletion AUC "
                           f"{result.curves.deletion_auc[b, k]:.2f} · insertion AUC "
                           f"{result.curves.insertion_auc[b, k]:.2f}")
                figure_downloads(scaled, f"{stem}_{name}_{b}_{k}", key=f"trust.png.{name}", label="Download")
    st.caption("JET overlays run from the map's lowest value (blue) to its highest (red), as the scale beside each "
               "shows. PRP is signed: red = evidence for, blue = evidence against, white = 0.")


def render_report(report: TrustReport, images: Any, loaded: LoadedModel) -> None:
    stem = f"trust_{loaded.name}"
    st.subheader("Summary")
    st.dataframe(report.summary_rows(), hide_index=True)
    st.caption(f"Means over {len(report.image_names)} image(s) x {report.prototype_indices.shape[1]} prototype(s). "
               "A method fails the randomisation check when its maps stay similar (rho >= threshold) after the "
               "model's weights are re-randomised; the `random` baseline fails it by design (it never sees the "
               "trained weights), and a method that scores like `random` elsewhere is not to be trusted. "
               "Deletion / insertion curves give the prototype's score as a fraction of its score on the original "
               "image; a prototype that still fires on a blank image keeps a high curve whatever the method. Part "
               "relevance uses the part most covered by the prototype's 95th-percentile box on its top images, a "
               "choice that favours upsampling.")
    one, two = st.columns(2)
    one.download_button("Report (JSON)", report.to_json(), f"{stem}.json", "application/json",
                        key="trust.json", on_click="ignore", icon=":material/data_object:")
    two.download_button("Summary (CSV)", csv_bytes(report), f"{stem}.csv", "text/csv", key="trust.csv",
                        on_click="ignore", icon=":material/table:")
    render_figures(report, stem)
    render_maps(report, images, loaded, stem)


def main() -> None:
    st.title("Trust: how far to trust each heatmap")
    st.caption("Sanity checks (does the map depend on what the model learned?) and faithfulness (does removing "
               "the highlighted pixels remove the prototype? does the map fall on the right part?).")
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            model_name = model_picker("trust.model")
            source = st.radio("Images", [SYNTHETIC, OWN], key="trust.source")
            count = st.slider("Synthetic images", 1, 12, 4, key="trust.count") if source == SYNTHETIC else 0
        with right:
            config, per_image = settings_form()
    if not model_name:
        return
    try:
        loaded = get_model(model_name)
        gathered = gather_images(loaded, source, count)
    except ProtovizError as error:
        show_error(error)
        return
    if gathered is None:
        st.info("Upload or pick at least one image.", icon=":material/arrow_upward:")
        return
    images, masks, names = gathered
    key = json.dumps([loaded.name, loaded.sha256, names, source, per_image, config.to_dict()], default=str)
    results = session_results("trust")
    if st.button("Run the checks", type="primary", key="trust.run", icon=":material/play_arrow:"):
        try:
            results[key] = run(loaded, images, masks, names, config, per_image)
        except Exception as error:  # noqa: BLE001 - shown on the page, never as a traceback
            show_error(error)
        while len(results) > MAX_KEPT_RESULTS:
            results.pop(next(iter(results)))
    if key in results:
        render_report(results[key], images, loaded)
    else:
        st.info("Choose the methods and press **Run the checks**; results stay for this session.",
                icon=":material/info:")


main()
