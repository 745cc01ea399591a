"""Explain (home page): which prototypes an image activates, where, and how much each contributes.

Per model and image: the image with the predicted class and top-5 probabilities, then one card per
top prototype: [image with the prototype's heatmap and box] looks like [the prototype's source patch
and source image] -> similarity x weight = contribution; the contributions of all prototypes sum to
the class logit. The work is :func:`protoviz.heatmaps.explain_image`; this file only lays it out.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from app.cache import LoadedModel
from app.state import get_model, session_results
from app.widgets import NamedImage, image_picker, model_picker, show_error
from protoviz.data.transforms import preprocess
from protoviz.device import batches
from protoviz.errors import ProtovizError
from protoviz.heatmaps import ImageExplanation, PrototypeEvidence, explain_image
from protoviz.heatmaps.methods import get_method, list_methods
from protoviz.heatmaps.methods.explain import explanation_with_method
from protoviz.models.prototree import ProtoTree
from protoviz.viz.figures import EvidencePanels, FigureRow, evidence_panels, explanation_figure, figure_png

MAX_KEPT_RESULTS = 64
BATCH_SIZE = 16
PICTURE_WIDTH = 170
PROTOTYPES_PAGE = "views/prototypes.py"
PROTOTYPES_MODEL_KEY = "prototypes.model"  # widget keys of the Prototypes page
PROTOTYPES_SELECTED_KEY = "prototypes.selected"
PROTOTYPES_OPEN_CARD_FLAG = "prototypes.open_card"  # tells the Prototypes page to show the card itself
OPEN_CARD_FLAG = "explain.open_card"


def compute(loaded: LoadedModel, images: Sequence[NamedImage], top_k: int,
            method: str = "upsample") -> list[ImageExplanation]:
    """Explanations of ``images`` by one model, computed once per session (batched, under the model's lock)."""
    results = session_results("explain")
    keys = [(loaded.name, loaded.sha256, image.key, top_k, method) for image in images]
    missing = [i for i, key in enumerate(keys) if key not in results]
    for chunk in batches(missing, BATCH_SIZE):
        with loaded.lock:
            fresh = explain_image(loaded.model, [images[i].image for i in chunk], top_k=top_k,
                                  names=[images[i].name for i in chunk])
            fresh = [explanation_with_method(loaded.model, explanation, method) for explanation in fresh]
        for i, explanation in zip(chunk, fresh, strict=True):
            results[keys[i]] = explanation
    while len(results) > MAX_KEPT_RESULTS:
        results.pop(next(iter(results)))
    return [results[key] for key in keys]


def panels_of(loaded: LoadedModel, explanation: ImageExplanation, evidence: PrototypeEvidence) -> EvidencePanels:
    source = evidence.source
    return evidence_panels(
        explanation.image, evidence.heatmap, evidence.box, loaded.model.input_spec.image_size,
        source_image=source.image_thumbnail if source is not None else None,
        source_box=source.box if source is not None else None,
        patch=source.patch_thumbnail if source is not None else None)


def evidence_text(evidence: PrototypeEvidence) -> str:
    return (f"prototype {evidence.index} (class {evidence.prototype_class_name})\n"
            f"similarity {evidence.similarity:.3f} x weight {evidence.weight:+.3f}\n"
            f"= contribution {evidence.contribution:+.3f}")


def sum_line(explanation: ImageExplanation) -> str:
    line = (f"Sum of all {len(explanation.contributions)} prototypes' contributions = "
            f"{explanation.total_contribution:.4f}; score of '{explanation.predicted_name}' = "
            f"{explanation.class_logit:.4f}. The {len(explanation.prototypes)} shown contribute "
            f"{explanation.shown_contribution:.4f}.")
    if not explanation.sums_to_logit:
        line += (" This model's head is not a plain linear layer over the prototypes' similarities "
                 "(e.g. a tree, a threshold or a bias), so the contributions are a guide, not an exact split.")
    return line


def figure_bytes(loaded: LoadedModel, explanation: ImageExplanation) -> bytes:
    """The whole explanation as one PNG (built only when the download button is clicked)."""
    classes = "\n".join(f"{name:<16} {p:6.1%}" for _, name, p in explanation.top_classes)
    title = f"{explanation.name}  |  model {loaded.name}\npredicted: {explanation.predicted_name}\n{classes}"
    rows = [FigureRow(panels_of(loaded, explanation, ev), evidence_text(ev)) for ev in explanation.prototypes]
    return figure_png(explanation_figure(explanation.image, title, rows, footer=sum_line(explanation)))


def csv_bytes(explanation: ImageExplanation, model_name: str) -> bytes:
    rows = [{"model": model_name, **row} for row in explanation.contribution_rows()]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def json_bytes(loaded: LoadedModel, explanation: ImageExplanation) -> bytes:
    record = {**explanation.as_record(), "model": loaded.provenance()}
    return json.dumps(record, indent=2).encode()


def render_header(loaded: LoadedModel, explanation: ImageExplanation, slot: str) -> None:
    picture, classes, downloads = st.columns([1, 2, 1])
    height, width = explanation.image.shape[:2]
    picture.image(explanation.image, width=PICTURE_WIDTH, caption=f"as the model sees it ({height}x{width})")
    with classes:
        best = explanation.top_classes[0]
        st.markdown(f"**Predicted: {explanation.predicted_name}** ({best[2]:.1%})")
        st.dataframe({"class": [n for _, n, _ in explanation.top_classes],
                      "probability": [p for _, _, p in explanation.top_classes]}, hide_index=True,
                     column_config={"probability": st.column_config.ProgressColumn(
                         "probability", format="percent", min_value=0.0, max_value=1.0)})
    stem = f"{loaded.name}_{explanation.name.rsplit('.', 1)[0]}"
    with downloads:
        st.download_button("Figure (PNG)", lambda: figure_bytes(loaded, explanation), f"{stem}.png",
                           "image/png", key=f"{slot}.png", on_click="ignore", icon=":material/image:")
        st.download_button("Contributions (CSV)", csv_bytes(explanation, loaded.name), f"{stem}.csv", "text/csv",
                           key=f"{slot}.csv", on_click="ignore", icon=":material/table:")
        st.download_button("Explanation (JSON)", json_bytes(loaded, explanation), f"{stem}.json",
                           "application/json", key=f"{slot}.json", on_click="ignore", icon=":material/data_object:")


def render_card(loaded: LoadedModel, explanation: ImageExplanation, evidence: PrototypeEvidence, slot: str) -> None:
    panels = panels_of(loaded, explanation, evidence)
    with st.container(border=True, key=f"prototype-card-{slot}-{evidence.rank}"):
        this, words, patch, source, numbers = st.columns([1, 0.45, 1, 1, 1.5], vertical_alignment="center")
        this.image(panels.overlay, width=PICTURE_WIDTH, caption=f"#{evidence.rank}: this")
        words.markdown("looks like")
        _picture(patch, panels.patch, "prototype patch")
        _picture(source, panels.source, "source image" if evidence.source is None
                 else f"source: {evidence.source.image_id}")
        numbers.markdown(
            f"**Prototype {evidence.index}** · class *{evidence.prototype_class_name}*  \n"
            f"similarity **{evidence.similarity:.3f}** × weight **{evidence.weight:+.3f}**  \n"
            f"= contribution **{evidence.contribution:+.3f}**")
        y0, y1, x0, x1 = evidence.box
        numbers.caption(f"box rows {y0}-{y1}, cols {x0}-{x1} · max at map cell {evidence.map_location}")
        numbers.button("Open prototype card", key=f"open-{slot}-{evidence.rank}", type="tertiary",
                       icon=":material/open_in_new:", on_click=open_card, args=(loaded.name, evidence.index))


def open_card(model_name: str, prototype: int) -> None:
    """Button callback: preselect the model and prototype on the Prototypes page, then go there."""
    st.session_state[PROTOTYPES_MODEL_KEY] = model_name
    st.session_state[PROTOTYPES_SELECTED_KEY] = prototype
    st.session_state[PROTOTYPES_OPEN_CARD_FLAG] = True
    st.session_state[OPEN_CARD_FLAG] = True


def _picture(column: DeltaGenerator, picture: np.ndarray | None, caption: str) -> None:
    if picture is None:
        column.caption(f"{caption}: unknown (the model was not pushed)")
    else:
        column.image(picture, width=PICTURE_WIDTH, caption=caption)


def render_explanation(loaded: LoadedModel, explanation: ImageExplanation, slot: str) -> None:
    with st.container(border=True):
        map_h, map_w = explanation.map_size
        st.markdown(f"#### {loaded.name}")
        st.caption(f"{loaded.summary.family} · {loaded.summary.backbone} · {loaded.summary.similarity} similarity · "
                   f"heatmaps: {map_h}x{map_w} similarity maps, "
                   f"{get_method(explanation.settings.get('heatmap_method', 'upsample')).label}, "
                   f"{explanation.percentile:g}th-percentile boxes")
        render_header(loaded, explanation, slot)
        st.markdown("**This looks like that** — prototypes ranked by contribution to the predicted class")
        for evidence in explanation.prototypes:
            render_card(loaded, explanation, evidence, slot)
        render_decision_path(loaded, explanation, slot)
        st.info(sum_line(explanation), icon=":material/functions:")


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
    st.caption("Which prototypes an image activates, where, and how much each one adds to the predicted class.")
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            model_names = model_picker("explain.models", multi=True)
            top_k = st.slider("Prototypes per image", 1, 20, 5, key="explain.top_k")
            method = st.selectbox("Heatmap method", list_methods(), key="explain.method",
                                  format_func=lambda n: get_method(n).label)
        with right:
            images = image_picker("explain.images")
    if not model_names or not images:
        st.info("Choose at least one model and one image (upload, or pick a bundled sample).",
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
                if loaded.name in explained:
                    slot = f"{loaded_models.index(loaded)}-{i}"
                    render_explanation(loaded, explained[loaded.name][i], slot=slot)


main()
