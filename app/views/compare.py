"""Compare: two or more models side by side on the same images (evidence for and against), their scores on
the same dataset, their matched prototypes, their latent spaces, and a self-contained HTML report of it all.

Each model's pass over the dataset is a background job kept in the workspace and shared with the
Prototypes page (:mod:`app.compare_runs`); scores computed elsewhere join a model's row only when they
were made on the same dataset, split, images and settings. The work is in protoviz.compare (passes,
matching, report) and protoviz.heatmaps (explanations); this file lays it out.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import streamlit as st

from app.cache import LoadedModel
from app.compare_runs import (
    PASS_KIND,
    Probe,
    dataset_widget,
    has_runs,
    joined_scores,
    model_pass,
    open_probe,
    pass_key,
    projected,
    projection_picker,
    start_part_scores,
)
from app.jobs import stored_note
from app.state import available_models, get_model
from app.store import workspace
from app.widgets import NamedImage, figure_downloads, image_picker, model_picker, plain, show_error
from protoviz.compare.latent import PROJECTION_LABELS, LatentView
from protoviz.compare.matching import (
    PROFILE_HELP,
    PROFILE_KINDS,
    Matching,
    ProfileConfig,
    duplicate_rule,
    match_prototypes,
)
from protoviz.compare.report import comparison_report, latent_figure
from protoviz.compare.summary import CompareConfig, ModelRun, comparison_from_runs, scores_table
from protoviz.compare.topk import TopKConfig
from protoviz.errors import ProtovizError
from protoviz.fingerprint import combine
from protoviz.heatmaps import ImageExplanation, explain_image
from protoviz.heatmaps.explanation import PrototypeEvidence
from protoviz.payload import Payload
from protoviz.provenance import canonical
from protoviz.viz.compare import correlation_heatmap, match_strength_bars
from protoviz.viz.gallery import fit_tile, patch_strip
from protoviz.viz.overlay import draw_box, enlarge, overlay_heatmap
from protoviz.viz.scale import with_colour_scale
from protoviz.workspace import RunKey

PICTURE = 150
CARDS = 3
PAIRS_SHOWN = 10
PROTOTYPES_PAGE = "views/prototypes.py"  # relative to app/streamlit_app.py
SWITCH_FLAG = "compare.open_card"
REPORT_KIND = "compare.report"


# ----- the same images through every model ------------------------------------------------------------
@st.cache_data(max_entries=64, show_spinner=False)
def _explained(model_name: str, sha: str | None, keys: tuple[str, ...], top_k: int, _loaded: LoadedModel,
               _images: list[NamedImage]) -> list[ImageExplanation]:
    """Each image explained by one model (batched, under the model's lock), cached by model file and image
    contents."""
    del model_name, sha, keys  # the cache key
    with _loaded.lock:
        return explain_image(_loaded.model, [image.image for image in _images], top_k=top_k,
                             names=[image.name for image in _images])


def explanations(loaded: LoadedModel, images: list[NamedImage], top_k: int) -> list[ImageExplanation]:
    return _explained(loaded.name, loaded.sha256, tuple(image.key for image in images), top_k, loaded, images)


def same_images(models: list[LoadedModel]) -> tuple[dict[str, list[ImageExplanation]], list[NamedImage]]:
    images = image_picker("compare.images")
    if not images:
        st.info("Upload images or pick bundled samples: each goes through every chosen model.",
                icon=":material/arrow_upward:")
        return {}, []
    results: dict[str, list[ImageExplanation]] = {}
    with st.spinner("Running every model on the images ..."):
        for loaded in models:
            try:
                results[loaded.name] = explanations(loaded, images, CARDS)
            except ProtovizError as error:
                show_error(error)
    for i, image in enumerate(images):
        st.markdown(f"##### {plain(image.name)}")
        columns = st.columns(len(models))
        for column, loaded in zip(columns, models):
            if loaded.name in results:
                with column:
                    model_column(loaded, results[loaded.name][i], f"{i}-{loaded.name}")
    return results, images


def model_column(loaded: LoadedModel, item: ImageExplanation, slot: str) -> None:
    with st.container(border=True, key=f"compare-prediction-{slot}"):
        st.markdown(f"**{plain(loaded.name)}** predicts **{plain(item.predicted_name)}**")
        st.caption(f"{loaded.summary.family_label or loaded.summary.family} · similarity: "
                   f"{loaded.summary.similarity_unit}")
        for warning in item.warnings:
            st.warning(plain(warning), icon=":material/photo_size_select_small:")
        st.dataframe({"class": [n for _, n, _ in item.top_classes], "probability": [p for _, _, p in item.top_classes]},
                     hide_index=True, column_config={"probability": st.column_config.ProgressColumn(
                         "probability", format="percent", min_value=0.0, max_value=1.0)})
        for side, title, evidence_list in (("for", "Evidence for", item.prototypes),
                                           ("against", "Evidence against", item.against)):
            st.markdown(f"**{title}** {plain(item.class_names[item.explained_class])}")
            if not evidence_list:
                st.caption("none: no prototype of this model lowers that class's score on this image"
                           if side == "against" else "none: no prototype raises that class's score")
            for evidence in evidence_list:
                evidence_card(loaded, item.image, evidence, f"{slot}.{side}")
        if item.decision is not None:
            st.caption(_decision_line(item))


def evidence_card(loaded: LoadedModel, image: Any, evidence: PrototypeEvidence, slot: str) -> None:
    """This patch of ``image`` (the model's view of it, (H, W, 3) uint8; heatmap and box) looks like that
    prototype (its source patch), and what it adds to the score."""
    overlay = enlarge(draw_box(overlay_heatmap(image, evidence.heatmap), evidence.box), 128)
    source = evidence.source
    this, that = st.columns(2)
    this.image(with_colour_scale(overlay, *evidence.heat_range), width="stretch",
               caption=f"#{evidence.rank} this: prototype {evidence.index}")
    that.image(fit_tile(source.patch_thumbnail if source else None, PICTURE), width="stretch",
               caption=f"looks like (class {plain(evidence.prototype_class_name)})")
    st.caption(f"similarity {evidence.similarity:.3f} × weight {evidence.weight:+.3f} = "
               f"{evidence.contribution:+.3f}")
    st.button("Open its card", key=f"compare.card.{slot}.{evidence.rank}", on_click=open_card,
              args=(loaded.name, evidence.index), icon=":material/open_in_new:")


def _decision_line(item: ImageExplanation) -> str:
    """The whole decision in one line: shown for + shown against + the rest = the class score."""
    shown_for = sum(e.contribution for e in item.prototypes)
    shown_against = sum(e.contribution for e in item.against)
    score = float(item.logits[item.explained_class])
    rest = score - shown_for - shown_against
    return (f"Score of {plain(item.class_names[item.explained_class])} = {score:+.3f}: evidence for shown "
            f"{shown_for:+.3f}, against shown {shown_against:+.3f}, other prototypes and bias {rest:+.3f}.")


def open_card(model: str, prototype: int) -> None:
    """Button callback: preselect the prototype on the Prototypes page, which main() then switches to."""
    st.session_state["prototypes.model"] = model
    st.session_state["prototypes.selected"] = prototype
    st.session_state["prototypes.open_card"] = True
    st.session_state[SWITCH_FLAG] = True


# ----- scores on a dataset --------------------------------------------------------------------------------
def dataset_section(models: list[LoadedModel]) -> tuple[list[ModelRun], Probe | None, CompareConfig]:
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
    probe = None
    try:
        if compute or st.session_state.get("compare.dataset_opened") or any(has_runs(m, PASS_KIND) for m in models):
            probe = open_probe(folder, split)
            st.session_state["compare.dataset_opened"] = True
    except ProtovizError as error:
        show_error(error)
        return runs, None, config
    if probe is None:
        return runs, None, config
    for loaded in models:  # one job per model; they queue for the device and run one after the other
        try:
            run = model_pass(loaded, probe, config, start=compute)
        except ProtovizError as error:
            show_error(error)
            continue
        if run is not None:
            runs.append(run)
    return runs, probe, config


def scores_section(models: list[LoadedModel], runs: list[ModelRun], probe: Probe | None,
                   config: CompareConfig) -> None:
    if not runs or probe is None:
        st.info("Press the button above: one batched pass per model over the same images, kept in your workspace.",
                icon=":material/info:")
        return
    by_name = {loaded.name: loaded for loaded in models}
    extra = {run.name: joined_scores(by_name[run.name], probe, config) for run in runs}
    rows = scores_table(runs, extra)
    st.dataframe(rows, hide_index=True, key="compare.scores")
    st.caption(f"{runs[0].num_images} images ({plain(probe.label)}; seed {config.seed}); labels: "
               + "; ".join(f"{plain(r.name)}: {plain(str(r.settings.get('labels')))}" for r in runs)
               + ". Other scores join a row only when kept for these same images and settings.")
    has_parts = getattr(probe.dataset, "has_parts", False)
    missing = [by_name[run.name] for run in runs if not extra[run.name]]
    if has_parts and missing:
        clicked = st.button("Compute consistency and stability", key="compare.compute_parts")
        for loaded in missing:
            try:
                start_part_scores(loaded, probe, config, start=clicked)
            except ProtovizError as error:
                show_error(error)
    elif not has_parts:
        st.caption("Consistency/stability unavailable: "
                   f"{plain(getattr(probe.dataset, 'parts_reason', None) or 'no part annotations')}")
    st.download_button("Scores (JSON)", json.dumps({"scores": rows, "settings": runs[0].settings,
                                                    "provenance": {r.name: r.provenance.to_dict() for r in runs
                                                                   if r.provenance is not None}},
                                                   indent=2, default=str),
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
    a, b, c = st.columns(3)
    a.metric("matched pairs", len(matching.pairs))
    b.metric(f"no counterpart in {plain(second)}", len(matching.unmatched_a))
    c.metric(f"no counterpart in {plain(first)}", len(matching.unmatched_b))
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
    st.markdown(f"No counterpart in **{plain(run_b.name)}**: {list(matching.unmatched_a) or 'none'}  \n"
                f"No counterpart in **{plain(run_a.name)}**: {list(matching.unmatched_b) or 'none'}")


def _strip(column: Any, run: ModelRun, index: int) -> None:
    if run.topk.thumbnails is None:
        column.markdown(f"{plain(run.name)} #{index}")
        return
    strip, captions = patch_strip(run.topk.thumbnails[index], run.topk.values[index].numpy(), tile=64)
    column.image(strip, caption=f"{plain(run.name)} #{index}: " + " · ".join(captions))


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
        column.markdown(f"{plain(run.name)}: {len(run.duplicates)} pair(s), {flagged} of {run.info['prototypes']} "
                        "prototypes")
        if run.duplicates:
            column.dataframe([{"a": p.a, "b": p.b, "profile r": p.correlation, "cosine": p.cosine}
                              for p in run.duplicates], hide_index=True)


# ----- latent views and the report -----------------------------------------------------------------------
def latent_views(models: list[LoadedModel], runs: list[ModelRun], probe: Probe, config: CompareConfig,
                 method: str, seed: int, start: bool) -> dict[str, LatentView]:
    """Each run's latent view (PCA at once; t-SNE and PaCMAP kept jobs)."""
    by_name = {loaded.name: loaded for loaded in models}
    views = {}
    for run in runs:
        loaded = by_name[run.name]
        view = projected(loaded, run, pass_key(loaded, probe, config), method, seed, start=start, label=run.name)
        if view is not None:
            views[run.name] = view
    return views


def latent_section(models: list[LoadedModel], runs: list[ModelRun], probe: Probe | None,
                   config: CompareConfig) -> None:
    if not runs or probe is None:
        st.info("The latent view needs the top-k patches (Scores tab).")
        return
    method, seed = projection_picker("compare.latent")
    start = method != "pca" and st.button(f"Compute the {PROJECTION_LABELS[method]} views", key="compare.latent_compute",
                                          icon=":material/scatter_plot:")
    views = latent_views(models, runs, probe, config, method, seed, bool(start))
    by_name = {loaded.name: loaded for loaded in models}
    columns = st.columns(min(2, len(runs)))
    for i, run in enumerate(r for r in runs if r.name in views):
        figure = latent_figure(views[run.name], by_name[run.name].model.class_names, run.topk.values.numpy(), run.name)
        with columns[i % len(columns)]:
            st.plotly_chart(figure, key=f"compare.latent.{i}")
            figure_downloads(figure, f"compare_{run.name}_latent_{method}", key=f"compare.latent_figure.{i}")
    if method != "pca":
        st.caption(f"{PROJECTION_LABELS[method]} (seed {seed}) keeps neighbourhoods, not distances: its axes have no "
                   "units. Each view is computed once as a job and kept in your workspace.")


def report_section(models: list[LoadedModel], runs: list[ModelRun], probe: Probe | None, config: CompareConfig,
                   explained: dict[str, list[ImageExplanation]], images: list[NamedImage]) -> None:
    if not runs or probe is None:
        st.info("The report needs the passes over a dataset (Scores tab).")
        return
    by_name = {loaded.name: loaded for loaded in models if loaded.name in {r.name for r in runs}}
    keys = [pass_key(by_name[run.name], probe, config) for run in runs]
    settings = canonical({"passes": [hashlib.sha256(k.settings.encode()).hexdigest() for k in keys],
                          "models": [[run.name, k.model_sha256] for run, k in zip(runs, keys)],
                          "images": [image.key for image in images], "match_threshold": config.match_threshold})
    key = RunKey.make(REPORT_KIND, combine(k.model_sha256 for k in keys), keys[0].dataset_fingerprint,
                      canonical({**settings, "split": probe.identity.split}))
    ws = workspace()
    if st.button("Build the HTML report", key="compare.build_report", icon=":material/description:"):
        with st.spinner("Building the report ..."):
            models_by_name = {name: loaded.model for name, loaded in by_name.items()}
            comparison = comparison_from_runs(runs, models_by_name, probe.dataset, probe.indices(config), config)
            views = latent_views(models, runs, probe, config, "pca", 0, False)
            names = {name: list(model.class_names) for name, model in models_by_name.items()}
            html = comparison_report(comparison, names, views, explained).render()
            ws.save_run(key, Payload(data={"models": [r.name for r in runs], "bytes": len(html)},
                                     tables={"scores": scores_table(runs)}, blobs={"report.html": html.encode()},
                                     provenance=comparison.record),
                        model_name=" vs ".join(r.name for r in runs), dataset_name=probe.label, replace=True)
    record = ws.find_run(key)
    if record is not None:
        stored_note(record)
        html_bytes = record.payload.blobs["report.html"]
        st.download_button("Download the report (HTML)", html_bytes, "protoviz_comparison.html", "text/html",
                           key="compare.report_html", on_click="ignore", icon=":material/download:")
        st.caption(f"{len(html_bytes) / 1e6:.1f} MB, self-contained: figures, images and the reproducibility panel "
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
        explained, images = same_images(models)
    with scores_tab:
        runs, probe, config = dataset_section(models)
        scores_section(models, runs, probe, config)
    try:
        with match_tab:
            matching_section(runs)
        with latent_tab:
            latent_section(models, runs, probe, config)
        with report_tab:
            report_section(models, runs, probe, config, explained, images)
    except ProtovizError as error:
        show_error(error)


main()
