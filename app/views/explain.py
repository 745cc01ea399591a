"""Explain (home page): which prototypes an image activates, where, and how much each contributes.

Per model and image: the image with the predicted class and top-5 probabilities; cards for the
prototypes with the largest positive contributions (evidence for) and the most negative ones (evidence
against): [image with the prototype's heatmap, box and colour scale] looks like [the prototype's source
patch and source image] -> similarity x weight = contribution; then the waterfall of the whole class
score (shown cards, the other prototypes, any bias) and the family's own reading. Any class can be
explained on request. Cards are flex rows that wrap, so they never overlap from 1024 px to 2560 px.
The work is :func:`protoviz.heatmaps.explain_image`; this file only lays it out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from app.cache import LoadedModel
from app.dataset_images import dataset_image_picker
from app.state import get_model, session_results
from app.widgets import NamedImage, figure_downloads, image_picker, model_picker, show_error
from protoviz.data.transforms import preprocess
from protoviz.device import batches
from protoviz.errors import ProtovizError
from protoviz.heatmaps import ImageExplanation, PrototypeEvidence, explain_image
from protoviz.heatmaps.cards import panels_of, paper_figure, sum_line, waterfall_of
from protoviz.heatmaps.methods import get_method, list_methods
from protoviz.heatmaps.methods.explain import explanation_with_method
from protoviz.models.labels import prototype_set
from protoviz.models.prototree import ProtoTree
from protoviz.tables import csv_text
from protoviz.viz.overlay import enlarge
from protoviz.viz.scale import scale_labels, with_colour_scale

MAX_KEPT_RESULTS = 64
BATCH_SIZE = 16
PICTURE = 128  # display width of each picture, px (the heatmap's colour scale comes on top of it)
NUMBERS_WIDTH = 240
PREDICTED = -1  # the class selector's "predicted class" entry
PROTOTYPES_PAGE = "views/prototypes.py"
PROTOTYPES_MODEL_KEY = "prototypes.model"  # widget keys of the Prototypes page
PROTOTYPES_SELECTED_KEY = "prototypes.selected"
PROTOTYPES_OPEN_CARD_FLAG = "prototypes.open_card"  # tells the Prototypes page to show the card itself
OPEN_CARD_FLAG = "explain.open_card"
DATASET_OPEN = "explain.dataset.open"  # keep the dataset picker open while it has picked images
SIDES = {"for": "Evidence for", "against": "Evidence against"}


def compute(loaded: LoadedModel, images: Sequence[NamedImage], top_k: int, method: str = "upsample",
            target: int | None = None) -> list[ImageExplanation]:
    """Explanations of ``images`` by one model (of class ``target``, default the predicted one), computed
    once per session (batched, under the model's lock)."""
    results: dict[Any, ImageExplanation] = session_results("explain")
    keys = [(loaded.name, loaded.sha256, image.key, top_k, method, target) for image in images]
    missing = [i for i, key in enumerate(keys) if key not in results]
    for chunk in batches(missing, BATCH_SIZE):
        with loaded.lock:
            fresh = explain_image(loaded.model, [images[i].image for i in chunk], top_k=top_k,
                                  names=[images[i].name for i in chunk], target=target)
            fresh = [explanation_with_method(loaded.model, explanation, method) for explanation in fresh]
        for i, explanation in zip(chunk, fresh, strict=True):
            results[keys[i]] = explanation
    while len(results) > MAX_KEPT_RESULTS:
        results.pop(next(iter(results)))
    return [results[key] for key in keys]


def model_label(loaded: LoadedModel) -> str:
    """'name (ST-ProtoPNet)': the model and the method it is."""
    return f"{loaded.name} ({loaded.summary.family_label or loaded.summary.family})"


def prototype_sets(loaded: LoadedModel, explanation: ImageExplanation) -> dict[int, str]:
    """The set (support / trivial ...) of each shown prototype, where the model has named sets."""
    groups = loaded.summary.prototype_groups
    return {e.index: name for e in explanation.cards if (name := prototype_set(groups, e.index)) is not None}


def figure_of(loaded: LoadedModel, explanation: ImageExplanation) -> object:
    """The whole explanation as one paper figure (built only when a download is asked for)."""
    return paper_figure(explanation, model_label(loaded), loaded.model.input_spec.image_size,
                        prototype_sets(loaded, explanation))


def csv_bytes(explanation: ImageExplanation, model_name: str) -> bytes:
    return csv_text([{"model": model_name, **row} for row in explanation.contribution_rows()]).encode()


def json_bytes(loaded: LoadedModel, explanation: ImageExplanation) -> bytes:
    record = {**explanation.as_record(), "model": loaded.provenance()}
    return json.dumps(record, indent=2).encode()


def render_header(loaded: LoadedModel, explanation: ImageExplanation, slot: str) -> None:
    height, width = explanation.image.shape[:2]
    with st.container(horizontal=True, gap="medium", key=f"explain-header-{slot}"):
        st.image(explanation.image, width=170, caption=f"as the model sees it ({height}x{width})")
        with st.container(width=300):
            best = explanation.top_classes[0]
            st.markdown(f"**Predicted: {explanation.predicted_name}** ({best[2]:.1%})")
            st.dataframe({"class": [n for _, n, _ in explanation.top_classes],
                          "probability": [p for _, _, p in explanation.top_classes]}, hide_index=True,
                         column_config={"probability": st.column_config.ProgressColumn(
                             "probability", format="percent", min_value=0.0, max_value=1.0)})
        stem = f"{loaded.name}_{explanation.name.rsplit('.', 1)[0]}"
        with st.container(width=220):
            figure_downloads(lambda: figure_of(loaded, explanation), stem, key=f"{slot}.figure",  # type: ignore[arg-type,return-value]
                             label="Figure (PNG, SVG, PDF)", interactive=False)
            st.download_button("Contributions (CSV)", csv_bytes(explanation, loaded.name), f"{stem}.csv", "text/csv",
                               key=f"{slot}.csv", on_click="ignore", icon=":material/table:")
            st.download_button("Explanation (JSON)", json_bytes(loaded, explanation), f"{stem}.json",
                               "application/json", key=f"{slot}.json", on_click="ignore",
                               icon=":material/data_object:")


def render_card(loaded: LoadedModel, explanation: ImageExplanation, evidence: PrototypeEvidence, slot: str,
                sets: dict[int, str]) -> None:
    """One card as a flex row that wraps on narrow screens: this | looks like | patch | source | numbers."""
    panels = panels_of(explanation, evidence, loaded.model.input_spec.image_size)
    low, high = evidence.heat_range
    overlay = enlarge(panels.overlay, PICTURE)  # small inputs pixel-doubled, so the scale's numbers stay sharp
    this = with_colour_scale(overlay, low, high)
    side = "" if evidence.side == "for" else "-against"
    with st.container(border=True, key=f"prototype-card-{slot}{side}-{evidence.rank}", horizontal=True,
                      vertical_alignment="center", gap="small"):
        st.image(this, width=round(PICTURE * this.shape[1] / overlay.shape[1]),
                 caption=f"#{evidence.rank} {evidence.side}: this")
        st.markdown("**looks like**", width="content")
        _picture(panels.patch, "prototype patch")
        _picture(panels.source, "source image" if evidence.source is None
                 else f"source: {evidence.source.image_id}")
        with st.container(width=NUMBERS_WIDTH):
            kind = f" · {sets[evidence.index]} prototype" if evidence.index in sets else ""
            st.markdown(
                f"**Prototype {evidence.index}** · class *{evidence.prototype_class_name}*{kind}  \n"
                f"similarity **{evidence.similarity:.3f}** × weight **{evidence.weight:+.3f}**  \n"
                f"= contribution **{evidence.contribution:+.3f}**")
            y0, y1, x0, x1 = evidence.box
            st.caption(f"box rows {y0}-{y1}, cols {x0}-{x1} · max at map cell {evidence.map_location} · "
                       "heatmap colours from {} (blue) to {} (red)".format(*scale_labels(low, high)))
            if evidence.source is not None and evidence.source.boxes_differ:
                st.caption("The box the original push wrote is elsewhere: it was drawn before the push "
                           "replaced the prototype. Shown: where the prototype itself fires.")
            st.button("Open prototype card", key=f"open-{slot}{side}-{evidence.rank}", type="tertiary",
                      icon=":material/open_in_new:", on_click=open_card, args=(loaded.name, evidence.index))


def open_card(model_name: str, prototype: int) -> None:
    """Button callback: preselect the model and prototype on the Prototypes page, then go there."""
    st.session_state[PROTOTYPES_MODEL_KEY] = model_name
    st.session_state[PROTOTYPES_SELECTED_KEY] = prototype
    st.session_state[PROTOTYPES_OPEN_CARD_FLAG] = True
    st.session_state[OPEN_CARD_FLAG] = True


def _picture(picture: np.ndarray | None, caption: str) -> None:
    if picture is None:
        st.caption(f"{caption}: unknown (the model was not pushed)", width=PICTURE)
    else:
        st.image(picture, width=PICTURE, caption=caption)


def class_choice(loaded: LoadedModel, explanation: ImageExplanation, slot: str) -> int:
    """The class whose score to explain: the predicted one, or any other on request."""
    names = loaded.model.class_names
    options = [PREDICTED, *range(len(names))]
    choice = st.selectbox("Explain the score of", options, key=f"explain.class.{slot}", width=420,
                          format_func=lambda c: f"the predicted class ({explanation.predicted_name})"
                          if c == PREDICTED else names[c],
                          help="Evidence for and against any class, e.g. the runner-up: why not that one?")
    return explanation.predicted if choice in (PREDICTED, None) else int(choice)


def render_explanation(loaded: LoadedModel, image: NamedImage, default: ImageExplanation, top_k: int, method: str,
                       slot: str) -> None:
    """One model on one image: what it is, the prediction, the class to explain, its cards and decision."""
    summary = loaded.summary
    with st.container(border=True):
        map_h, map_w = default.map_size
        st.markdown(f"#### {loaded.name}")
        st.caption(f"{summary.family_label or summary.family} · {summary.backbone} · heatmaps: {map_h}x{map_w} "
                   f"similarity maps, {get_method(default.settings.get('heatmap_method', 'upsample')).label}, "
                   f"{default.percentile:g}th-percentile boxes  \n"
                   f"**Similarity** ({summary.similarity}): {summary.similarity_unit}")
        for warning in default.warnings:
            st.warning(warning, icon=":material/photo_size_select_small:")
        wanted = class_choice(loaded, default, slot)
        explanation = default if wanted == default.explained_class else \
            compute(loaded, [image], top_k, method, target=wanted)[0]
        render_header(loaded, explanation, slot)
        sets = prototype_sets(loaded, explanation)
        for side, title in SIDES.items():
            shown = [e for e in explanation.cards if e.side == side]
            word = "raise" if side == "for" else "lower"
            st.markdown(f"**{title}** — the prototypes that most {word} the score of *{explanation.explained_name}*"
                        f" (this looks like that)")
            if not shown:
                st.caption(f"No prototype {word}s this score.")
            for evidence in shown:
                render_card(loaded, explanation, evidence, slot, sets)
        render_decision(loaded, explanation, slot)


def render_decision(loaded: LoadedModel, explanation: ImageExplanation, slot: str) -> None:
    """The waterfall of the class score, the sentence saying how it adds up, and the family's reading."""
    st.markdown("**The whole decision**")
    figure = waterfall_of(explanation)
    if figure is not None:
        st.plotly_chart(figure, key=f"explain.waterfall.{slot}")
        stem = f"{loaded.name}_{explanation.name.rsplit('.', 1)[0]}_decision"
        figure_downloads(figure, stem, key=f"{slot}.waterfall", label="Download this chart")
    st.info(sum_line(explanation), icon=":material/functions:")
    if explanation.decision is not None:
        st.caption(f"How {loaded.summary.family_label or loaded.summary.family} decides: "
                   f"{explanation.decision.reading}")
    render_decision_path(loaded, explanation, slot)


def render_decision_path(loaded: LoadedModel, explanation: ImageExplanation, slot: str) -> None:
    """ProtoTree only: the image's greedy root-to-leaf path through the tree of prototypes."""
    model = loaded.model
    if not isinstance(model, ProtoTree):
        return
    x = preprocess([Image.fromarray(explanation.image)], model.input_spec).to(loaded.device)
    with loaded.lock:
        path = model.decision_path(x)
    st.markdown("**Decision path** — at each branch the path goes right when the prototype is present "
                "(similarity > 0.5), as ProtoTree's greedy routing")
    rows = path.as_rows()
    st.dataframe({key: [row[key] for row in rows] for key in rows[0]} if rows else {}, hide_index=True)
    best = max(path.leaf_distribution)
    stem = f"{loaded.name}_{explanation.name.rsplit('.', 1)[0]}"
    st.download_button("Decision path (JSON)", json.dumps(path.as_record(), indent=2).encode(),
                       f"{stem}_decision_path.json", "application/json", key=f"{slot}.path.json",
                       on_click="ignore", icon=":material/data_object:")
    st.caption(f"leaf node {path.leaf_node} predicts **{model.class_names[path.predicted_class]}** "
               f"({best:.1%}); the probabilities above mix all leaves, weighted by their path probabilities.")


def main() -> None:
    if st.session_state.pop(OPEN_CARD_FLAG, False):
        st.switch_page(PROTOTYPES_PAGE)
    st.title("Explain: this looks like that")
    st.caption("Which prototypes an image activates, where, and how much each one adds to (or takes from) a "
               "class's score.")
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            model_names = model_picker("explain.models", multi=True)
            top_k = st.slider("Prototypes per side (for / against)", 1, 20, 5, key="explain.top_k")
            method = st.selectbox("Heatmap method", list_methods(), key="explain.method",
                                  format_func=lambda n: get_method(n).label)
        with right:
            images = image_picker("explain.images")
            with st.expander("…or pick images from a dataset, by class", icon=":material/folder_open:",
                             expanded=bool(st.session_state.get(DATASET_OPEN))):
                picked = dataset_image_picker("explain.dataset")
            st.session_state[DATASET_OPEN] = bool(picked)
            images = [*images, *picked]
    if not model_names or not images:
        st.info("Choose at least one model and one image (upload, a bundled sample, or a dataset's images).",
                icon=":material/arrow_upward:")
        return
    loaded_models: list[LoadedModel] = []
    for name in model_names:
        try:
            loaded_models.append(get_model(name))
        except ProtovizError as error:
            show_error(error)
    explained: dict[str, list[ImageExplanation]] = {}
    with st.spinner("Explaining ..."):
        for loaded in loaded_models:
            try:
                explained[loaded.name] = compute(loaded, images, int(top_k), method)
            except Exception as error:  # noqa: BLE001 - shown on the page, never as a traceback
                show_error(error)
    tabs = st.tabs([image.name for image in images]) if len(images) > 1 else [st.container()]
    for i, tab in enumerate(tabs):
        with tab:
            for loaded in loaded_models:
                if loaded.name not in explained:
                    continue
                slot = f"{loaded_models.index(loaded)}-{i}"
                try:
                    render_explanation(loaded, images[i], explained[loaded.name][i], int(top_k), method, slot)
                except Exception as error:  # noqa: BLE001 - shown on the page, never as a traceback
                    show_error(error)


main()
