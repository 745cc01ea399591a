"""Dataset passes shared by the Prototypes and Compare pages, kept in the visitor's workspace.

A *probe* is the dataset a page runs over (a server folder or the bundled synthetic set), its split,
its identity (fingerprint) and the images chosen (a seeded subset). A model's *pass* over a probe
(top-k patches, activation profiles, accuracy: :class:`~protoviz.compare.summary.ModelRun`) is a
background job (:func:`app.jobs.job_result`) whose result is stored in the workspace under
:func:`pass_key` (kind ``compare``: model sha256, dataset fingerprint, split and the canonical pass
settings), so the Prototypes and Compare pages share it, a refresh or a later visit finds it ("From the
store"), and the Results page lists, exports and deletes it.

Scores other work keeps (Evaluate's consistency and stability, kind ``evaluate``; the Why page's global
characteristics, kind ``why``) join a model's row or card only from a stored run with the same model
file, dataset fingerprint, split and settings (:func:`joined_scores`, :func:`card_scores`); the buttons
here start those jobs with exactly those keys. Decoded results are cached per stored run (owner, run id,
time), so a rerun of the page does not read a large result again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from app.cache import LoadedModel
from app.jobs import job_result
from app.store import job_manager, workspace
from app.widgets import server_path_input, shown_path
from protoviz.compare.latent import PROJECTION_LABELS, PROJECTIONS, LatentView, latent_view
from protoviz.compare.summary import (
    PASS_RESULT,
    CompareConfig,
    ModelRun,
    open_probe_dataset,
    probe_indices,
    scan_dataset,
)
from protoviz.errors import ModelError, ProtovizError
from protoviz.payload import decode
from protoviz.provenance import DatasetIdentity, canonical, dataset_identity, selection_digest
from protoviz.workspace import RunKey, RunRecord, RunSummary, Workspace

SYNTHETIC = "bundled synthetic test set"
PASS_KIND = "compare"  # a model's pass over a probe: top-k patches, profiles, accuracy
EVALUATE_KIND = "evaluate"  # the Evaluate page's kind (protoviz.metrics.runner)
WHY_KIND = "why"  # the Why page's kind (protoviz.explain.global_)
PART_METRICS = ("consistency", "stability")
_OPENED = "compare.opened_datasets"  # (folder, split) -> (dataset, identity): handles, not results
DECODED_KEPT = 6  # decoded results kept per process (a CUB-scale pass is ~150 MB in memory)


# ----- the probe dataset -------------------------------------------------------------------------------
def dataset_widget(prefix: str) -> tuple[str | None, str, int | None]:
    """(folder or None for the synthetic set, split, max images or None) chosen on the page."""
    source_col, split_col, size_col = st.columns([2, 1, 1])
    source = source_col.radio("Dataset", [SYNTHETIC, "local folder"], horizontal=True, key=f"{prefix}.source")
    folder = None
    if source != SYNTHETIC:
        with source_col:
            folder = server_path_input("Folder (CUB-200-2011 layout, Stanford Cars/Dogs or ImageFolder)",
                                       key=f"{prefix}.folder")
    split = split_col.selectbox("Split", ["test", "train", "all"], key=f"{prefix}.split")
    limit = size_col.number_input("Images (0 = all)", min_value=0, value=200, step=50, key=f"{prefix}.limit",
                                  help="A seeded random subset keeps quick runs quick; the same for every model.")
    return folder, split, int(limit) or None


@dataclass(frozen=True)
class Probe:
    """A dataset a page runs over: ``folder`` (None = the synthetic set), ``split``, the opened ``dataset``
    and its ``identity`` (fingerprint, split, description)."""

    folder: str | None
    split: str
    dataset: Any
    identity: DatasetIdentity

    @property
    def label(self) -> str:
        """How the dataset is named on the page and in job labels (server paths shortened)."""
        where = SYNTHETIC if self.folder is None else shown_path(self.folder)
        return f"{where} ({self.split})"

    def indices(self, config: CompareConfig) -> list[int]:
        """The probe images a pass with ``config`` uses (a seeded subset, the same for every model)."""
        return probe_indices(len(self.dataset), config.max_images, config.seed)


def open_probe(folder: str | None, split: str) -> Probe:
    """Open the dataset (the synthetic set is generated once) and fingerprint it, once per session."""
    opened = st.session_state.setdefault(_OPENED, {})
    if (folder, split) not in opened:
        with st.spinner("Opening the dataset (the synthetic set is generated once, ~10 s) ..."):
            dataset = open_probe_dataset(folder, split)
            opened[(folder, split)] = (dataset, dataset_identity(dataset))
    dataset, identity = opened[(folder, split)]
    return Probe(folder, split, dataset, identity)


# ----- keys -------------------------------------------------------------------------------------------
def _sha(loaded: LoadedModel) -> str:
    if not loaded.sha256:
        raise ModelError(f"model {loaded.name!r} has no checkpoint sha256: its results cannot be kept")
    return loaded.sha256


def _fingerprint(probe: Probe) -> str:
    if not probe.identity.fingerprint:
        raise ModelError(f"{probe.label} has no fingerprint: results on it cannot be kept")
    return probe.identity.fingerprint


def make_key(kind: str, loaded: LoadedModel, probe: Probe, settings: dict[str, Any]) -> RunKey:
    """The workspace key of a ``kind`` result of this model on this probe: the settings the pass records,
    with the split (what :meth:`protoviz.provenance.RunKey.of` makes of the pass's provenance)."""
    return RunKey.make(kind, _sha(loaded), _fingerprint(probe), canonical({**settings, "split": probe.identity.split}))


def pass_key(loaded: LoadedModel, probe: Probe, config: CompareConfig) -> RunKey:
    """The key of this model's pass over the probe with ``config`` (images, top-k, profile, thresholds)."""
    return make_key(PASS_KIND, loaded, probe, config.settings(probe.indices(config)))


def part_config(config: CompareConfig) -> Any:
    """Consistency and stability with their default parameters (what the Evaluate page runs by default)."""
    from protoviz.metrics.runner import EvaluationConfig

    return EvaluationConfig(metrics=PART_METRICS, batch_size=config.batch_size)


def part_scores_key(loaded: LoadedModel, probe: Probe, config: CompareConfig) -> RunKey:
    """The key of consistency/stability over this page's probe images: the only scores that may join."""
    return make_key(EVALUATE_KIND, loaded, probe, part_config(config).settings(probe.indices(config)))


def characteristics_key(loaded: LoadedModel, probe: Probe, limit: int | None) -> RunKey:
    """The key of the default global characteristics over the first ``limit`` images (the Why page's kind)."""
    from protoviz.explain.params import ExplainConfig

    total = len(probe.dataset) if limit is None else min(len(probe.dataset), limit)
    settings = {"explain": ExplainConfig(), "images": selection_digest(range(total)), "image_count": total}
    return make_key(WHY_KIND, loaded, probe, settings)


# ----- stored results, decoded once per run ---------------------------------------------------------------
@st.cache_resource(max_entries=DECODED_KEPT, ttl=3600, show_spinner=False)
def _decoded(owner: str, run_id: int, stored_at: float, _ws: Workspace) -> Any:
    del owner, stored_at  # the cache key: whose run, which run, which version of it
    return decode(_ws.get_run(run_id).payload)


def load_result(summary: RunSummary) -> Any:
    """The typed result of a stored run of this visitor (decoded once; see the module doc)."""
    ws = workspace()
    return _decoded(ws.owner, summary.id, summary.stored_at, ws)


def has_runs(loaded: LoadedModel, kind: str) -> bool:
    """True when this visitor keeps a ``kind`` result of the model, or one is being computed (so a page
    opens its dataset to find it)."""
    if not loaded.sha256:
        return False
    if workspace().list_runs(kind=kind, model_sha256=loaded.sha256, limit=1):
        return True
    return any(j.kind == kind and j.key.model_sha256 == loaded.sha256 and not j.finished
               for j in job_manager().list_jobs(limit=20))


# ----- a model's pass as a job ------------------------------------------------------------------------------
def model_pass(loaded: LoadedModel, probe: Probe, config: CompareConfig, *, start: bool) -> ModelRun | None:
    """This model's pass over the probe: the stored one, a running job's progress panel (None), or, with
    ``start``, a new job. The model's lock is taken per batch, so other sessions are not held up."""
    key = pass_key(loaded, probe, config)
    model, lock, name, dataset = loaded.model, loaded.lock, loaded.name, probe.dataset
    indices = probe.indices(config)

    def work(progress: Any) -> ModelRun:  # on a worker thread: no st.* here
        run = scan_dataset(name, model, dataset, indices, config, progress, lock=lock)
        if run is None:  # only a torchrun shard returns None
            raise ProtovizError("compare: a single-process pass returned no run")
        return run

    record = job_result(key, work, start=start, label=f"Top-k patches and profiles · {name} · {probe.label}",
                        model_name=name, dataset_name=probe.label, with_blobs=False)
    return None if record is None else as_run(loaded, record)


def as_run(loaded: LoadedModel, record: RunRecord | RunSummary) -> ModelRun:
    """The decoded pass of a stored record, named as the model is named on this page."""
    if record.result_type != PASS_RESULT:
        raise ModelError(f"run #{record.id} is a {record.result_type} result, not a model pass")
    run = load_result(record)
    return run if run.name == loaded.name else replace(run, name=loaded.name)


def stored_pass(loaded: LoadedModel, probe: Probe, config: CompareConfig) -> ModelRun | None:
    """The stored pass of this model over the probe with ``config``, or None (no job is shown or started)."""
    found = workspace().find_run(pass_key(loaded, probe, config), with_blobs=False)
    return None if found is None else as_run(loaded, found)


# ----- other pages' results, joined on keys -------------------------------------------------------------
def _same_settings(stored: RunKey, wanted: RunKey, metric: str | None) -> bool:
    """Equal keys; for an evaluation, equal but for the other metrics that ran in the same pass (a score
    does not change with its neighbours), and ``metric`` among the stored ones."""
    if (stored.kind, stored.model_sha256, stored.dataset_fingerprint) != \
            (wanted.kind, wanted.model_sha256, wanted.dataset_fingerprint):
        return False
    if metric is None:
        return stored.settings == wanted.settings
    have, want = stored.settings_dict, wanted.settings_dict
    metrics = have.pop("metrics", None)
    want.pop("metrics", None)
    return have == want and (metrics is None or metric in metrics)


def keyed_results(loaded: LoadedModel, wanted: RunKey, metric: str | None = None) -> list[tuple[RunSummary, Any]]:
    """This visitor's stored results of the model that answer ``wanted`` (see :func:`_same_settings`),
    newest first, decoded; results of a type this protoviz cannot read are skipped."""
    found = []
    for summary in workspace().list_runs(kind=wanted.kind, model_sha256=wanted.model_sha256,
                                         dataset_fingerprint=wanted.dataset_fingerprint, limit=50):
        if _same_settings(summary.key, wanted, metric):
            try:
                found.append((summary, load_result(summary)))
            except ProtovizError:
                continue
    return found


def model_results(loaded: LoadedModel, kind: str) -> list[tuple[RunSummary, Any]]:
    """This visitor's stored ``kind`` results of the model on any dataset, newest first (decoded)."""
    if not loaded.sha256:
        return []
    found = []
    for summary in workspace().list_runs(kind=kind, model_sha256=loaded.sha256, limit=20):
        try:
            found.append((summary, load_result(summary)))
        except ProtovizError:
            continue
    return found


def joined_scores(loaded: LoadedModel, probe: Probe, config: CompareConfig) -> dict[str, float]:
    """Consistency and stability of this model over exactly this page's probe images and settings, by
    column with its unit, e.g. ``{"consistency (%)": 62.5}``; empty when none is stored."""
    wanted = part_scores_key(loaded, probe, config)
    scores: dict[str, float] = {}
    for metric in PART_METRICS:
        for _, result in keyed_results(loaded, wanted, metric):
            score = getattr(result, "results", {}).get(metric)
            if score is not None:
                for column, value in score.headline().items():
                    scores.setdefault(f"{column} ({score.unit})", float(value))
                break
    return scores


def start_part_scores(loaded: LoadedModel, probe: Probe, config: CompareConfig, *, start: bool) -> Any:
    """Huang et al.'s consistency and stability over the probe images (needs part annotations), as a job
    stored under the Evaluate page's kind: the stored result, a progress panel (None), or a new job."""
    from protoviz.metrics.runner import evaluate

    key = part_scores_key(loaded, probe, config)
    model, lock, dataset = loaded.model, loaded.lock, probe.dataset
    evaluation, indices = part_config(config), probe.indices(config)
    if start:
        dataset.require_parts("consistency and stability")

    def work(progress: Any) -> Any:
        return evaluate(model, dataset, evaluation, progress, lock=lock, indices=indices)

    record = job_result(key, work, start=start, label=f"Consistency and stability · {loaded.name} · {probe.label}",
                        model_name=loaded.name, dataset_name=probe.label, with_blobs=False)
    return None if record is None else load_result(record)


def start_characteristics(loaded: LoadedModel, probe: Probe, limit: int | None, *, start: bool) -> Any:
    """Global colour/shape/texture/contrast/saturation importance of every prototype (Nauta et al.) as a job
    stored under the Why page's kind: the stored result, a progress panel (None), or a new job."""
    from protoviz.explain.global_ import explain_dataset

    key = characteristics_key(loaded, probe, limit)
    model, lock, dataset, name, sha = loaded.model, loaded.lock, probe.dataset, loaded.name, loaded.sha256

    def work(progress: Any) -> Any:
        return explain_dataset(model, dataset, limit=limit, progress=progress, lock=lock,
                               provenance={"checkpoint_sha256": sha, "model": name})

    record = job_result(key, work, start=start, label=f"Characteristics · {name} · {probe.label}", model_name=name,
                        dataset_name=probe.label, with_blobs=False)
    return None if record is None else load_result(record)


# ----- latent views ------------------------------------------------------------------------------------------
def projection_picker(prefix: str) -> tuple[str, int]:
    """The latent projection (PCA, t-SNE, PaCMAP) and its seed."""
    method_col, seed_col = st.columns([3, 1])
    method = method_col.segmented_control("Projection", PROJECTIONS, default="pca", key=f"{prefix}.projection",
                                          format_func=PROJECTION_LABELS.__getitem__, required=True) or "pca"
    seed = int(seed_col.number_input("Seed", 0, 10_000, 0, key=f"{prefix}.seed",
                                     help="t-SNE and PaCMAP are random; the same seed gives the same view"))
    return str(method), seed


def projected(loaded: LoadedModel, run: ModelRun, key: RunKey, method: str, seed: int, *, start: bool,
              label: str) -> LatentView | None:
    """The latent view of a pass: PCA at once; t-SNE and PaCMAP as a job kept in the workspace (keyed by
    the pass, the projection and its seed), so a slow projection of a large model is made once."""
    if method == "pca":
        return latent_view(loaded.model, run.topk, "pca", seed)
    model, topk = loaded.model, run.topk
    settings = canonical({"pass": hashlib.sha256(key.settings.encode()).hexdigest(), "method": method, "seed": seed})
    latent_key = RunKey.make("latent", key.model_sha256, key.dataset_fingerprint, settings)

    def work(progress: Any) -> LatentView:
        progress(0, 1, PROJECTION_LABELS[method])
        view = latent_view(model, topk, method, seed)
        progress(1, 1, PROJECTION_LABELS[method])
        return view

    record = job_result(latent_key, work, start=start, label=f"{PROJECTION_LABELS[method]} view · {label}",
                        model_name=loaded.name, unit="projection")
    return None if record is None else decode(record.payload)


def source_caption(summary: RunSummary, result: Any) -> str:
    """Where a stored result was computed, e.g. ``'test split of CUB/, 200 images (run #4)'``."""
    provenance = getattr(result, "provenance", None) or getattr(result, "run", None)
    dataset = getattr(provenance, "dataset", None)
    if dataset is None:
        return f"unknown images (run #{summary.id})"
    root = dataset.description.get("root")
    where = shown_path(root) if root else "an image list"
    return f"{dataset.split or '?'} split of {where}, {getattr(provenance, 'images', '?')} images (run #{summary.id})"


def images_key(names_and_digests: list[str]) -> str:
    """A fingerprint of images in memory (uploads, samples) from their names and content digests, in order."""
    digest = hashlib.sha256(b"protoviz-images/1")
    for item in names_and_digests:
        digest.update(b"\n" + item.encode("utf-8"))
    return digest.hexdigest()
