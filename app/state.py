"""Typed access to the dashboard's shared state: which models exist, loaded models, session results.

Demo models are the ``*.safetensors`` files of ``assets/models`` (env ``PROTOVIZ_MODEL_DIR``
overrides it); models added this session (e.g. uploaded on the Models page) live in the session.
Sample images are the files of ``assets/samples`` (env ``PROTOVIZ_SAMPLE_DIR``). Uploaded checkpoints
live in a private folder per session (:func:`session_uploads`); typed server paths are allowed only
inside ``PROTOVIZ_ALLOWED_ROOTS`` (:func:`path_policy`).
The device is picked automatically (env ``PROTOVIZ_DEVICE``, e.g. ``cpu``, overrides it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from app.cache import LoadedModel, dashboard_device, load_cached_model
from protoviz.errors import ModelError
from protoviz.paths import PathPolicy
from protoviz.uploads import SessionUploads, UploadLimits, sweep_stale, upload_base

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_USER_MODELS = "protoviz.user_models"
_UPLOADS = "protoviz.uploads"
_RESULTS = "protoviz.results."


@dataclass(frozen=True)
class ModelEntry:
    """A model the dashboard can load: its display name, file, family hint and origin."""

    name: str
    path: Path
    family: str | None = None
    origin: str = "demo"  # 'demo' | 'session'


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
    """Demo models plus the models added in this session (session names win on a clash)."""
    return {**demo_models(), **_user_models()}


def add_user_model(name: str, path: str | Path, family: str | None = None) -> ModelEntry:
    """Register a checkpoint for this session and load it once, so a bad file fails here.

    Raises :class:`~protoviz.errors.CheckpointError` (or another ProtovizError) if it cannot be loaded.
    """
    clean = name.strip()
    if not clean:
        raise ModelError("a model needs a non-empty name")
    entry = ModelEntry(clean, Path(path), family, origin="session")
    _load(entry)
    _user_models()[clean] = entry
    return entry


def remove_user_model(name: str) -> None:
    """Forget a model added this session (demo models cannot be removed)."""
    _user_models().pop(name, None)


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


def session_results(namespace: str) -> dict[str, Any]:
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
        uploads = st.session_state[_UPLOADS] = SessionUploads(upload_root(), UploadLimits.from_env())
    return uploads


def path_policy() -> PathPolicy:
    """Which typed server paths this server allows (``PROTOVIZ_ALLOWED_ROOTS``; none by default). The
    sessions' upload folders are never reachable by typing."""
    return PathPolicy.from_env(denied=(upload_root(),))


def _user_models() -> dict[str, ModelEntry]:
    return st.session_state.setdefault(_USER_MODELS, {})


def _load(entry: ModelEntry) -> LoadedModel:
    if not entry.path.is_file():
        raise ModelError(f"model {entry.name!r}: file {entry.path} does not exist")
    mtime = entry.path.stat().st_mtime_ns
    return load_cached_model(entry.name, str(entry.path), entry.family, str(current_device()), mtime)
