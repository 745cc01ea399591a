"""Why: what makes a patch look like a prototype — colour hue, shape, texture, contrast, saturation, blur ...

Local: for one image and one prototype (default: the top prototype of the predicted class), the sorted
bars of Delta = s(x) - s(x_modified) per characteristic, each against its noise floor, the modified
images beside the original with the prototype's box, and one plain sentence. Global: a prototype's
similarity-weighted mean Delta over a dataset (the bundled synthetic test set or a local folder), run as
a background job whose result is kept in the visitor's workspace (:mod:`app.why_runs`). Both honour the
region (whole image, inside / outside the prototype's box, focus / dual on its heatmap) and the data path
(as published by Explaining_Prototypes, or clean), and can show both paths side by side. The work is
:mod:`protoviz.explain`; this file only lays it out.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import streamlit as st

from app.cache import LoadedModel
from app.datasets import page_dataset
from app.jobs import earlier_runs
from app.state import get_model
from app.why_runs import (
    PATH_LABELS,
    codec_line,
    global_run,
    local_result,
    measured,
    paths_table,
    rank_agreement,
    summary_rows,
    with_path,
)
from app.widgets import (
    NamedImage,
    figure_downloads,
    image_picker,
    model_picker,
    plain,
    server_path_input,
    show_error,
    shown_path,
)
from protoviz.errors import ConfigError, ProtovizError
from protoviz.explain import IDENTITY, MODES, ExplainConfig, ModificationParams, describe, top_prototype
from protoviz.explain.characteristics import PAPER, get_region, list_characteristics, list_regions
from protoviz.explain.export import global_csv, global_json, local_csv, local_json, prototype_classes
from protoviz.explain.extras import redundancy
from protoviz.explain.global_ import KIND as GLOBAL_KIND
from protoviz.explain.global_ import GlobalExplanation
from protoviz.explain.global_regions import MAX_MAP_BYTES
from protoviz.explain.local import modified_pictures, prototype_box
from protoviz.heatmaps.methods import get_method, list_methods
from protoviz.models.labels import prototype_set
from protoviz.viz.characteristics import importance_bars, importance_heatmap, modified_strip
from protoviz.viz.overlay import png_bytes

SYNTHETIC = "Bundled synthetic test set"
FOLDER = "Local folder"
PATHS = ("published", "clean")
PER_PROTOTYPE = ("focus", "dual")


def region_label(region: str) -> str:
    return get_region(region).label


def prototype_label(loaded: LoadedModel, j: int) -> str:
    classes = prototype_classes(loaded.model)
    kind = prototype_set(loaded.summary.prototype_groups, j)
    return f"{j} (class {loaded.model.class_names[classes[j]]}{', ' + kind if kind else ''})"


def noise_of(values: dict[str, float]) -> float | None:
    return abs(values[IDENTITY]) if IDENTITY in values else None


def headline(values: dict[str, float], prototype: int, class_name: str) -> None:
    """The plain sentence, as a heading (the class name escaped: it comes from a file)."""
    noise = noise_of(values)
    sentence = describe(measured(values), prototype, plain(class_name), noise_floor=noise or 0.0)
    st.markdown(f"#### {sentence[0].upper() + sentence[1:]}")


def summary_table(values: dict[str, float], prototype: int, key: str) -> None:
    st.dataframe(pd.DataFrame(summary_rows(values, prototype)), hide_index=True, key=key)
    if not any(n.startswith("floor:") or n == IDENTITY for n in values):
        st.caption("Tick a noise floor above to set each characteristic against what its path alone changes.")


# ----- one image --------------------------------------------------------------------------------------
def render_local(loaded: LoadedModel, config: ExplainConfig, region: str, both: bool) -> None:
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
    st.markdown(f"Predicted class: **{plain(model.class_names[predicted])}** · default prototype: the top prototype "
                f"of that class, {plain(prototype_label(loaded, default))}")
    prototype = st.selectbox("Prototype", list(range(model.num_prototypes)), index=default,
                             format_func=lambda j: prototype_label(loaded, j), key=f"why.prototype.{image.key}.{loaded.name}")
    shown, column, box, weights = local, prototype, four(prototype_box(local, 0, prototype)), None
    if region != "whole":
        with st.spinner("Modifying only the chosen region ..."):
            shown = local_result(loaded, image, replace(config, region=region), prototype)
        column, box = 0, four(prototype_box(shown, 0, 0))
        weights = shown.weights[0, 0] if region in PER_PROTOTYPE and shown.weights is not None else None
    values = {name: float(shown.deltas[0, m, column]) for m, name in enumerate(shown.characteristics)}
    noise = noise_of(values)
    headline(values, prototype, model.class_names[prototype_classes(model)[prototype]])
    chart, info = st.columns([3, 2])
    with chart:
        bars = importance_bars(measured(values), f"Prototype {prototype}: Δ similarity per characteristic "
                               f"({region_label(region)})", noise)
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
    st.markdown("**Each characteristic against its noise floor**")
    summary_table(values, prototype, "why.local.summary")
    if both:
        local_paths(loaded, image, config, region, prototype)
    pictures = modified_pictures(local, 0, box, region, weights)
    names = list(local.characteristics)
    keep = [m for m, name in enumerate(names) if name in measured(values)]
    strip = modified_strip(pictures[0], [pictures[1 + m] for m in keep], [names[m] for m in keep], box,
                           [values[names[m]] for m in keep])
    st.image(strip, caption=f"the original and its modified versions ({config.mode} mode, {region_label(region)}); "
                            "the yellow box is the prototype's high-activation region")
    info_record = {"image": image.name, "prototype": prototype, "region": region, "model": loaded.provenance(),
                   "sentence": describe(measured(values), prototype,
                                        model.class_names[prototype_classes(model)[prototype]], noise or 0.0)}
    stem = f"{loaded.name}_{image.name.rsplit('.', 1)[0]}_p{prototype}"
    a, b, c = st.columns(3)
    a.download_button("Deltas (CSV)", local_csv(shown, info_record, [image.name]), f"{stem}.csv", "text/csv",
                      key="why.local.csv", on_click="ignore", icon=":material/table:")
    b.download_button("Deltas (JSON)", local_json(shown, info_record, [image.name]), f"{stem}.json",
                      "application/json", key="why.local.json", on_click="ignore", icon=":material/data_object:")
    c.download_button("Modified images (PNG)", png_bytes(strip), f"{stem}.png", "image/png", key="why.local.png",
                      on_click="ignore", icon=":material/image:")


def local_paths(loaded: LoadedModel, image: NamedImage, config: ExplainConfig, region: str, prototype: int) -> None:
    """This image and prototype on both data paths, their difference, and why they differ."""
    found: dict[str, dict[str, float]] = {}
    with st.spinner("Explaining the image on both data paths ..."):
        for path in PATHS:
            changed = replace(with_path(config, path), region=region)
            local = local_result(loaded, image, changed, None if region == "whole" else prototype)
            column = prototype if region == "whole" else 0
            found[path] = {n: float(local.deltas[0, m, column]) for m, n in enumerate(local.characteristics)}
    st.markdown("**Both data paths**")
    st.dataframe(pd.DataFrame(paths_table(found["published"], found["clean"])), hide_index=True,
                 key="why.local.paths")
    st.caption(codec_line(config, with_crops=False))


# ----- over a dataset -------------------------------------------------------------------------------------
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


def region_prototypes(loaded: LoadedModel, config: ExplainConfig, images: int) -> list[int]:
    """The prototypes a region run explains (each costs one forward per image and modification)."""
    model = loaded.model
    count = len(config.characteristics)
    default = list(range(model.num_prototypes)) if model.num_prototypes * count <= 600 else [0]
    chosen = st.multiselect("Prototypes to explain", list(range(model.num_prototypes)), default=default,
                            format_func=lambda j: prototype_label(loaded, j), key=f"why.global.prototypes.{loaded.name}",
                            help="A region run changes each prototype's own region, so each prototype costs one "
                                 f"forward per image and modification; a batch holds at most "
                                 f"{MAX_MAP_BYTES >> 20} MB of similarity maps.")
    st.caption(f"{region_label(config.region).capitalize()}: {images} images × (1 + {len(chosen)} prototypes × "
               f"{count} modifications) = {images * (1 + len(chosen) * count):,} forwards.")
    return [int(j) for j in chosen]


def render_global(loaded: LoadedModel, config: ExplainConfig, paths: tuple[str, ...]) -> None:
    folder, split, limit, batch = dataset_choice()
    data = {path: page_dataset(folder, split, True, path) for path in paths}
    first = data[paths[0]].dataset
    total = len(first) if limit is None else min(len(first), limit)
    prototypes = region_prototypes(loaded, config, total) if config.region != "whole" else None
    if prototypes is not None and not prototypes:
        st.info("Choose at least one prototype to explain.", icon=":material/info:")
        return
    start = st.button("Run the global explanation", type="primary", key="why.run", icon=":material/play_arrow:")
    outcomes = {path: global_run(loaded, d, with_path(config, path), limit, batch, prototypes, start)
                for path, d in data.items()}
    results = {p: r for p, r in outcomes.items() if isinstance(r, GlobalExplanation)}
    if not any(outcomes.values()):
        st.info(f"Runs every image of the split through the model with its {len(config.characteristics)} modified "
                "versions, as a background job: you can leave the page and come back.", icon=":material/info:")
        earlier_runs(GLOBAL_KIND)
    if paths[0] in results:
        show_global(loaded, results[paths[0]], data[paths[0]].name)
    if len(results) == 2:
        global_paths(loaded, results["published"], results["clean"])


def show_global(loaded: LoadedModel, result: GlobalExplanation, dataset_name: str) -> None:
    model = loaded.model
    dataset = result.provenance.get("dataset") or {}
    region = result.config.region
    st.caption(f"{result.num_images} images of {plain(shown_path(dataset.get('root', '?')))} "
               f"({dataset.get('split', '?')} split), {result.config.mode} mode, "
               f"{PATH_LABELS[result.config.path]} path, {region_label(region)}"
               + (f" (heatmap: {result.config.heatmap_method})" if region in PER_PROTOTYPE else ""))
    prototype = st.selectbox("Prototype", result.explained, format_func=lambda j: prototype_label(loaded, j),
                             key=f"why.global.prototype.{loaded.name}")
    values = result.vector(prototype)
    headline(values, prototype, model.class_names[prototype_classes(model)[prototype]])
    bars = importance_bars(measured(values), f"Prototype {prototype}: global importance G (similarity-weighted "
                           f"mean Δ over {result.num_images} images)", noise_of(values))
    st.plotly_chart(bars, key="why.global.chart")
    figure_downloads(bars, f"{loaded.name}_global_p{prototype}", key="why.global.fig")
    st.markdown("**Each characteristic against its noise floor**")
    summary_table(values, prototype, "why.global.summary")
    with st.expander("All prototypes"):
        names = list(measured({n: 0.0 for n in result.characteristics}))
        columns = [result.characteristics.index(n) for n in names]
        rows = result.explained
        heatmap = importance_heatmap(result.importance[rows][:, columns], names,
                                     [prototype_label(loaded, j) for j in rows])
        st.plotly_chart(heatmap, key="why.global.heatmap")
        figure_downloads(heatmap, f"{loaded.name}_global_all", key="why.global.heatmap_fig")
        redundant(result, loaded)
    stem = f"{loaded.name}_global_{result.config.mode}_{result.config.path}_{region}"
    a, b = st.columns(2)
    a.download_button("Global importance (CSV)", global_csv(result, model), f"{stem}.csv", "text/csv",
                      key="why.global.csv", on_click="ignore", icon=":material/table:")
    b.download_button("Global importance (JSON)", global_json(result, model), f"{stem}.json", "application/json",
                      key="why.global.json", on_click="ignore", icon=":material/data_object:")


def redundant(result: GlobalExplanation, loaded: LoadedModel) -> None:
    if not any(n in result.characteristics for n in PAPER):
        return
    try:
        pairs = redundancy(result, loaded.model)
    except ProtovizError as error:
        st.caption(f"Redundancy not checked: {plain(str(error))}")
        return
    if pairs:
        st.markdown("**Possibly redundant prototypes** (near-identical explanations and sources)")
        st.dataframe([vars(p) for p in pairs], hide_index=True)
    else:
        st.caption("No redundant prototypes flagged (near-identical explanations and sources).")


def global_paths(loaded: LoadedModel, published: GlobalExplanation, clean: GlobalExplanation) -> None:
    """The chosen prototype on both data paths, each characteristic's rank agreement, why they differ."""
    st.subheader("Both data paths")
    prototype = st.session_state.get(f"why.global.prototype.{loaded.name}", published.explained[0])
    st.dataframe(pd.DataFrame(paths_table(published.vector(prototype), clean.vector(prototype))), hide_index=True,
                 key="why.global.paths")
    st.dataframe(pd.DataFrame(rank_agreement(published, clean)), hide_index=True, key="why.global.agreement")
    st.caption(codec_line(published.config, with_crops=True))


# ----- settings ---------------------------------------------------------------------------------------
STRENGTHS = {  # field -> (label, step); the defaults are the reference values
    "hue": ("hue shift (torchvision factor; 0.1 = 25 of 256 steps)", 0.01),
    "contrast": ("contrast factor", 0.05), "saturation": ("saturation factor", 0.05),
    "brightness": ("brightness factor", 0.05), "texture_h": ("texture: non-local means h (L)", 1.0),
    "texture_h_color": ("texture: non-local means h (a, b)", 1.0),
    "shape_amplitude": ("shape: warp amplitude (px)", 1.0), "shape_frequency": ("shape: warp frequency", 0.01),
    "blur_sigma": ("blur: Gaussian sigma (px)", 0.5),
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


def characteristic_names() -> tuple[str, ...]:
    """The chosen registered characteristics and typed combinations ``a+b`` (checked by ExplainConfig)."""
    options = [n for n in list_characteristics() if n != IDENTITY]
    chosen = st.multiselect("Characteristics", options, default=list(PAPER), key="why.characteristics",
                            help="Nauta et al.'s six by default; blur (CaBRNet) and any other registered one.")
    typed = st.text_input("Combinations", key="why.combinations", placeholder="e.g. hue+shape, contrast+blur",
                          help="Comma-separated; each applies its parts in order (CaBRNet's lists of perturbations).")
    combos = [c.strip().replace(" ", "") for c in typed.split(",") if c.strip()]
    names = tuple(dict.fromkeys([*chosen, *combos]))
    if not names:
        raise ConfigError("choose at least one characteristic")
    return names


def four(box: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A (y0, y1, x0, x1) box as the fixed-length tuple the figures take."""
    y0, y1, x0, x1 = box
    return y0, y1, x0, x1


def settings() -> tuple[str | None, ExplainConfig, str, bool, ModificationParams]:
    """(model name, the base config (whole image), region, show both paths, strengths) from the controls."""
    with st.container(border=True):
        left, middle, right = st.columns(3)
        with left:
            picked = model_picker("why.model")
            name = picked if isinstance(picked, str) else None
            names = characteristic_names()
        mode = middle.radio("Mode", MODES, horizontal=True, key="why.mode",
                            help="fast: batched tensor operations on the device after resizing; reference: "
                                 "PIL / OpenCV on the native-size image, as the published code")
        fast = mode == "fast"
        path = middle.radio("Data path", PATHS, index=1 if fast else 0, format_func=PATH_LABELS.get, horizontal=True,
                            key=f"why.path.{mode}", disabled=fast,
                            help="As published: each crop and each modified image is written to disk as JPEG and "
                                 "read back, as Explaining_Prototypes did (reproduces the paper's numbers; the "
                                 "default in reference mode). Clean: everything stays in memory (the better-founded "
                                 "numbers; the only path of the fast mode).")
        both = middle.checkbox("Show both data paths side by side", key="why.both", disabled=fast,
                               help="Reference mode: runs the other path too and shows both and their difference.")
        noise = middle.checkbox("Show the noise floor", value=True, key="why.noise",
                                help="an identity modification through the same path")
        floors = middle.checkbox("Noise floor per characteristic", key="why.floors",
                                 help="each characteristic at its neutral strength through its own path "
                                      "(e.g. hue shift 0 through the HSV round trip)")
        region = right.selectbox("Modify", list_regions(), format_func=region_label, key="why.region")
        method = right.selectbox("Heatmap method (focus, dual)", list_methods(), key="why.heatmap_method",
                                 format_func=lambda m: get_method(m).label, disabled=region not in PER_PROTOTYPE,
                                 help="Focus modifies where this heatmap is high, dual where it is low (CaBRNet): "
                                      "a faithful heatmap makes focus drop the similarity and dual barely move it.")
        params = strength_inputs()
    config = ExplainConfig(mode=mode, noise_floor=noise, floors=floors, params=params, names=names,
                           heatmap_method=method, path="clean" if fast else str(path))
    return name, config, region, both and not fast, params


def main() -> None:
    st.title("Why: what makes it look like that?")
    st.caption("Each image is changed several ways (hue, shape, texture, contrast, saturation, brightness, blur and "
               "their combinations) and the drop in a prototype's similarity at its best location is measured "
               "(Nauta et al.; focus, dual and blur from CaBRNet).")
    try:
        name, config, region, both, params = settings()
    except ProtovizError as error:
        show_error(error)
        return
    if not name:
        return
    try:
        loaded = get_model(name)
        local_tab, global_tab = st.tabs(["One image", "Over a dataset"])
        with local_tab:
            render_local(loaded, config, region, both)
        with global_tab:
            paths: tuple[str, ...] = (config.path, *[p for p in PATHS if p != config.path]) if both else (config.path,)
            render_global(loaded, replace(config, region=region), paths)
    except Exception as error:  # noqa: BLE001 - shown on the page, never as a traceback
        show_error(error)
    st.caption("Parameters: " + json.dumps(params.to_dict()))


main()
