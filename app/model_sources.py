"""Models page, "Prototype sources" tab: find a kept model's sources and attach them.

Two ways, both background jobs (:func:`app.jobs.job_result`: progress with time left, Stop, the result
kept as a workspace run of kind ``sources``):

- re-project onto a training set (:func:`protoviz.sources.project_sources`): each prototype's nearest
  eligible patch, as its family's push picks it;
- import what an original push wrote (:func:`protoviz.sources.import_push_folder`), with the image
  folder the push read.

Folders are typed server paths (only inside ``PROTOVIZ_ALLOWED_ROOTS``). The run is keyed by the model
(file + load hints), the image folder's fingerprint and the method, so the same request is served from
the store. A finished run is attached to the kept model (its ``sources`` record names the run), and the
model is reloaded with the sources on every page.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st

from app.cache import LoadedModel
from app.jobs import job_result
from app.state import kept_model, update_user_model
from app.store import job_manager
from app.widgets import plain, server_path_input, show_error, shown_path
from protoviz.errors import ProtovizError, WorkspaceError
from protoviz.fingerprint import combine, folder_fingerprint
from protoviz.jobs import JobFn
from protoviz.kept_loading import KeptSettings, kept_identity
from protoviz.payload import decode
from protoviz.progress import Progress
from protoviz.sources import import_push_folder, project_sources
from protoviz.sources.criteria import RULES
from protoviz.sources.pushdir import READERS
from protoviz.sources.stored import SourceSet, source_set
from protoviz.workspace import RunKey, RunRecord

PROJECT, PUSH = "re-project onto a training set", "import an original push folder"
KIND = "sources"
_PENDING = "models.sources.pending"  # model name -> run key settings: attach the result when it arrives


def sources_section(name: str, loaded: LoadedModel) -> None:
    """What the model's sources are, and the form that finds new ones."""
    model = loaded.model
    stored = kept_model(name)
    if stored is None:
        return
    attached = stored.sources or {}
    if attached.get("run_id") is not None:
        st.caption(f"Attached: {attached.get('found', '?')} of {attached.get('prototypes', '?')} prototypes, "
                   f"{plain(str(attached.get('method', '')))} on {plain(str(attached.get('data', '')))} "
                   f"(run #{attached['run_id']}).")
        if st.button("Detach (back to the file's own sources)", key=f"models.{name}.sources.detach"):
            _attach(name, None)
    methods = [m for m, ok in ((PROJECT, model.family in RULES), (PUSH, model.family in READERS)) if ok]
    if not methods:
        st.caption(f"Sources cannot be found for the {model.family} family.")
        return
    method = st.radio("How", methods, key=f"models.{name}.sources.how", horizontal=True)
    data = server_path_input("Training images (ImageFolder: DIR/<class>/<image>, classes in the model's order)"
                             if method == PROJECT else "The image folder the push read (ImageFolder)",
                             key=f"models.{name}.sources.data")
    push = server_path_input("The push folder (img/, img/epoch-N/, img_proto/<run>/, upsampling_results/ ...)",
                             key=f"models.{name}.sources.push") if method == PUSH else None
    left, right = st.columns(2)
    batch = int(left.number_input("Batch size", 1, 256, 32, key=f"models.{name}.sources.batch"))
    epoch = right.number_input("Push epoch (empty: from the file name, else the latest)", 0, 100000, None,
                               key=f"models.{name}.sources.epoch") if method == PUSH else None
    if not data or (method == PUSH and not push):
        st.caption("Type the folders to find sources.")
        return
    try:
        key = run_key(loaded, stored_settings(name), method, data, push, epoch)
    except ProtovizError as error:
        show_error(error)
        return
    clicked = st.button("Find sources", key=f"models.{name}.sources.start", type="primary", icon=":material/search:")
    pending: dict[str, str] = st.session_state.setdefault(_PENDING, {})
    if clicked:
        pending[name] = key.settings
    manager = job_manager()
    if pending.get(name) == key.settings or manager.find(key, active_only=True) is not None:
        pending[name] = key.settings  # a job from before a refresh is attached when it ends
        fn = job_fn(loaded, method, data, push, epoch, batch, checkpoint_name(loaded))
        record = job_result(key, fn, start=clicked, label=f"Sources of {name}", model_name=name,
                            dataset_name=shown_path(data), unit="images")
        if record is not None:
            pending.pop(name, None)
            if attached.get("run_id") != record.id:
                _attach(name, record)
        return
    try:
        found = manager.workspace.find_run(key, with_blobs=False)
    except WorkspaceError as error:
        show_error(error)
        return
    if found is not None and attached.get("run_id") != found.id:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.stored_at))
        st.caption(f":material/inventory_2: Found in the store: run #{found.id}, computed {when}.")
        if st.button("Attach them", key=f"models.{name}.sources.attach"):
            _attach(name, manager.workspace.get_run(found.id))


def stored_settings(name: str) -> KeptSettings:
    stored = kept_model(name)
    if stored is None:
        raise WorkspaceError(f"no kept model named {name!r}")
    return KeptSettings.of(stored)


def run_key(loaded: LoadedModel, settings: KeptSettings, method: str, data: str, push: str | None,
            epoch: int | None) -> RunKey:
    """The workspace key of a sources run: the model as it computes (file + family and load hints; class
    names and attached sources do not change what is found), the image folder, and how."""
    identity = kept_identity(loaded.file_sha256, replace(settings, class_names=None, sources=None))
    if identity is None:
        raise WorkspaceError("this model has no sha256 to key its sources by")
    fingerprint = folder_fingerprint(data)
    options: dict[str, Any] = {"method": "projection" if method == PROJECT else "push-folder"}
    if push is not None:
        options.update(push=folder_fingerprint(push), epoch=epoch)
        fingerprint = combine([fingerprint, options["push"]])
    return RunKey.make(KIND, identity, fingerprint, options)


def checkpoint_name(loaded: LoadedModel) -> str:
    """The checkpoint's original file name (an upload's unique prefix removed), e.g. ``10push0.7822.pth``."""
    return re.sub(r"^[0-9a-f]{12}-", "", loaded.path.name)


def job_fn(loaded: LoadedModel, method: str, data: str, push: str | None, epoch: int | None, batch: int,
           file_name: str) -> JobFn:
    """The job: runs on a worker thread, so everything it needs is read here (no st.* inside)."""
    model, lock = loaded.model, loaded.lock
    shown_data, shown_push = shown_path(data), shown_path(push) if push else None

    def shorten(lines: list[str]) -> list[str]:
        for real, shown in ((push, shown_push), (data, shown_data)):
            if real and shown:
                lines = [line.replace(str(Path(real)), shown) for line in lines]
        return lines

    def run(progress: Progress) -> SourceSet:
        if method == PROJECT:
            projection = project_sources(model, data, batch, progress, lock=lock)
            chosen = [s for s in projection.sources if s is not None]
            line = (f"{len(chosen)} of {model.num_prototypes} prototypes with a source among "
                    f"{len(projection.images)} images")
            lines = [line]
            return source_set(projection.sources, "projection", shown_data, lines, images=len(projection.images))
        assert push is not None
        imported = import_push_folder(model, push, data, epoch, batch, progress, checkpoint_name=file_name, lock=lock)
        return source_set(imported.sources, "push-folder", shown_data, shorten(imported.summary()),
                          push_dir=shown_push, layout=imported.layout, epoch=imported.epoch,
                          cells_agree=imported.cells_agree, boxes_differ=imported.boxes_differ)

    return run


def _attach(name: str, record: RunRecord | None) -> None:
    """Keep ``record``'s sources on model ``name`` (None: detach), reloading it; then rerun the page."""
    try:
        if record is None:
            update_user_model(name, sources=None)
        else:
            found = decode(record.payload)
            if not isinstance(found, SourceSet):
                raise WorkspaceError(f"run #{record.id} holds no prototype sources")
            description = {**found.description(), "run_id": record.id, "attached_at": time.time()}
            with st.spinner("Attaching the sources…"):
                update_user_model(name, sources=description)
    except ProtovizError as error:
        show_error(error)
        return
    st.rerun()
