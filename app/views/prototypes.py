"""Prototypes: a gallery of one model's prototypes, and a card gathering what is known about one.

The gallery is paginated and filterable (class, near-duplicates, any known per-prototype score with a
range), so a CUB-scale model (200 classes x 10 prototypes) stays quick: only the shown page is drawn.
The card shows the prototype's push source, its class weights, its top-k most activating patches on a
chosen dataset, its near-duplicates, the scores other work keeps for it, and the latent-space view of
all prototypes with their nearest patches (PCA, t-SNE or PaCMAP). The dataset pass is a background job
kept in the workspace (:mod:`app.compare_runs`), shared with the Compare page; the work is in
protoviz.compare.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from app.cache import LoadedModel
from app.compare_runs import (
    EVALUATE_KIND,
    PASS_KIND,
    WHY_KIND,
    Probe,
    characteristics_key,
    dataset_widget,
    has_runs,
    keyed_results,
    model_pass,
    model_results,
    open_probe,
    part_scores_key,
    pass_key,
    projected,
    projection_picker,
    source_caption,
    start_characteristics,
    start_part_scores,
)
from app.state import available_models, get_model
from app.widgets import figure_downloads, model_picker, plain, show_error
from protoviz.compare.card import PatchView, prototype_facts, topk_patch_views
from protoviz.compare.latent import PROJECTION_LABELS, prototype_classes
from protoviz.compare.matching import duplicate_flags, duplicate_rule
from protoviz.compare.report import latent_figure
from protoviz.compare.summary import CompareConfig, ModelRun
from protoviz.compare.topk import TopKConfig
from protoviz.errors import ProtovizError
from protoviz.models.labels import prototype_set
from protoviz.tables import csv_text
from protoviz.viz.gallery import class_weight_bars, fit_tile, patch_strip, score_bars, tile_grid, tile_row
from protoviz.viz.overlay import enlarge
from protoviz.viz.scale import with_colour_scale

TILE = 112
PAGE_SIZES = (24, 48, 96)
TABS = ("Gallery", "Prototype card", "Latent space")
TAB_KEY = "prototypes.tab"
ALL_CLASSES = "all classes"
SHOW = ("all prototypes", "near-duplicates only", "without a near-duplicate")
ORDER = "prototype order"
OPENED = "prototypes.dataset_opened"


# ----- gallery ----------------------------------------------------------------------------------
def known_scores(run: ModelRun | None, evaluation: Any) -> dict[str, np.ndarray]:
    """Per-prototype scores known for this model, by name: (P,) float arrays, NaN where unknown.

    From the top-k pass: the best and the mean top-k similarity; from a stored evaluation: every numeric
    per-prototype column (consistency, dominant frequency ...)."""
    scores: dict[str, np.ndarray] = {}
    if run is not None:
        values = run.topk.values.double().numpy()
        known = np.isfinite(values)
        count = known.sum(axis=1)
        scores["top-1 patch similarity"] = np.where(known[:, 0], values[:, 0], np.nan)
        scores["mean top-k similarity"] = np.where(count > 0, np.where(known, values, 0.0).sum(axis=1)
                                                   / np.maximum(count, 1), np.nan)
    if evaluation is not None:
        rows = getattr(evaluation, "prototypes", None) or []
        columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c not in ("prototype", "class")]
        for column in columns:
            cells = [row.get(column) for row in rows]
            if all(v is None or isinstance(v, (bool, int, float)) for v in cells) and any(v is not None for v in cells):
                scores[column] = np.array([np.nan if v is None else float(v) for v in cells])
    return scores


def chosen_prototypes(classes: np.ndarray, names: list[str], flags: np.ndarray, scores: dict[str, np.ndarray],
                      choice: str, show: str, score: str, low_first: bool, bounds: tuple[float, float] | None
                      ) -> np.ndarray:
    """The prototype indices the gallery shows, in order: filtered by class, duplicates and a score range,
    sorted by the score (unknown values last) or in prototype order."""
    members = np.arange(len(classes))
    if choice != ALL_CLASSES:
        members = members[classes == names.index(choice)]
    if show == SHOW[1]:
        members = members[flags[members]]
    elif show == SHOW[2]:
        members = members[~flags[members]]
    if score != ORDER:
        values = scores[score][members]
        if bounds is not None:
            keep = np.isfinite(values) & (values >= bounds[0]) & (values <= bounds[1])
            members, values = members[keep], values[keep]
        key = np.where(np.isfinite(values), values if low_first else -values, np.inf)
        members = members[np.argsort(key, kind="stable")]
    return members


def gallery_filters(loaded: LoadedModel, scores: dict[str, np.ndarray]) -> tuple[str, str, str, bool, Any, int]:
    model = loaded.model
    class_col, show_col, score_col, size_col = st.columns([2, 2, 2, 1])
    choice = class_col.selectbox("Class", [ALL_CLASSES, *model.class_names], key="prototypes.class_filter")
    show = show_col.selectbox("Show", SHOW, key="prototypes.show")
    score = score_col.selectbox("Sort and filter by", [ORDER, *scores], key="prototypes.score",
                                help="Scores known for this model: from the top-k pass, and per-prototype columns of "
                                     "a kept evaluation")
    size = int(size_col.selectbox("Per page", PAGE_SIZES, index=1, key="prototypes.page_size"))
    low_first, bounds = False, None
    if score != ORDER:
        values = scores[score][np.isfinite(scores[score])]
        order_col, range_col = st.columns([1, 3])
        low_first = order_col.radio("Order", ["highest first", "lowest first"], horizontal=True,
                                    key="prototypes.score_order") == "lowest first"
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if high > low:
            key = f"prototypes.range.{score}"
            kept = st.session_state.get(key)
            if kept is not None:  # new data may have moved the ends: keep the choice inside them
                st.session_state[key] = (min(max(kept[0], low), high), max(min(kept[1], high), low))
            bounds = range_col.slider(f"{score} between", low, high, (low, high), key=key)
    return choice, show, score, low_first, bounds, size


def gallery(loaded: LoadedModel, run: ModelRun | None, evaluation: Any, evaluation_origin: str) -> None:
    model = loaded.model
    classes = prototype_classes(model)
    flags = duplicate_flags(run.duplicates, model.num_prototypes) if run is not None else \
        np.zeros(model.num_prototypes, dtype=bool)
    scores = known_scores(run, evaluation)
    choice, show, score, low_first, bounds, size = gallery_filters(loaded, scores)
    members = chosen_prototypes(classes, list(model.class_names), flags, scores, choice, show, score, low_first,
                                bounds)
    pages = max(1, -(-len(members) // size))
    if int(st.session_state.get("prototypes.page", 1)) > pages:  # the filters shrank the list
        st.session_state["prototypes.page"] = 1
    page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="prototypes.page")) if pages > 1 else 1
    shown = members[(page - 1) * size: page * size]
    groups = loaded.summary.prototype_groups
    st.caption(_model_line(loaded) + (" · prototype sets: " + ", ".join(
        f"{name} #{start}-#{end - 1}" for name, (start, end) in groups.items()) if len(groups) > 1 else "")
        + f" · showing {len(shown)} of {len(members)} chosen ({model.num_prototypes} in all)"
        + (f", {(page - 1) * size + 1}-{(page - 1) * size + len(shown)}" if len(shown) else ""))
    if score != ORDER and evaluation is not None and score in _evaluation_columns(evaluation):
        st.caption(f"{plain(score)}: from {plain(evaluation_origin)}")
    if not len(shown):
        st.info("No prototype matches these filters." if model.num_prototypes else "This model has no prototypes.")
        return
    tiles, captions = _tiles(loaded, run, shown, flags, classes, with_class=score != ORDER, score=scores.get(score))
    if score == ORDER:
        for c in dict.fromkeys(classes[shown].tolist()):  # one row group per class, in prototype order
            rows = [i for i, j in enumerate(shown.tolist()) if classes[j] == c]
            st.markdown(f"**{plain(_class_name(model, c))}** · {len(rows)} prototype(s)")
            st.image([tiles[i] for i in rows], caption=[captions[i] for i in rows], width=TILE)
    else:
        st.image(tiles, caption=captions, width=TILE)
    if run is not None and run.duplicates:
        st.caption(f"⚠ duplicate: {int(flags.sum())} of {len(classes)} prototypes. {_rule(run)}")
    figure_downloads(lambda: tile_grid(tiles, 8), f"{loaded.name}_gallery", key="prototypes.gallery_figure",
                     label="Download this page of the gallery", interactive=False)


def _tiles(loaded: LoadedModel, run: ModelRun | None, shown: np.ndarray, flags: np.ndarray, classes: np.ndarray,
           with_class: bool, score: np.ndarray | None) -> tuple[list[np.ndarray], list[str]]:
    """One picture and a short caption per shown prototype (the push source patch, else its top patch)."""
    model, groups = loaded.model, loaded.summary.prototype_groups
    sources = model.prototype_sources
    filled = run.topk.filled() if run is not None and run.topk.thumbnails is not None else None
    tiles, captions = [], []
    for j in shown.tolist():  # only the shown page
        source = sources[j] if j < len(sources) else None
        patch = source.patch_thumbnail if source is not None else None
        words = [f"#{j}", prototype_set(groups, j) or ""]
        if with_class:
            words.append(plain(_class_name(model, int(classes[j]))))
        if patch is None and filled is not None and run is not None and bool(filled[j, 0]):
            tiles.append(fit_tile(run.topk.thumbnails[j, 0], TILE))  # type: ignore[index]
            words.append("top patch")
        else:
            tiles.append(fit_tile(patch, TILE))
        if score is not None and np.isfinite(score[j]):
            words.append(f"{score[j]:.3g}")
        words.append("⚠ duplicate" if flags[j] else "")
        captions.append(" · ".join(w for w in words if w))
    return tiles, captions


def _evaluation_columns(evaluation: Any) -> set[str]:
    return {k for row in getattr(evaluation, "prototypes", None) or [] for k in row}


def _selected_points(event: Any) -> list[dict[str, Any]]:
    """The points a plotly chart's selection event holds (a dict-like state, or an object with attributes)."""
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    if selection is None:
        return []
    points = selection.get("points") if isinstance(selection, dict) else getattr(selection, "points", None)
    return list(points or [])


def _class_name(model: Any, index: int) -> str:
    return model.class_names[index] if index >= 0 else "no class"


def _model_line(loaded: LoadedModel) -> str:
    summary = loaded.summary
    return (f"{summary.family_label or summary.family} · {summary.num_prototypes} prototypes · similarity: "
            f"{summary.similarity_unit}")


# ----- the card -----------------------------------------------------------------------------------
def card(loaded: LoadedModel, index: int, run: ModelRun | None, probe: Probe | None, config: CompareConfig) -> None:
    model = loaded.model
    facts = prototype_facts(model, index, run.duplicates if run is not None else None)
    with st.container(border=True, key="prototype-card"):
        st.subheader(f"Prototype {index} · class {plain(facts.own_class_name)}")
        kind = prototype_set(loaded.summary.prototype_groups, index)
        st.caption((f"{kind} prototype · " if kind else "") + f"{loaded.summary.family_label or loaded.summary.family}"
                   f" · model {plain(loaded.name)} · sha256 {(loaded.sha256 or '-')[:12]}")
        patch_col, source_col, weights_col = st.columns([1, 1, 2])
        source = facts.source
        patch_col.image(fit_tile(source.patch_thumbnail if source else None, 160), caption="source patch (push)")
        source_col.image(facts.source_image if facts.source_image is not None else fit_tile(None, 160),
                         caption=f"source image: {plain(source.image_id)}" if source else "source image unknown",
                         width=160)
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
        topk_section(loaded, index, run, probe, config)
        other_scores(loaded, index, probe, config)
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


@st.cache_data(max_entries=32, show_spinner=False)
def _patch_views(sha: str, fingerprint: str, settings: str, index: int, method: str, _loaded: LoadedModel,
                 _run: ModelRun, _dataset: Any) -> list[PatchView]:
    """Heatmaps of one prototype's top-k images (k images only), cached per pass and method."""
    del sha, fingerprint, settings  # the cache key: which pass
    with _loaded.lock:
        return topk_patch_views(_loaded.model, _dataset, _run.topk, index, method=method)


def topk_section(loaded: LoadedModel, index: int, run: ModelRun | None, probe: Probe | None,
                 config: CompareConfig) -> None:
    st.markdown("**Top-k most activating patches**")
    if run is None or probe is None:
        st.info("Compute the top-k patches above (one pass over the chosen dataset, kept in your workspace).",
                icon=":material/info:")
        return
    topk = run.topk
    if topk.thumbnails is not None:
        strip, captions = patch_strip(topk.thumbnails[index], topk.values[index].numpy(), tile=96)
        st.image(strip, caption="patch crops, similarity " + " · ".join(captions))
    from protoviz.heatmaps.methods import list_methods

    method = st.selectbox("Heatmap method", list_methods(), key="prototypes.method")
    key = pass_key(loaded, probe, config)
    with st.spinner("Drawing heatmaps of the top-k images ..."):
        views = _patch_views(key.model_sha256, key.dataset_fingerprint, key.settings, index, method, loaded, run,
                             probe.dataset)
    if views:
        pictures = [with_colour_scale(enlarge(v.overlay, 128), *v.heat_range) for v in views]
        st.image(pictures, width=180,
                 caption=[f"#{v.rank}: {plain(v.image_id)} · sim {v.similarity:.3f}" for v in views])
        height = max(p.shape[0] for p in pictures)
        strip = tile_row([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255)
                          for p in pictures])
        figure_downloads(strip, f"{loaded.name}_prototype{index}_topk_{method}", key="prototypes.topk_figure",
                         label="Download the top-k heatmaps")
    rows = [row for row in topk.rows() if row["prototype"] == index]
    st.download_button("Top-k patches (CSV)", csv_text(rows).encode(), f"{loaded.name}_prototype{index}_topk.csv",
                       "text/csv", key="prototypes.topk_csv", on_click="ignore", icon=":material/table:")
    st.caption(f"{topk.config.k} patches ({topk.config.per_image} per image) over {run.num_images} images; "
               f"boxes: {topk.config.box_scale:g}x map cell for crops, 95th percentile for heatmaps.")


def other_scores(loaded: LoadedModel, index: int, probe: Probe | None, config: CompareConfig) -> None:
    """Colour/shape/texture importance and consistency/stability where kept; buttons for what is not."""
    chars_col, parts_col = st.columns(2)
    with chars_col:
        wanted = characteristics_key(loaded, probe, config.max_images) if probe is not None else None
        here = keyed_results(loaded, wanted) if wanted is not None else []
        (summary, result), origin = _newest(here, model_results(loaded, WHY_KIND))
        if result is not None:
            bars = score_bars(result.vector(index), f"characteristic importance ({result.num_images} images)")
            st.plotly_chart(bars, key="prototypes.characteristics")
            figure_downloads(bars, f"{loaded.name}_prototype{index}_characteristics",
                             key="prototypes.characteristics_figure")
            st.caption(f"Computed on {origin} {plain(source_caption(summary, result))}.")
        if not here:
            st.caption("Colour/shape/texture/contrast/saturation importance not computed on these images yet.")
            if probe is not None:
                clicked = st.button("Compute characteristics", key="prototypes.compute_chars")
                _job_or_error(lambda: start_characteristics(loaded, probe, config.max_images, start=clicked))
    with parts_col:
        wanted = part_scores_key(loaded, probe, config) if probe is not None else None
        here = [found for metric in ("consistency", "stability") for found in keyed_results(loaded, wanted, metric)] \
            if wanted is not None else []
        (summary, result), origin = _newest(here, model_results(loaded, EVALUATE_KIND))
        if result is not None and hasattr(result, "prototype_scores"):
            headline = {c: (v, result.units[c]) for c, v in result.scores.items() if c in ("consistency", "stability")}
            if headline:
                st.markdown("**Model scores**: " + " · ".join(f"{k} {v:.1f} {u}" for k, (v, u) in headline.items()))
            st.caption(f"This prototype (computed on {origin} {plain(source_caption(summary, result))}):")
            facts = {"dominant part": result.prototype_part(index) or "-", **result.prototype_scores(index)}
            st.dataframe({"property": list(facts), "value": [_text(v) for v in facts.values()]}, hide_index=True)
        if not here:
            st.caption("Consistency, stability and dominant part not computed on these images yet.")
            has_parts = probe is not None and getattr(probe.dataset, "has_parts", False)
            if probe is not None and not has_parts:
                st.caption("Unavailable on this dataset: "
                           f"{plain(getattr(probe.dataset, 'parts_reason', None) or 'no part annotations')}")
            if has_parts and probe is not None:
                clicked = st.button("Compute consistency and stability", key="prototypes.compute_parts")
                _job_or_error(lambda: start_part_scores(loaded, probe, config, start=clicked))


def _newest(here: list[tuple[Any, Any]], anywhere: list[tuple[Any, Any]]) -> tuple[tuple[Any, Any], str]:
    """The newest result on these images, else the model's newest on any images, and which it is."""
    if here:
        return max(here, key=lambda found: found[0].stored_at), "these images:"
    if anywhere:
        return anywhere[0], "other images:"
    return (None, None), ""


def _job_or_error(call: Any) -> None:
    """Start or follow a job (its panel reruns the page when it ends, and the result then joins the card)."""
    try:
        call()
    except ProtovizError as error:
        show_error(error)


def _text(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# ----- latent space ---------------------------------------------------------------------------------
def latent_section(loaded: LoadedModel, run: ModelRun | None, probe: Probe | None, config: CompareConfig) -> None:
    if run is None or probe is None or run.topk.latents is None:
        st.info("Compute the top-k patches first: the view shows prototypes and their nearest patches.")
        return
    method, seed = projection_picker("prototypes.latent")
    start = False
    if method != "pca":
        start = st.button(f"Compute the {PROJECTION_LABELS[method]} view", key="prototypes.latent_compute",
                          icon=":material/scatter_plot:")
    view = projected(loaded, run, pass_key(loaded, probe, config), method, seed, start=start, label=loaded.name)
    if view is None:
        st.caption(f"{PROJECTION_LABELS[method]} keeps neighbourhoods, not distances; it runs as a job (on a "
                   "CUB-scale model, a minute or more) and is kept in your workspace.")
        return
    figure = latent_figure(view, loaded.model.class_names, run.topk.values.numpy(),
                           f"{loaded.name}: prototypes (stars) and their top-k patches (dots)")
    plot_col, pick_col = st.columns([3, 1])
    with plot_col:
        event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key="prototypes.latent")
        figure_downloads(figure, f"{loaded.name}_latent_{method}", key="prototypes.latent_figure")
    with pick_col:
        st.markdown("**Selected point**")
        points = _selected_points(event)
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
    what = f"PCA of {len(view.prototype_xy)} prototype vectors and their patch latents" if method == "pca" else \
        f"{PROJECTION_LABELS[method]} (seed {seed}) of {len(view.prototype_xy)} prototype vectors and their patch " \
        "latents: neighbourhoods are kept, distances and axes have no units"
    st.caption(what + (" (unit-normalised: cosine model)" if view.normalised else ""))


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


def pass_panel(loaded: LoadedModel) -> tuple[ModelRun | None, Probe | None, CompareConfig]:
    """The dataset pass box: choose the data and k, start the job; the kept pass (or the job's progress)."""
    with st.container(border=True):
        st.markdown("**Top-k patches** — one batched pass of the model over a dataset, kept in your workspace")
        folder, split, limit = dataset_widget("prototypes.data")
        k = st.slider("Patches per prototype (k)", 1, 16, 5, key="prototypes.k")
        config = CompareConfig(topk=TopKConfig(k=k), max_images=limit)
        compute = st.button("Compute top-k patches", key="prototypes.compute", icon=":material/play_arrow:")
        run, probe = None, None
        try:  # the dataset is opened when there is something to find or to start
            if compute or st.session_state.get(OPENED) or has_runs(loaded, PASS_KIND):
                probe = open_probe(folder, split)
                st.session_state[OPENED] = True
                run = model_pass(loaded, probe, config, start=compute)
        except ProtovizError as error:
            show_error(error)
    return run, probe, config


def main() -> None:
    linked = apply_link()
    st.title("Prototypes")
    st.caption("Every prototype of a model by class; a card per prototype with its source, top-k patches, "
               "class weights and every score kept for it.")
    name = model_picker("prototypes.model")
    if not name:
        return
    try:
        loaded = get_model(name)
    except ProtovizError as error:
        show_error(error)
        return
    run, probe, config = pass_panel(loaded)
    evaluations = model_results(loaded, EVALUATE_KIND)
    evaluation, origin = (evaluations[0][1], source_caption(*evaluations[0])) if evaluations else (None, "")
    if st.session_state.get("prototypes.selected", 0) >= loaded.model.num_prototypes:
        st.session_state["prototypes.selected"] = 0  # a link or another model's choice out of range
    if linked:  # a link or another page asked for a card: show it
        st.session_state[TAB_KEY] = TABS[1]
    # the tabs keep their state, so a rerun (e.g. "Compute top-k patches" on the card) stays on the same tab
    gallery_tab, card_tab, latent_tab = st.tabs(list(TABS), key=TAB_KEY, on_change="rerun")
    with gallery_tab:
        gallery(loaded, run, evaluation, origin)
    with card_tab:
        classes = prototype_classes(loaded.model)
        index = st.selectbox("Prototype", list(range(loaded.model.num_prototypes)), key="prototypes.selected",
                             format_func=lambda j: f"#{j} · {_class_name(loaded.model, int(classes[j]))}")
        try:
            card(loaded, int(index), run, probe, config)
        except ProtovizError as error:
            show_error(error)
    with latent_tab:
        try:
            latent_section(loaded, run, probe, config)
        except ProtovizError as error:
            show_error(error)


main()
