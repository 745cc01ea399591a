"""Why: what makes a patch look like a prototype — colour hue, shape, texture, contrast, saturation.

Local: for one image and one prototype (default: the top prototype of the predicted class), the sorted
bars of Delta = s(x) - s(x_modified) per characteristic, the modified images beside the original with
the prototype's box, and one plain sentence. Global: a prototype's similarity-weighted mean Delta over
a dataset (the bundled synthetic test set or a local folder), computed with a progress bar and kept in
the session. The work is :mod:`protoviz.explain`; this file only lays it out.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st

from app.cache import LoadedModel
from app.progress_bar import BarProgress
from app.state import get_model, session_results
from app.widgets import (
    NamedImage,
    figure_downloads,
    image_picker,
    model_picker,
    server_path_input,
    show_error,
    shown_path,
)
from protoviz.data.datasets import open_dataset
from protoviz.errors import ProtovizError
from protoviz.explain import (
    CHARACTERISTICS,
    IDENTITY,
    MODES,
    ExplainConfig,
    ModificationParams,
    describe,
    explain_images,
    top_prototype,
)
from protoviz.explain.export import global_csv, global_json, local_csv, local_json, prototype_classes, provenance
from protoviz.explain.extras import redundancy
from protoviz.explain.global_ import GlobalExplanation, explain_dataset
from protoviz.explain.local import LocalExplanation, modified_pictures, prototype_box
from protoviz.models.labels import prototype_set
from protoviz.viz.characteristics import importance_bars, importance_heatmap, modified_strip
from protoviz.viz.overlay import png_bytes

MAX_KEPT_RESULTS = 32
SYNTHETIC = "Bundled synthetic test set"
FOLDER = "Local folder"
REGION_LABELS = {"whole": "whole image", "inside": "only inside the prototype's box",
                 "outside": "only outside the prototype's box"}


def _results() -> dict[Any, Any]:
    results = session_results("why")
    while len(results) > MAX_KEPT_RESULTS:
        results.pop(next(iter(results)))
    return results


def local_result(loaded: LoadedModel, image: NamedImage, config: ExplainConfig) -> LocalExplanation:
    """All prototypes' Delta for one image (whole-image modifications, images kept), once per session."""
    key = ("local", loaded.name, loaded.sha256, image.key, config)
    results = _results()
    if key not in results:
        with loaded.lock:
            results[key] = explain_images(loaded.model, [image.image], config, keep_images=True)
    return results[key]


def region_result(loaded: LoadedModel, image: NamedImage, config: ExplainConfig, prototype: int) -> LocalExplanation:
    """One prototype's Delta with the modification only inside / outside its box, once per session."""
    key = ("region", loaded.name, loaded.sha256, image.key, config, prototype)
    results = _results()
    if key not in results:
        with loaded.lock:
            results[key] = explain_images(loaded.model, [image.image], config, prototypes=[prototype])
    return results[key]


def prototype_label(loaded: LoadedModel, j: int) -> str:
    classes = prototype_classes(loaded.model)
    kind = prototype_set(loaded.summary.prototype_groups, j)
    return f"{j} (class {loaded.model.class_names[classes[j]]}{', ' + kind if kind else ''})"


def noise_of(values: dict[str, float]) -> float | None:
    return abs(values[IDENTITY]) if IDENTITY in values else None


def render_local(loaded: LoadedModel, config: ExplainConfig, region: str) -> None:
    images = image_picker("why.images", label="Image")
    if not images:
        st.info("Upload an image or pick a bundled sample.", icon=":material/arrow_upward:")
        return
    image = images[0] if len(images) == 1 else next(
        im for im in images if im.name == st.selectbox("Image to explain", [im.name for im in images], key="why.image"))
    with st.spinner("Modifying the image and running the model ..."):
        local = local_result(loaded, image, config)
    model = loaded.model
    predicted = int(local.logits[0].argmax())
    default = top_prototype(model, local.similarities[0], predicted)
    options = list(range(model.num_prototypes))
    st.markdown(f"Predicted class: **{model.class_names[predicted]}** · default prototype: the top prototype "
                f"of that class, {prototype_label(loaded, default)}")
    prototype = st.selectbox("Prototype", options, index=default, format_func=lambda j: prototype_label(loaded, j),
                             key=f"why.prototype.{image.key}.{loaded.name}")
    box = prototype_box(local, 0, prototype)
    shown = local
    column = prototype
    if region != "whole":
        with st.spinner("Modifying only the chosen region ..."):
            shown = region_result(loaded, image, replace(config, region=region), prototype)
        column = 0
        box = prototype_box(shown, 0, 0)
    values = {name: float(shown.deltas[0, m, column]) for m, name in enumerate(shown.characteristics)}
    noise = noise_of(values)
    class_name = model.class_names[prototype_classes(model)[prototype]]
    sentence = describe(values, prototype, class_name, noise_floor=noise or 0.0)
    st.markdown(f"#### {sentence[0].upper() + sentence[1:]}")
    chart, info = st.columns([3, 2])
    with chart:
        bars = importance_bars(values, f"Prototype {prototype}: Δ similarity per characteristic "
                               f"({REGION_LABELS[region]})", noise)
        st.plotly_chart(bars, key="why.local.chart")
        figure_downloads(bars, f"{loaded.name}_{image.name.rsplit('.', 1)[0]}_p{prototype}_bars", key="why.local.fig")
    with info:
        st.metric("similarity s(x) at its best location", f"{float(shown.similarities[0, column]):.4f}",
                  help=f"{loaded.summary.family_label or loaded.summary.family}: {loaded.summary.similarity_unit}")
        row, col = (int(v) for v in shown.locations[0, column].tolist())
        st.caption(f"best location: map cell ({row}, {col}); box rows {box[0]}-{box[1]}, cols {box[2]}-{box[3]} "
                   f"(input pixels). Δ = s(x) − s(x modified) at that same location: positive means changing "
                   f"the characteristic lowers the similarity, so the prototype relies on it."
                   + ("" if noise is None else f" Noise floor (identity through the same path): {noise:.2g}."))
    pictures = modified_pictures(local, 0, box, region)
    names = list(local.characteristics)
    deltas = [values[n] for n in names]
    strip = modified_strip(pictures[0], pictures[1:], names, box, deltas)
    st.image(strip, caption=f"the original and its modified versions ({config.mode} mode, {REGION_LABELS[region]}); "
                            "the yellow box is the prototype's high-activation region")
    info_record = {"image": image.name, "prototype": prototype, "region": region, "model": loaded.provenance(),
                   "sentence": sentence}
    stem = f"{loaded.name}_{image.name.rsplit('.', 1)[0]}_p{prototype}"
    a, b, c = st.columns(3)
    a.download_button("Deltas (CSV)", local_csv(shown, info_record, [image.name]), f"{stem}.csv", "text/csv",
                      key="why.local.csv", on_click="ignore", icon=":material/table:")
    b.download_button("Deltas (JSON)", local_json(shown, info_record, [image.name]), f"{stem}.json",
                      "application/json", key="why.local.json", on_click="ignore", icon=":material/data_object:")
    c.download_button("Modified images (PNG)", png_bytes(strip), f"{stem}.png", "image/png", key="why.local.png",
                      on_click="ignore", icon=":material/image:")


def dataset_choice() -> tuple[str | None, str, int | None, int]:
    """Where the global run reads its images: (folder or None for the synthetic set, split, limit, batch size)."""
    source = st.radio("Dataset", [SYNTHETIC, FOLDER], horizontal=True, key="why.dataset")
    folder = None
    if source == FOLDER:
        folder = server_path_input("Dataset folder (CUB layout or ImageFolder)", key="why.folder")
    left, middle, right = st.columns(3)
    split = left.selectbox("Split", ["test", "train", "all"], key="why.split")
    limit = middle.number_input("At most this many images (0 = all)", min_value=0, value=0, step=50, key="why.limit")
    batch = right.number_input("Batch size", min_value=1, max_value=256, value=16, key="why.batch")
    return folder, split, (int(limit) or None), int(batch)


def run_global(loaded: LoadedModel, folder: str | None, split: str, limit: int | None, batch: int,
               config: ExplainConfig) -> GlobalExplanation:
    """Run (or reuse) the global explanation, with a progress bar."""
    if folder is None:
        from protoviz.data.demo import synthetic_dataset
        with st.spinner("Generating the synthetic dataset into the cache folder (once) ..."):
            root = synthetic_dataset()
    else:
        root = Path(folder)
    dataset = open_dataset(root, split=split)
    info = provenance(loaded.model, loaded.name, {**dataset.describe(), "limit": limit}, config.seed)
    progress = BarProgress("Explaining")
    result = explain_dataset(loaded.model, dataset, config, batch_size=batch, limit=limit, progress=progress,
                             provenance=info, lock=loaded.lock)
    progress.close()
    return result


def render_global(loaded: LoadedModel, config: ExplainConfig) -> None:
    folder, split, limit, batch = dataset_choice()
    key = ("global", loaded.name, loaded.sha256, folder, split, limit, replace(config, region="whole"))
    results = _results()
    if key not in results:
        if not st.button("Run the global explanation", type="primary", key="why.run"):
            st.info("Runs every image of the split through the model with its six modified versions.",
                    icon=":material/info:")
            return
        results[key] = run_global(loaded, folder, split, limit, batch, replace(config, region="whole"))
    result: GlobalExplanation = results[key]
    model = loaded.model
    dataset = result.provenance.get("dataset") or {}
    st.caption(f"{result.num_images} images of {shown_path(dataset.get('root', '?'))} "
               f"({dataset.get('split', split)} split), "
               f"{result.config.mode} mode")
    prototype = st.selectbox("Prototype", list(range(model.num_prototypes)),
                             format_func=lambda j: prototype_label(loaded, j),
                             key=f"why.global.prototype.{loaded.name}")
    values = result.vector(prototype)
    noise = noise_of(values)
    class_name = model.class_names[prototype_classes(model)[prototype]]
    sentence = describe(values, prototype, class_name, noise_floor=noise or 0.0)
    st.markdown(f"#### {sentence[0].upper() + sentence[1:]}")
    bars = importance_bars(values, f"Prototype {prototype}: global importance G (similarity-weighted "
                           f"mean Δ over {result.num_images} images)", noise)
    st.plotly_chart(bars, key="why.global.chart")
    figure_downloads(bars, f"{loaded.name}_global_p{prototype}", key="why.global.fig")
    with st.expander("All prototypes"):
        names = list(CHARACTERISTICS)
        columns = [result.characteristics.index(n) for n in names]
        heatmap = importance_heatmap(result.importance[:, columns], names,
                                     [prototype_label(loaded, j) for j in range(model.num_prototypes)])
        st.plotly_chart(heatmap, key="why.global.heatmap")
        figure_downloads(heatmap, f"{loaded.name}_global_all", key="why.global.heatmap_fig")
        try:
            pairs = redundancy(result, model)
        except ProtovizError as error:
            st.caption(f"Redundancy not checked: {error}")
        else:
            if pairs:
                st.markdown("**Possibly redundant prototypes** (near-identical explanations and sources)")
                st.dataframe([vars(p) for p in pairs], hide_index=True)
            else:
                st.caption("No redundant prototypes flagged (near-identical explanations and sources).")
    stem = f"{loaded.name}_global_{result.config.mode}"
    a, b = st.columns(2)
    a.download_button("Global importance (CSV)", global_csv(result, model), f"{stem}.csv", "text/csv",
                      key="why.global.csv", on_click="ignore", icon=":material/table:")
    b.download_button("Global importance (JSON)", global_json(result, model), f"{stem}.json", "application/json",
                      key="why.global.json", on_click="ignore", icon=":material/data_object:")


STRENGTHS = {  # field -> (label, step); the defaults are the reference values
    "hue": ("hue shift (torchvision factor; 0.1 = 25 of 256 steps)", 0.01),
    "contrast": ("contrast factor", 0.05), "saturation": ("saturation factor", 0.05),
    "brightness": ("brightness factor", 0.05), "texture_h": ("texture: non-local means h (L)", 1.0),
    "texture_h_color": ("texture: non-local means h (a, b)", 1.0),
    "shape_amplitude": ("shape: warp amplitude (px)", 1.0), "shape_frequency": ("shape: warp frequency", 0.01),
}


def strength_inputs() -> ModificationParams:
    """The modification strengths, reference values by default (invalid ones are reported by the caller)."""
    defaults = ModificationParams()
    values = {}
    with st.expander("Modification strengths (defaults: the reference values)"):
        columns = st.columns(4)
        for i, (field, (label, step)) in enumerate(STRENGTHS.items()):
            values[field] = columns[i % 4].number_input(label, value=float(getattr(defaults, field)), step=step,
                                                        format="%.3f", key=f"why.param.{field}")
    try:
        return ModificationParams(**{**defaults.to_dict(), **values})
    except ProtovizError as error:
        show_error(error)
        return defaults


def main() -> None:
    st.title("Why: what makes it look like that?")
    st.caption("Each image is changed six ways (hue, shape, texture, contrast, saturation, brightness) and the drop "
               "in a prototype's similarity at its best location is measured (Nauta et al.).")
    with st.container(border=True):
        left, middle, right = st.columns(3)
        with left:
            name = model_picker("why.model")
        mode = middle.radio("Mode", MODES, horizontal=True, key="why.mode",
                            help="fast: batched tensor operations on the device after resizing; reference: "
                                 "PIL / OpenCV on the native-size image, as the published code")
        noise = middle.checkbox("Show the noise floor", value=True, key="why.noise",
                                help="an identity modification through the same path")
        region = right.selectbox("Modify", list(REGION_LABELS), format_func=REGION_LABELS.get, key="why.region")
        params = strength_inputs()
    if not name:
        return
    try:
        loaded = get_model(name)
        config = ExplainConfig(mode=mode, noise_floor=noise, params=params)
        local_tab, global_tab = st.tabs(["One image", "Over a dataset"])
        with local_tab:
            render_local(loaded, config, region)
        with global_tab:
            render_global(loaded, config)
    except Exception as error:  # noqa: BLE001 - shown on the page, never as a traceback
        show_error(error)
    st.caption("Parameters: " + json.dumps(params.to_dict()))


main()
