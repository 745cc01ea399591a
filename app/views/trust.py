"""Trust: how far to trust each heatmap method on a model (sanity checks and faithfulness).

Per method: the model-parameter randomisation check, deletion / insertion curves and, on images with
segmentation masks (the synthetic set, or a dataset folder that has them), the share of heatmap mass
inside the prototype's part and the object and the pointing game; then the maps of every method side
by side for one image and prototype. The run is a background job (progress with time left, a Stop
button) that takes the model's lock one batch of work at a time, and its report is kept in the
workspace under the model file, the images and the settings: it is there again after a refresh or a
later visit, and the same request is served from the store. The work is
:func:`protoviz.heatmaps.trust_report.evaluate_methods`; this file only lays it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from torch import Tensor

from app.cache import LoadedModel
from app.compare_runs import images_key, load_result
from app.jobs import earlier_runs, job_result
from app.state import get_model
from app.widgets import figure_downloads, image_picker, model_picker, plain, server_path_input, show_error, shown_path
from protoviz.data.transforms import denormalize, preprocess, to_uint8_image
from protoviz.errors import ModelError, ProtovizError
from protoviz.heatmaps.methods import HeatmapOptions, get_method, list_methods
from protoviz.heatmaps.trust import PerturbationConfig, RandomisationConfig
from protoviz.heatmaps.trust_report import (
    TrustConfig,
    TrustReport,
    dataset_images,
    evaluate_methods,
    pointing_column,
    synthetic_images,
    synthetic_record,
    top_prototypes,
)
from protoviz.passes import PassRecord
from protoviz.provenance import DatasetIdentity, canonical
from protoviz.tables import csv_text
from protoviz.viz.overlay import enlarge
from protoviz.viz.scale import with_colour_scale
from protoviz.viz.trust import curves_figure, method_panels, randomisation_figure, relevance_figure
from protoviz.workspace import RunKey

SYNTHETIC, OWN, FOLDER = "Synthetic birds (with part masks)", "My images", "Dataset folder"
PICTURE_WIDTH = 180
KIND = "trust"
OWN_NOTE = ("your images have no segmentation masks; choose the synthetic set or a dataset folder with masks for "
            "the pointing game and mask relevance")
_GATHERED = "trust.gathered"  # (source, ...) -> Gathered: the chosen images, not results


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
        area = st.slider("Pointing game: share of each map kept", 0.05, 0.5, 0.1, 0.05, key="trust.area",
                         help="The top share of a map's pixels that must fall on the object (CaBRNet: 10%)")
    config = TrustConfig(
        methods=tuple(methods) or ("upsample",),
        options=HeatmapOptions(smoothgrad_samples=int(samples), random_seed=int(seed)),
        randomisation=RandomisationConfig(stages=int(stages), mode=str(mode), seed=int(seed),
                                          threshold=float(threshold)),
        perturbation=PerturbationConfig(steps=int(steps), score=str(score)),
        pointing_area=float(area),
    )
    return config, int(per_image)


@dataclass(frozen=True)
class Gathered:
    """The images to check: normalised (B, 3, H, W), masks (B, H, W) or None, names, what the provenance
    records, and why there are no masks ("" when there are)."""

    images: Tensor
    masks: Tensor | None
    names: list[str]
    record: PassRecord
    masks_note: str
    label: str


def gather_images(loaded: LoadedModel, source: str, count: int, folder: str | None, split: str) -> Gathered | None:
    """The chosen images (the synthetic set and dataset folders read once per session)."""
    spec = loaded.model.input_spec
    if source == OWN:
        picked = image_picker("trust.images")
        if not picked:
            return None
        fingerprint = images_key([p.key for p in picked])
        record = PassRecord(DatasetIdentity(fingerprint, None, {"images": [p.name for p in picked]}),
                            {"images": fingerprint})
        return Gathered(preprocess([p.image for p in picked], spec), None, [p.name for p in picked], record, OWN_NOTE,
                        f"{len(picked)} of your images")
    if source == FOLDER and folder is None:
        return None
    kept = st.session_state.setdefault(_GATHERED, {})
    key = (source, folder, split, count, spec)
    if key not in kept:
        with st.spinner("Reading the images (the synthetic set is generated once) ..."):
            if source == SYNTHETIC:
                masked = synthetic_images(spec, count)
                kept[key] = Gathered(masked.images, masked.masks, [f"synthetic #{n}" for n in masked.names],
                                     synthetic_record(masked), "", f"{len(masked.names)} synthetic images")
            else:
                images, masks, names, record = dataset_images(spec, folder, split, count)
                where = shown_path(str(folder))
                note = "" if masks is not None else f"{where}: this dataset has no segmentation masks"
                kept[key] = Gathered(images, masks, names, record, note, f"{len(names)} images of {where} ({split})")
        while len(kept) > 4:
            kept.pop(next(iter(kept)))
    return kept[key]  # type: ignore[no-any-return]


def trust_key(loaded: LoadedModel, gathered: Gathered, config: TrustConfig, per_image: int) -> RunKey:
    """The run's key: the model file, the images (dataset fingerprint and which images) and every setting."""
    if not loaded.sha256 or not gathered.record.dataset.fingerprint:
        raise ModelError("this model or these images have no fingerprint: the checks cannot be kept")
    settings = {"trust": config.to_dict(), "prototypes_per_image": per_image, **dict(gathered.record.settings),
                "split": gathered.record.dataset.split}
    return RunKey.make(KIND, loaded.sha256, gathered.record.dataset.fingerprint, canonical(settings))


def run_checks(loaded: LoadedModel, gathered: Gathered, config: TrustConfig, per_image: int, *,
               start: bool) -> TrustReport | None:
    """The kept report of these checks, the running job's progress panel (None), or with ``start`` a new job."""
    key = trust_key(loaded, gathered, config, per_image)
    model, lock, name = loaded.model, loaded.lock, loaded.name
    summary = loaded.provenance()
    model_file = {"name": summary["name"], "path": shown_path(str(summary["path"]))}  # st.* here, not in work

    def work(progress: Any) -> TrustReport:  # on a worker thread: no st.* here
        def checks(done: int, total: int | None, stage: str = "") -> None:
            del stage  # one stage keeps the rate and the time left honest
            progress(done // 10, 100, "checks")

        indices = top_prototypes(model, gathered.images, per_image, lock=lock)
        report = evaluate_methods(model, gathered.images, indices, config, part_masks=gathered.masks,
                                  image_names=gathered.names, model_name=name, progress=checks, lock=lock,
                                  record=gathered.record, masks_note=gathered.masks_note)
        report.provenance["model_file"] = model_file
        return report

    record = job_result(key, work, start=start, label=f"Trust · {name} · {gathered.label}", model_name=name,
                        dataset_name=gathered.label, unit="% of the checks", with_blobs=False)
    return None if record is None else load_result(record)


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
            line = (f"rho {float(result.randomisation.rho[-1, b, k]):.2f} · deletion AUC "
                    f"{result.curves.deletion_auc[b, k]:.2f} · insertion AUC {result.curves.insertion_auc[b, k]:.2f}")
            if result.pointing is not None:
                line += f" · pointing {result.pointing.mask[b, k]:.2f}"
            with st.container(width=PICTURE_WIDTH + 60):
                st.image(scaled, width="stretch", caption=get_method(name).label)
                st.caption(line)
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
    first = next(iter(report.results.values()))
    if first.pointing is not None:
        st.caption(f"Pointing game (CaBRNet's relevance analysis): '{pointing_column(first.pointing.area)}' is the "
                   f"share of each map's top {100 * first.pointing.area:g}% pixels that lie on the object (Xu-Darme "
                   "et al. 2023); 'energy on object' the share of its mass there (Wang et al. 2020). 1 = all the "
                   "evidence on the object; 'object area' is what a map spread evenly would score.")
    if report.masks_note:
        st.info(f"No mask relevance or pointing game: {plain(report.masks_note)}.", icon=":material/info:")
    one, two = st.columns(2)
    one.download_button("Report (JSON)", report.to_json(), f"{stem}.json", "application/json",
                        key="trust.json", on_click="ignore", icon=":material/data_object:")
    two.download_button("Summary (CSV)", csv_text(report.summary_rows()).encode(), f"{stem}.csv", "text/csv",
                        key="trust.csv", on_click="ignore", icon=":material/table:")
    render_figures(report, stem)
    render_maps(report, images, loaded, stem)


def main() -> None:
    st.title("Trust: how far to trust each heatmap")
    st.caption("Sanity checks (does the map depend on what the model learned?) and faithfulness (does removing "
               "the highlighted pixels remove the prototype? does the map fall on the right part, on the object?).")
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            model_name = model_picker("trust.model")
            source = st.radio("Images", [SYNTHETIC, OWN, FOLDER], key="trust.source")
            folder, split = None, "test"
            if source == FOLDER:
                folder = server_path_input("Folder (CUB-200-2011 layout, Stanford Cars/Dogs or ImageFolder)",
                                           key="trust.folder")
                split = st.selectbox("Split", ["test", "train", "all"], key="trust.split")
            count = st.slider("Images", 1, 12, 4, key="trust.count") if source != OWN else 0
        with right:
            config, per_image = settings_form()
    if not model_name:
        return
    try:
        loaded = get_model(model_name)
        gathered = gather_images(loaded, source, count, folder, split)
    except ProtovizError as error:
        show_error(error)
        return
    if gathered is None:
        st.info("Upload or pick at least one image." if source == OWN else "Type a dataset folder.",
                icon=":material/arrow_upward:")
        return
    clicked = st.button("Run the checks", type="primary", key="trust.run", icon=":material/play_arrow:")
    try:
        report = run_checks(loaded, gathered, config, per_image, start=clicked)
    except ProtovizError as error:
        show_error(error)
        return
    if report is not None:
        render_report(report, gathered.images, loaded)
    else:
        st.info("Choose the methods and press **Run the checks**: the run goes on in the background (you may "
                "leave the page) and its report is kept in your workspace.", icon=":material/info:")
        earlier_runs(KIND)


main()
