"""Prototypes: a gallery of one model's prototypes by class, and a card gathering what is known about one.

The card shows the prototype's push source (patch, and source image with box), its class weights, its
top-k most activating patches on a chosen dataset (one batched pass, shared with the Compare page,
kept in the session), its near-duplicates, the scores other pages computed for it this session, and
the latent-space view of all prototypes with their nearest patches. The work is in protoviz.compare.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import streamlit as st

from app.cache import LoadedModel
from app.compare_runs import (
    NAMESPACE,
    compute_characteristics,
    compute_part_scores,
    compute_run,
    dataset_widget,
    model_scores,
    open_dataset_cached,
    prototype_scores,
    session_scores,
    stored_run,
)
from app.state import available_models, get_model, session_results
from app.widgets import figure_downloads, model_picker, show_error
from protoviz.compare.card import prototype_facts, topk_patch_views
from protoviz.compare.latent import latent_view, prototype_classes
from protoviz.compare.matching import duplicate_rule
from protoviz.compare.summary import CompareConfig, ModelRun
from protoviz.compare.topk import TopKConfig
from protoviz.errors import ProtovizError
from protoviz.models.labels import prototype_set
from protoviz.viz.compare import latent_scatter
from protoviz.viz.gallery import class_weight_bars, fit_tile, patch_strip, score_bars, tile_grid, tile_row
from protoviz.viz.overlay import enlarge
from protoviz.viz.scale import with_colour_scale

TILE = 112
PAGE_SIZE = 48
TABS = ("Gallery", "Prototype card", "Latent space")
TAB_KEY = "prototypes.tab"


# ----- gallery ----------------------------------------------------------------------------------
def gallery(loaded: LoadedModel, run: ModelRun | None) -> None:
    model = loaded.model
    classes = prototype_classes(model)
    names = ["all classes", *model.class_names]
    chosen = st.selectbox("Class", names, key="prototypes.class_filter")
    members = np.flatnonzero(classes == names.index(chosen) - 1) if chosen != names[0] else np.arange(len(classes))
    pages = max(1, -(-len(members) // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="prototypes.page") if pages > 1 else 1
    shown = members[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    sources = model.prototype_sources
    groups = loaded.summary.prototype_groups
    st.caption(_model_line(loaded) + (" · prototype sets: " + ", ".join(
        f"{name} #{start}-#{end - 1}" for name, (start, end) in groups.items()) if len(groups) > 1 else ""))
    tiles, captions = [], []
    flags = _duplicate_set(run)
    for j in shown.tolist():  # one picture per shown prototype; captions short words (the class heads the row)
        source = sources[j] if j < len(sources) else None
        patch = source.patch_thumbnail if source is not None else None
        words = [f"#{j}", prototype_set(groups, j) or ""]
        if patch is None and run is not None and run.topk.thumbnails is not None and bool(run.topk.filled()[j, 0]):
            tiles.append(fit_tile(run.topk.thumbnails[j, 0], TILE))
            words.append("top patch")
        else:
            tiles.append(fit_tile(patch, TILE))
        words.append("⚠ duplicate" if j in flags else "")
        captions.append(" · ".join(w for w in words if w))
    if not tiles:
        st.info("No prototypes in this class.")
        return
    for c in dict.fromkeys(classes[shown].tolist()):  # one row group per class, in prototype order
        rows = [i for i, j in enumerate(shown.tolist()) if classes[j] == c]
        st.markdown(f"**{_class_name(model, c)}** · {len(rows)} prototype(s)")
        st.image([tiles[i] for i in rows], caption=[captions[i] for i in rows], width=TILE)
    if flags:
        st.caption(f"⚠ duplicate: {len(flags)} of {len(classes)} prototypes. {_rule(run)}")
    figure_downloads(tile_grid(tiles, 8), f"{loaded.name}_gallery", key="prototypes.gallery_figure",
                     label="Download the gallery")


def _class_name(model: Any, index: int) -> str:
    return model.class_names[index] if index >= 0 else "no class"


def _model_line(loaded: LoadedModel) -> str:
    summary = loaded.summary
    return (f"{summary.family_label or summary.family} · {summary.num_prototypes} prototypes · similarity: "
            f"{summary.similarity_unit}")


def _duplicate_set(run: ModelRun | None) -> set[int]:
    return set() if run is None else {i for pair in run.duplicates for i in (pair.a, pair.b)}


# ----- the card -----------------------------------------------------------------------------------
def card(loaded: LoadedModel, index: int, run: ModelRun | None, dataset: Any, source_key: tuple[str | None, str],
         config: CompareConfig) -> None:
    model = loaded.model
    facts = prototype_facts(model, index, run.duplicates if run is not None else None)
    with st.container(border=True, key="prototype-card"):
        st.subheader(f"Prototype {index} · class {facts.own_class_name}")
        kind = prototype_set(loaded.summary.prototype_groups, index)
        st.caption((f"{kind} prototype · " if kind else "") + f"{loaded.summary.family_label or loaded.summary.family}"
                   f" · model {loaded.name} · sha256 {(loaded.sha256 or '-')[:12]}")
        patch_col, source_col, weights_col = st.columns([1, 1, 2])
        source = facts.source
        patch_col.image(fit_tile(source.patch_thumbnail if source else None, 160), caption="source patch (push)")
        source_col.image(facts.source_image if facts.source_image is not None else fit_tile(None, 160),
                         caption=f"source image: {source.image_id}" if source else "source image unknown", width=160)
        with weights_col:
            weights = class_weight_bars(facts.weights, model.class_names, facts.own_class)
            st.plotly_chart(weights, key="prototypes.weights")
            figure_downloads(weights, f"{loaded.name}_prototype{index}_weights", key="prototypes.weights_figure")
        rule = _rule(run)
        if facts.duplicates:
            st.warning("Near-duplicate of " + ", ".join(
                f"#{o} (r={_fmt(r)}, cos={_fmt(c)})" for o, r, c in facts.duplicates) + ". " + rule,
                icon=":material/content_copy:")
        elif run is not None:
            st.caption(f"No near-duplicate among this model's prototypes. {rule}")
        topk_section(loaded, index, run, dataset)
        other_scores(loaded, index, dataset, source_key, config)
        st.download_button("Card facts (JSON)", json.dumps(facts.as_record(), indent=2, default=str),
                           f"{loaded.name}_prototype{index}.json", "application/json", key="prototypes.card_json",
                           on_click="ignore", icon=":material/data_object:")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _rule(run: ModelRun | None) -> str:
    """The sentence saying when this run flags near-duplicates (its own thresholds and profile)."""
    if run is None:
        return duplicate_rule()
    settings = run.settings
    return duplicate_rule(float(settings.get("duplicate_correlation", 0.99)),
                          float(settings.get("duplicate_cosine", 0.99)),
                          bool(settings.get("duplicate_require_both", True)),
                          str((settings.get("profile") or {}).get("kind", "parts")), True, run.num_images)


def topk_section(loaded: LoadedModel, index: int, run: ModelRun | None, dataset: Any) -> None:
    st.markdown("**Top-k most activating patches**")
    if run is None:
        st.info("Compute the top-k patches above (one pass over the chosen dataset).", icon=":material/info:")
        return
    topk = run.topk
    if topk.thumbnails is not None:
        strip, captions = patch_strip(topk.thumbnails[index], topk.values[index].numpy(), tile=96)
        st.image(strip, caption="patch crops, similarity " + " · ".join(captions))
    from protoviz.heatmaps.methods import list_methods

    method = st.selectbox("Heatmap method", list_methods(), key="prototypes.method")
    views_key = ("views", loaded.name, loaded.sha256, id(run), index, method)
    cache = session_results(NAMESPACE)
    if views_key not in cache:
        with st.spinner("Drawing heatmaps of the top-k images ..."), loaded.lock:
            cache[views_key] = topk_patch_views(loaded.model, dataset, topk, index, method=method)
    views = cache[views_key]
    if views:
        pictures = [with_colour_scale(enlarge(v.overlay, 128), *v.heat_range) for v in views]
        st.image(pictures, width=180, caption=[f"#{v.rank}: {v.image_id} · sim {v.similarity:.3f}" for v in views])
        height = max(p.shape[0] for p in pictures)
        strip = tile_row([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255)
                          for p in pictures])
        figure_downloads(strip, f"{loaded.name}_prototype{index}_topk_{method}", key="prototypes.topk_figure",
                         label="Download the top-k heatmaps")
    st.download_button("Top-k patches (CSV)", _topk_csv(run, index), f"{loaded.name}_prototype{index}_topk.csv",
                       "text/csv", key="prototypes.topk_csv", on_click="ignore", icon=":material/table:")
    st.caption(f"{topk.config.k} patches ({topk.config.per_image} per image) over {run.num_images} images; "
               f"boxes: {topk.config.box_scale:g}x map cell for crops, 95th percentile for heatmaps.")


def _topk_csv(run: ModelRun, index: int) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "dataset_index", "similarity", "row", "col", "y0", "y1", "x0", "x1"])
    topk = run.topk
    for rank in range(topk.config.k):  # k rows
        if bool(topk.filled()[index, rank]):
            writer.writerow([rank + 1, int(topk.images[index, rank]), float(topk.values[index, rank]),
                             *topk.cells[index, rank].tolist(), *topk.boxes[index, rank].tolist()])
    return buffer.getvalue().encode()


def other_scores(loaded: LoadedModel, index: int, dataset: Any, source: tuple[str | None, str],
                 config: CompareConfig) -> None:
    """Colour/shape/texture importance and consistency/stability where computed; buttons for what is not."""
    from protoviz.explain.global_ import GlobalExplanation

    chars_col, parts_col = st.columns(2)
    with chars_col:
        found = session_scores(loaded, GlobalExplanation)
        if found:
            result = found[-1]
            bars = score_bars(result.vector(index), f"characteristic importance ({result.num_images} images)")
            st.plotly_chart(bars, key="prototypes.characteristics")
            figure_downloads(bars, f"{loaded.name}_prototype{index}_characteristics",
                             key="prototypes.characteristics_figure")
        else:
            st.caption("Colour/shape/texture/contrast/saturation importance not computed yet.")
            if dataset is not None and st.button("Compute characteristics", key="prototypes.compute_chars"):
                compute_characteristics(loaded, dataset, config.max_images)
                st.rerun()
    with parts_col:
        found_scores = prototype_scores(loaded, index)
        if found_scores is not None:
            facts, origin = found_scores
            headline = model_scores(loaded)
            st.markdown("**Model scores**: " + " · ".join(f"{k} {v:.1f}" for k, v in headline.items()
                                                         if k in ("consistency", "stability")))
            st.caption(f"This prototype ({origin}):")
            st.dataframe({"property": list(facts), "value": [_text(v) for v in facts.values()]}, hide_index=True)
        else:
            st.caption("Consistency, stability and dominant part not computed yet.")
            has_parts = dataset is not None and getattr(dataset, "has_parts", False)
            if dataset is not None and not has_parts:
                st.caption(f"Unavailable on this dataset: {getattr(dataset, 'parts_reason', 'no part annotations')}")
            if has_parts and st.button("Compute consistency and stability", key="prototypes.compute_parts"):
                compute_part_scores(loaded, dataset, source[0], source[1], config)
                st.rerun()


def _text(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# ----- latent space ---------------------------------------------------------------------------------
def latent_section(loaded: LoadedModel, run: ModelRun | None) -> None:
    if run is None or run.topk.latents is None:
        st.info("Compute the top-k patches first: the view shows prototypes and their nearest patches.")
        return
    view = latent_view(loaded.model, run.topk)
    figure = latent_scatter(view.prototype_xy, view.prototype_class, view.patch_xy, view.patch_filled,
                            loaded.model.class_names, view.explained, run.topk.values.numpy(),
                            title=f"{loaded.name}: prototypes (stars) and their top-k patches (dots)")
    plot_col, pick_col = st.columns([3, 1])
    with plot_col:
        event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="prototypes.latent")
        figure_downloads(figure, f"{loaded.name}_latent", key="prototypes.latent_figure")
    with pick_col:
        st.markdown("**Selected point**")
        points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
            getattr(getattr(event, "selection", None), "points", [])
        if not points:
            st.caption("Click a point to see its patch.")
        for point in points[:3]:
            proto, rank = int(point["customdata"][0]), int(point["customdata"][1])
            if rank < 0:
                st.markdown(f"prototype #{proto}")
                source = loaded.model.prototype_sources[proto] if proto < len(loaded.model.prototype_sources) else None
                st.image(fit_tile(source.patch_thumbnail if source else None, 120))
            elif run.topk.thumbnails is not None:
                st.image(fit_tile(run.topk.thumbnails[proto, rank], 120),
                         caption=f"patch {rank + 1} of prototype #{proto}")
    st.caption(f"PCA of {len(view.prototype_xy)} prototype vectors and their patch latents"
               + (" (unit-normalised: cosine model)" if view.normalised else ""))


OPEN_CARD_FLAG = "prototypes.open_card"  # another page sets it (with the two keys below) before switch_page


def apply_link() -> bool:
    """Preselect the model and prototype a link asked for, ``?model=NAME&prototype=J``; True when a card
    was asked for, by such a link or by another page that set ``prototypes.model``/``prototypes.selected``
    and ``OPEN_CARD_FLAG`` in the session before ``st.switch_page``."""
    if st.session_state.pop(OPEN_CARD_FLAG, False):
        return True
    model, prototype = st.query_params.get("model"), st.query_params.get("prototype")
    if not model:
        return False
    if st.session_state.get("prototypes.link") != (model, prototype):  # apply each link once
        st.session_state["prototypes.link"] = (model, prototype)
        if model in available_models():
            st.session_state["prototypes.model"] = model
        if prototype is not None and prototype.isdigit():
            st.session_state["prototypes.selected"] = int(prototype)
    return prototype is not None


def main() -> None:
    linked = apply_link()
    st.title("Prototypes")
    st.caption("Every prototype of a model by class; a card per prototype with its source, top-k patches, "
               "class weights and every score computed this session.")
    name = model_picker("prototypes.model")
    if not name:
        return
    try:
        loaded = get_model(name)
    except ProtovizError as error:
        show_error(error)
        return
    with st.container(border=True):
        st.markdown("**Top-k patches** — one batched pass of the model over a dataset")
        folder, split, limit = dataset_widget("prototypes.data")
        k = st.slider("Patches per prototype (k)", 1, 16, 5, key="prototypes.k")
        config = CompareConfig(topk=TopKConfig(k=k), max_images=limit)
        compute = st.button("Compute top-k patches", key="prototypes.compute", icon=":material/play_arrow:")
    run, dataset = None, None
    try:
        run = stored_run(loaded, folder, split, config)
        if compute or run is not None or st.session_state.get("prototypes.dataset_opened"):
            dataset = open_dataset_cached(folder, split)
            st.session_state["prototypes.dataset_opened"] = True
        if compute:
            run = compute_run(loaded, dataset, folder, split, config)
    except ProtovizError as error:
        show_error(error)
    if st.session_state.get("prototypes.selected", 0) >= loaded.model.num_prototypes:
        st.session_state["prototypes.selected"] = 0  # a link or another model's choice out of range
    if linked:  # a link or another page asked for a card: show it
        st.session_state[TAB_KEY] = TABS[1]
    # the tabs keep their state, so a rerun (e.g. "Compute top-k patches" on the card) stays on the same tab
    gallery_tab, card_tab, latent_tab = st.tabs(list(TABS), key=TAB_KEY, on_change="rerun")
    with gallery_tab:
        gallery(loaded, run)
    with card_tab:
        classes = prototype_classes(loaded.model)
        index = st.selectbox("Prototype", list(range(loaded.model.num_prototypes)), key="prototypes.selected",
                             format_func=lambda j: f"#{j} · {_class_name(loaded.model, classes[j])}")
        try:
            card(loaded, int(index), run, dataset, (folder, split), config)
        except ProtovizError as error:
            show_error(error)
    with latent_tab:
        try:
            latent_section(loaded, run)
        except ProtovizError as error:
            show_error(error)


main()
