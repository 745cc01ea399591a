"""Process-wide caches: models load once per process and are shared by all sessions behind a lock.

``st.cache_resource`` values are shared across sessions and threads, so every model comes with a
:class:`~protoviz.locking.ModelLock` that callers hold while running it (see :func:`app.state.get_model`).
Dataset passes take it around each batch (``lock=loaded.lock``), never for a whole pass, and a wait for
it ends after ``PROTOVIZ_LOCK_TIMEOUT`` seconds (default 120) with a clear message, so one session's
long evaluation cannot block the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from protoviz.device import describe_device, pick_device
from protoviz.kept_loading import KeptSettings, load_kept
from protoviz.locking import DEFAULT_TIMEOUT_S, ModelLock
from protoviz.models.base import ModelSummary, PrototypeModel
from protoviz.models.registry import load_model
from protoviz.provenance import library_versions, model_identity

MAX_MODELS = 8


@dataclass(eq=False)
class LoadedModel:
    """A model loaded on the dashboard's device. Hold ``lock`` while running ``model`` (``with
    loaded.lock:`` for one forward; ``lock=loaded.lock`` for a pass, which takes it per batch)."""

    name: str
    path: Path
    model: PrototypeModel
    summary: ModelSummary
    device: torch.device
    lock: ModelLock = field(default_factory=ModelLock)

    @property
    def sha256(self) -> str | None:
        """What identifies the model in stored results: its file's sha256, or for a kept model loaded with
        hints, class names or sources the digest of the file and those (see :mod:`protoviz.kept_loading`)."""
        return self.model.metadata.get("checkpoint_sha256")

    @property
    def file_sha256(self) -> str | None:
        """The sha256 of the checkpoint file itself."""
        return self.model.metadata.get("file_sha256", self.sha256)

    def provenance(self) -> dict[str, object]:
        """How results computed with this model were made (recorded next to every result): the same model
        fields and versions as a pass's :class:`~protoviz.provenance.Provenance`, plus name and file."""
        return {**model_identity(self.model), "name": self.name, "path": str(self.path),
                "device": describe_device(self.device), "versions": library_versions()}


@st.cache_resource(max_entries=MAX_MODELS, show_spinner=False)
def load_cached_model(name: str, path: str, family: str | None, device: str, mtime_ns: int,
                      kept: str = "") -> LoadedModel:
    """Load a checkpoint once per (path, family, device, modification time, kept settings) for the whole process.

    ``mtime_ns`` is part of the key so that a checkpoint rewritten on disk is read again. ``kept`` is a
    kept model's :class:`~protoviz.kept_loading.KeptSettings` as JSON (its load hints, class names and
    attached sources, applied on every load), or "" for a demo model.
    """
    del mtime_ns  # only part of the cache key
    if kept:
        from app.store import workspace

        model = load_kept(path, KeptSettings.from_json(kept), device, workspace())
    else:
        model = load_model(path, family=family, device=device)
    model.eval()
    return LoadedModel(name=name, path=Path(path), model=model, summary=model.summary(), device=model.device,
                       lock=ModelLock(f"model {name!r}", lock_timeout()))


def lock_timeout() -> float:
    """Seconds a request waits for a busy model: ``PROTOVIZ_LOCK_TIMEOUT``, default 120."""
    try:
        value = float(os.environ.get("PROTOVIZ_LOCK_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


@st.cache_resource(show_spinner=False)
def dashboard_device(preference: str | None) -> torch.device:
    """The device every model of this process runs on (CUDA, then MPS, then CPU unless overridden)."""
    return pick_device(preference)
