"""Typed access to the dashboard's shared state: which models exist, loaded models, session results.

Demo models are the ``*.safetensors`` files of ``assets/models`` (env ``PROTOVIZ_MODEL_DIR``
overrides it); models a user adds (e.g. uploaded on the Models page) are copied into the workspace
(``PROTOVIZ_HOME``, see :mod:`app.store`) and stay across refreshes and restarts until removed.
Sample images are the files of ``assets/samples`` (env ``PROTOVIZ_SAMPLE_DIR``). Uploaded checkpoints
first land in a private folder per session (:func:`session_uploads`); typed server paths are allowed
only inside ``PROTOVIZ_ALLOWED_ROOTS`` (:func:`path_policy`).
The device is picked automatically (env ``PROTOVIZ_DEVICE``, e.g. ``cpu``, overrides it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from app.cache import LoadedModel, dashboard_device, load_cached_model
from app.store import workspace
from protoviz.errors import ModelError, WorkspaceError
from protoviz.kept_loading import KeptSettings
from protoviz.kept_models import StoredModel
from protoviz.models.legacy import checkpoint_file
from protoviz.paths import PathPolicy
from protoviz.uploads import SessionUploads, UploadLimits, sweep_stale, upload_base

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_UPLOADS = "protoviz.uploads"
_RESULTS = "protoviz.results."


@dataclass(frozen=True)
class ModelEntry:
    """A model the dashboard can load: its display name, file, family hint, origin and, for a kept model,
    what it is loaded with (hints, class names, attached sources)."""

    name: str
    path: Path
    family: str | None = None
    origin: str = "demo"  # 'demo' | 'added'
    settings: KeptSettings | None = None


def model_dir() -> Path:
    """Folder of the demo checkpoints."""
    return Path(os.environ.get("PROTOVIZ_MODEL_DIR", ROOT / "assets" / "models"))


def sample_dir() -> Path:
    """Folder of the bundled sample images."""
    return Path(os.environ.get("PROTOVIZ_SAMPLE_DIR", ROOT / "assets" / "samples"))


def demo_models() -> dict[str, ModelEntry]:
    """Every ``*.safetensors`` file of :func:`model_dir`, by file stem."""
    folder = model_dir()
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return {path.stem: ModelEntry(path.stem, path) for path in files}


def available_models() -> dict[str, ModelEntry]:
    """Demo models plus the models users added (added names win on a clash)."""
    return {**demo_models(), **_user_models()}


def add_user_model(name: str, path: str | Path, family: str | None = None,
                   hints: Mapping[str, str] | None = None) -> ModelEntry:
    """Keep a checkpoint (copied into the workspace) under ``name`` and load it once, so a bad file fails here.

    ``hints`` are the load hints the file cannot tell (``slots``, ``activation``, ``backbone``), applied on
    every load. Raises :class:`~protoviz.errors.CheckpointError` (or another ProtovizError) if it cannot be
    loaded (nothing is kept then), WorkspaceError if the name is taken or the workspace is full or unusable.
    """
    clean = name.strip()
    if not clean:
        raise ModelError("a model needs a non-empty name")
    store = workspace()
    if store.models.get(clean) is not None:
        raise ModelError(f"a model named {clean!r} is already kept; remove it on the Models page or choose "
                         "another name")
    given = {k: v for k, v in (hints or {}).items() if v}
    stored = store.models.add(clean, checkpoint_file(Path(path)), family=family, hints=given)
    entry = _entry(stored)
    try:
        _load(entry)
    except BaseException:
        store.models.remove(clean)
        raise
    return entry


def update_user_model(name: str, **changes: Any) -> ModelEntry:
    """Change what a kept model is loaded with: ``family``, ``hints``, ``class_names`` or ``sources`` (None
    clears one). The model is loaded with the new settings first; if that fails, nothing changes."""
    store = workspace()
    stored = store.models.get(name)
    if stored is None:
        raise ModelError(f"no kept model named {name!r} (another session may have removed it)")
    unknown = sorted(set(changes) - {"family", "hints", "class_names", "sources"})
    if unknown:
        raise ModelError(f"unknown model setting(s): {', '.join(unknown)}")
    if "hints" in changes:
        changes["hints"] = {k: v for k, v in (changes["hints"] or {}).items() if v}
    if changes.get("class_names") is not None:
        changes["class_names"] = tuple(changes["class_names"])
    settings = replace(KeptSettings.of(stored), **changes)
    _load(ModelEntry(name, stored.path, settings.family, "added", settings))
    updated = store.models.update(name, family=settings.family, hints=dict(settings.hints),
                                  class_names=settings.class_names, sources=settings.sources)
    return _entry(updated)


def kept_model(name: str) -> StoredModel | None:
    """The workspace record of an added model (None for a demo model or an unknown name)."""
    try:
        return workspace().models.get(name)
    except WorkspaceError:
        return None


def remove_user_model(name: str) -> None:
    """Forget an added model and delete its kept file (demo models cannot be removed)."""
    workspace().models.remove(name)


def get_model(name: str) -> LoadedModel:
    """The loaded model called ``name`` (loaded once per process). Hold ``.lock`` while running it."""
    models = available_models()
    if name not in models:
        known = ", ".join(models) or "none"
        raise ModelError(f"no model named {name!r}; available: {known}")
    return _load(models[name])


def current_device() -> torch.device:
    """The device models run on in this process."""
    return dashboard_device(os.environ.get("PROTOVIZ_DEVICE") or None)


def session_results(namespace: str) -> dict[Any, Any]:
    """A dict kept in this session across reruns, one per page/namespace (e.g. ``"explain"``)."""
    return st.session_state.setdefault(_RESULTS + namespace, {})


def sample_images() -> list[Path]:
    """The bundled sample images, sorted by name."""
    folder = sample_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@st.cache_resource(show_spinner=False)
def upload_root() -> Path:
    """The base folder of every session's upload folder (stale ones from a dead process are swept once)."""
    base = upload_base()
    sweep_stale(base)
    return base


def session_uploads() -> SessionUploads:
    """This session's private upload folder: unique names, size-bounded, removed when the session ends."""
    uploads = st.session_state.get(_UPLOADS)
    if uploads is None:
        uploads = st.session_state[_UPLOADS] = SessionUploads(upload_root(), upload_limits())
    return uploads


def upload_limits() -> UploadLimits:
    """``PROTOVIZ_MAX_UPLOAD_MB`` / ``PROTOVIZ_SESSION_DISK_MB``, the file limit capped at Streamlit's
    ``server.maxUploadSize`` (the browser cannot send more), so the page states the one limit that holds."""
    limits = UploadLimits.from_env()
    try:
        streamlit_bytes = int(float(st.get_option("server.maxUploadSize")) * 2**20)
    except (TypeError, ValueError, RuntimeError):
        return limits
    return replace(limits, max_file_bytes=min(limits.max_file_bytes, streamlit_bytes))


def path_policy() -> PathPolicy:
    """Which typed server paths this server allows (``PROTOVIZ_ALLOWED_ROOTS``; none by default). The
    sessions' upload folders are never reachable by typing."""
    return PathPolicy.from_env(denied=(upload_root(),))


def _user_models() -> dict[str, ModelEntry]:
    try:
        kept = workspace().models.all()
    except WorkspaceError:  # the Models and Results pages show why; other pages go on with the demo models
        logging.getLogger("protoviz.app").warning("added models unavailable", exc_info=True)
        return {}
    return {m.name: _entry(m) for m in kept}


def _entry(stored: StoredModel) -> ModelEntry:
    return ModelEntry(stored.name, stored.path, stored.family, origin="added", settings=KeptSettings.of(stored))


def _load(entry: ModelEntry) -> LoadedModel:
    if not entry.path.is_file():
        raise ModelError(f"model {entry.name!r}: file {entry.path} does not exist")
    mtime = entry.path.stat().st_mtime_ns
    kept = entry.settings.to_json() if entry.settings is not None and entry.settings.applied else ""
    return load_cached_model(entry.name, str(entry.path), entry.family, str(current_device()), mtime, kept)
