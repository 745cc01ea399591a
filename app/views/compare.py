"""Compare: two or more models side by side on the same images, their scores on the same dataset,
their matched prototypes, and a self-contained HTML report of it all.

The work is in protoviz.compare (passes, matching, report) and protoviz.heatmaps (explanations);
this file lays it out. Passes are kept in the session and shared with the Prototypes page.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from app.cache import LoadedModel
from app.compare_runs import (
    NAMESPACE,
    compute_part_scores,
    compute_run,
    dataset_widget,
    model_scores,
    open_dataset_cached,
    stored_run,
)
from app.state import available_models, get_model, session_results
from app.widgets import NamedImage, figure_downloads, image_picker, model_picker, show_error
from protoviz.compare.latent import latent_view
from protoviz.compare.matching import (
    PROFILE_HELP,
    PROFILE_KINDS,
    Matching,
    ProfileConfig,
    duplicate_rule,
    match_prototypes,
)
from protoviz.compare.report import comparison_report
from protoviz.compare.summary import CompareConfig, ModelRun, comparison_from_runs, probe_indices, scores_table
from protoviz.compare.topk import TopKConfig
from protoviz.errors import ProtovizError
from protoviz.heatmaps import ImageExplanation, explain_image
from protoviz.viz.compare import correlation_heatmap, latent_scatter, match_strength_bars
from protoviz.viz.gallery import fit_tile, patch_strip
from protoviz.viz.overlay import draw_box, enlarge, overlay_heatmap
from protoviz.viz.scale import with_colour_scale

PICTURE = 150
CARDS = 3
PAIRS_SHOWN = 10
PROTOTYPES_PAGE = "views/prototypes.py"  # relative to app/streamlit_app.py
SWITCH_FLAG = "compare.open_card"


# ----- the same images through every model ------------------------------------------------------------
def explanations(loaded: LoadedModel, images: list[NamedImage], top_k: int) -> list[ImageExplanation]:
    """Each image explained by one model, computed once per session (batched, under the model's lock)."""
    cache = session_results(NAMESPACE).setdefault("explanations", {})
    keys = [(loaded.name, loaded.sha256, image.key, top_k) for image in images]
    missing = [i for i, key in enumerate(keys) if key not in cache]
    if missing:
        with loaded.lock:
            fresh = explain_image(loaded.model, [images[i].image for i in missing], top_k=top_k,
                                  names=[images[i].name for i in missing])
        for i, item in zip(missing, fresh, strict=True):
            cache[keys[i]] = item
    return [cache[key] for key in keys]


def same_images(models: list[LoadedModel]) -> dict[str, list[ImageExplanation]]:
    images = image_picker("compare.images")
    if not images:
        st.info("Upload images or pick bundled samples: each goes through every chosen model.",
                icon=":material/arrow_upward:")
        return {}
    results: dict[str, list[ImageExplanation]] = {}
    with st.spinner("Running every model on the images ..."):
        for loaded in models:
            try:
                results[loaded.name] = explanations(loaded, images, CARDS)
            except ProtovizError as error:
                show_error(error)
    for i, image in enumerate(images):
        st.markdown(f"##### {image.name}")
        columns = st.columns(len(models))
        for column, loaded in zip(columns, models):
            if loaded.name in results:
                with column:
                    model_column(loaded, results[loaded.name][i], f"{i}-{loaded.name}")
    return results


def model_column(loaded: LoadedModel, item: ImageExplanation, slot: str) -> None:
    with st.container(border=True, key=f"compare-prediction-{slot}"):
        st.markdown(f"**{loaded.name}** predicts **{item.predicted_name}**")
        st.caption(f"{loaded.summary.family_label or loaded.summary.family} · similarity: "
                   f"{loaded.summary.similarity_unit}")
        for warning in item.warnings:
            st.warning(warning, icon=":material/photo_size_select_small:")
        st.dataframe({"class": [n for _, n, _ in item.top_classes], "probability": [p for _, _, p in item.top_classes]},
                     hide_index=True, column_config={"probability": st.column_config.ProgressColumn(
                         "probability", format="percent", min_value=0.0, max_value=1.0)})
        for evidence in item.prototypes:
            overlay = enlarge(draw_box(overlay_heatmap(item.image, evidence.heatmap), evidence.box), 128)
            source = evidence.source
            this, that = st.columns(2)
            this.image(with_colour_scale(overlay, *evidence.heat_range), width="stretch",
                       caption=f"#{evidence.rank} this: prototype {evidence.index}")
            that.image(fit_tile(source.patch_thumbnail if source else None, PICTURE), width="stretch",
                       caption=f"looks like (class {evidence.prototype_class_name})")
            st.caption(f"similarity {evidence.similarity:.3f} × weight {evidence.weight:+.3f} = "
                       f"{evidence.contribution:+.3f}")
            st.button("Open its card", key=f"compare.card.{slot}.{evidence.rank}", on_click=open_card,
                      args=(loaded.name, evidence.index), icon=":material/open_in_new:")


def open_card(model: str, prototype: int) -> None:
    """Button callback: preselect the prototype on the Prototypes page, which main() then switches to."""
    st.session_state["prototypes.model"] = model
    st.session_state["prototypes.selected"] = prototype
    st.session_state["prototypes.open_card"] = True
    st.session_state[SWITCH_FLAG] = True


# ----- scores on a dataset --------------------------------------------------------------------------------
def dataset_section(models: list[LoadedModel]) -> tuple[list[ModelRun], Any, CompareConfig, tuple[str | None, str]]:
    folder, split, limit = dataset_widget("compare.data")
    k_col, profile_col = st.columns(2)
    k = k_col.slider("Top-k patches per prototype", 1, 16, 5, key="compare.k")
    kind = profile_col.radio("Prototype profile", PROFILE_KINDS, horizontal=True, key="compare.profile",
                             help="What two prototypes must share to match (and to count as near-duplicates): "
                                  + "; ".join(f"**{k}**: {v}" for k, v in PROFILE_HELP.items()))
    config = CompareConfig(topk=TopKConfig(k=k), profile=ProfileConfig(kind=kind), max_images=limit)
    compute = st.button("Compute accuracy, top-k patches and profiles", key="compare.compute",
                        icon=":material/play_arrow:")
    runs: list[ModelRun] = []
    dataset = None
    try:
        stored = [stored_run(loaded, folder, split, config) for loaded in models]
        if compute or any(stored):
            dataset = open_dataset_cached(folder, split)
        for loaded, run in zip(models, stored):
            if run is None and compute:
                run = compute_run(loaded, dataset, folder, split, config)
            if run is not None:
                runs.append(run)
    except ProtovizError as error:
        show_error(error)
    return runs, dataset, config, (folder, split)


def scores_section(models: list[LoadedModel], runs: list[ModelRun], dataset: Any, config: CompareConfig,
                   source: tuple[str | None, str]) -> None:
    if not runs:
        st.info("Press the button above: one batched pass per model over the same images.", icon=":material/info:")
        return
    extra = {loaded.name: scores for loaded in models if (scores := model_scores(loaded))}
    rows = scores_table(runs, extra)
    st.dataframe(rows, hide_index=True, key="compare.scores")
    st.caption(f"{runs[0].num_images} images ({source[1]} split of "
               f"{source[0] or 'the bundled synthetic set'}; seed {config.seed}); labels: "
               + "; ".join(f"{r.name}: {r.settings.get('labels')}" for r in runs))
    has_parts = getattr(dataset, "has_parts", False)
    if has_parts and len(extra) < len(models):
        if st.button("Compute consistency and stability", key="compare.compute_parts"):
            try:
                for loaded in models:
                    compute_part_scores(loaded, dataset, source[0], source[1], config)
                st.rerun()
            except ProtovizError as error:
                show_error(error)
    elif dataset is not None and not has_parts:
        st.caption(f"Consistency/stability unavailable: {getattr(dataset, 'parts_reason', 'no part annotations')}")
    st.download_button("Scores (JSON)", json.dumps({"scores": rows, "settings": runs[0].settings}, indent=2,
                                                   default=str),
                       "compare_scores.json", "application/json", key="compare.scores_json", on_click="ignore",
                       icon=":material/data_object:")


# ----- matched prototypes ------------------------------------------------------------------------------------
def matching_section(runs: list[ModelRun]) -> None:
    if len(runs) < 2:
        st.info("Matching needs the passes of two or more models over the same dataset (Scores tab).")
        return
    names = [run.name for run in runs]
    left, right, threshold_col = st.columns(3)
    first = left.selectbox("Reference model", names, key="compare.match_a")
    second = right.selectbox("Other model", [n for n in names if n != first], key="compare.match_b")
    threshold = threshold_col.slider("Match threshold (correlation)", -1.0, 1.0, 0.5, 0.05, key="compare.threshold")
    run_a, run_b = runs[names.index(first)], runs[names.index(second)]
    matching = match_prototypes(run_a.profiles, run_b.profiles, threshold)
    session_results(NAMESPACE)["matching"] = (first, second, matching)
    a, b, c = st.columns(3)
    a.metric("matched pairs", len(matching.pairs))
    b.metric(f"no counterpart in {second}", len(matching.unmatched_a))
    c.metric(f"no counterpart in {first}", len(matching.unmatched_b))
    kind = run_a.settings.get("profile", {}).get("kind", "parts")
    st.caption(f"Profile '{kind}': {PROFILE_HELP.get(kind, kind)}. Pairs are assigned one-to-one (Hungarian) on "
               f"the correlation of the two prototypes' profiles over the same {run_a.num_images} images.")
    heat_col, bars_col = st.columns(2)
    heat = correlation_heatmap(matching.correlation.numpy(), first, second, [(p.a, p.b) for p in matching.pairs])
    heat_col.plotly_chart(heat, key="compare.corr")
    with heat_col:
        figure_downloads(heat, f"compare_{first}_{second}_correlation", key="compare.corr_figure")
    assigned = [*matching.pairs, *matching.weak]
    bars = match_strength_bars([f"{p.a}-{p.b}" for p in assigned], [p.correlation for p in assigned], threshold)
    bars_col.plotly_chart(bars, key="compare.strength")
    with bars_col:
        figure_downloads(bars, f"compare_{first}_{second}_strength", key="compare.strength_figure")
    pairs_view(run_a, run_b, matching)
    duplicates_view(runs)


def pairs_view(run_a: ModelRun, run_b: ModelRun, matching: Matching) -> None:
    st.markdown(f"**Strongest matched pairs** (top-{run_a.topk.config.k} patches of each prototype)")
    for pair in matching.pairs[:PAIRS_SHOWN]:
        with st.container(border=True):
            left, middle, right = st.columns([4, 1, 4], vertical_alignment="center")
            _strip(left, run_a, pair.a)
            middle.markdown(f"r = **{pair.correlation:.3f}**")
            _strip(right, run_b, pair.b)
    if len(matching.pairs) > PAIRS_SHOWN:
        st.caption(f"... and {len(matching.pairs) - PAIRS_SHOWN} more pairs (all of them are in the report).")
    st.markdown(f"No counterpart in **{run_b.name}**: {list(matching.unmatched_a) or 'none'}  \n"
                f"No counterpart in **{run_a.name}**: {list(matching.unmatched_b) or 'none'}")


def _strip(column: Any, run: ModelRun, index: int) -> None:
    if run.topk.thumbnails is None:
        column.markdown(f"{run.name} #{index}")
        return
    strip, captions = patch_strip(run.topk.thumbnails[index], run.topk.values[index].numpy(), tile=64)
    column.image(strip, caption=f"{run.name} #{index}: " + " · ".join(captions))


def duplicates_view(runs: list[ModelRun]) -> None:
    st.markdown("**Near-duplicate prototypes within each model**")
    settings = runs[0].settings
    st.caption(duplicate_rule(float(settings.get("duplicate_correlation", 0.99)),
                              float(settings.get("duplicate_cosine", 0.99)),
                              bool(settings.get("duplicate_require_both", True)),
                              str(settings.get("profile", {}).get("kind", "parts")), True, runs[0].num_images))
    columns = st.columns(len(runs))
    for column, run in zip(columns, runs):
        flagged = len({i for pair in run.duplicates for i in (pair.a, pair.b)})
        column.markdown(f"{run.name}: {len(run.duplicates)} pair(s), {flagged} of {run.info['prototypes']} "
                        "prototypes")
        if run.duplicates:
            column.dataframe([{"a": p.a, "b": p.b, "profile r": p.correlation, "cosine": p.cosine}
                              for p in run.duplicates], hide_index=True)


# ----- latent views and the report -----------------------------------------------------------------------
def latent_section(models: list[LoadedModel], runs: list[ModelRun]) -> None:
    if not runs:
        st.info("The latent view needs the top-k patches (Scores tab).")
        return
    columns = st.columns(min(2, len(runs)))
    by_name = {loaded.name: loaded for loaded in models}
    for i, run in enumerate(runs):
        loaded = by_name[run.name]
        view = latent_view(loaded.model, run.topk)
        figure = latent_scatter(view.prototype_xy, view.prototype_class, view.patch_xy, view.patch_filled,
                                loaded.model.class_names, view.explained, run.topk.values.numpy(), title=run.name)
        with columns[i % len(columns)]:
            st.plotly_chart(figure, key=f"compare.latent.{i}")
            figure_downloads(figure, f"compare_{run.name}_latent", key=f"compare.latent_figure.{i}")


def report_section(models: list[LoadedModel], runs: list[ModelRun], dataset: Any, config: CompareConfig,
                   explained: dict[str, list[ImageExplanation]]) -> None:
    if not runs:
        st.info("The report needs the passes over a dataset (Scores tab).")
        return
    if st.button("Build the HTML report", key="compare.build_report", icon=":material/description:"):
        by_name = {loaded.name: loaded.model for loaded in models if loaded.name in {r.name for r in runs}}
        indices = probe_indices(len(dataset), config.max_images, config.seed)
        with st.spinner("Building the report ..."):
            comparison = comparison_from_runs(runs, by_name, dataset, indices, config)
            views = {run.name: latent_view(by_name[run.name], run.topk) for run in runs}
            names = {name: list(model.class_names) for name, model in by_name.items()}
            html = comparison_report(comparison, names, views, explained).render()
        session_results(NAMESPACE)["report"] = html
    html = session_results(NAMESPACE).get("report")
    if html:
        st.download_button("Download the report (HTML)", html, "protoviz_comparison.html", "text/html",
                           key="compare.report_html", on_click="ignore", icon=":material/download:")
        st.caption(f"{len(html) / 1e6:.1f} MB, self-contained: figures, images and the reproducibility panel "
                   "(models and sha256, dataset, parameters, seed, device, versions) are embedded.")


def main() -> None:
    if st.session_state.pop(SWITCH_FLAG, False):
        st.switch_page(PROTOTYPES_PAGE)
    st.title("Compare models")
    st.caption("The same images through several models, their scores on the same dataset, and which prototypes "
               "correspond across models.")
    names = list(available_models())
    if not names:
        model_picker("compare.models", multi=True)  # explains where models come from
        return
    # two models preselected (the shared picker preselects one)
    chosen = st.multiselect("Models (two or more)", names, default=names[:2], key="compare.models")
    if not chosen:
        return
    models: list[LoadedModel] = []
    for name in chosen:
        try:
            models.append(get_model(name))
        except ProtovizError as error:
            show_error(error)
    if len(models) < 2:
        st.info("Choose at least two models to compare.", icon=":material/compare:")
    if not models:
        return
    images_tab, scores_tab, match_tab, latent_tab, report_tab = st.tabs(
        ["Same images", "Scores on a dataset", "Matched prototypes", "Latent space", "Report"])
    with images_tab:
        explained = same_images(models)
    with scores_tab:
        runs, dataset, config, source = dataset_section(models)
        scores_section(models, runs, dataset, config, source)
    try:
        with match_tab:
            matching_section(runs)
        with latent_tab:
            latent_section(models, runs)
        with report_tab:
            report_section(models, runs, dataset, config, explained)
    except ProtovizError as error:
        show_error(error)


main()
