"""Process-wide caches: models load once per process and are shared by all sessions behind a lock.

``st.cache_resource`` values are shared across sessions and threads, so every model comes with a
``threading.Lock`` that callers hold while running it (see :func:`app.state.get_model`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from protoviz.device import describe_device, pick_device
from protoviz.models.base import ModelSummary, PrototypeModel
from protoviz.models.registry import load_model

MAX_MODELS = 8


@dataclass(eq=False)
class LoadedModel:
    """A model loaded on the dashboard's device. Hold ``lock`` while running ``model``."""

    name: str
    path: Path
    model: PrototypeModel
    summary: ModelSummary
    device: torch.device
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sha256(self) -> str | None:
        return self.model.metadata.get("checkpoint_sha256")

    def provenance(self) -> dict[str, object]:
        """How results computed with this model were made (recorded next to every result)."""
        return {"model": self.name, "path": str(self.path), "sha256": self.sha256,
                "family": self.summary.family, "device": describe_device(self.device),
                "torch": torch.__version__}


@st.cache_resource(max_entries=MAX_MODELS, show_spinner=False)
def load_cached_model(name: str, path: str, family: str | None, device: str, mtime_ns: int) -> LoadedModel:
    """Load a checkpoint once per (path, family, device, modification time) for the whole process.

    ``mtime_ns`` is part of the key so that a checkpoint rewritten on disk is read again.
    """
    del mtime_ns  # only part of the cache key
    model = load_model(path, family=family, device=device)
    model.eval()
    return LoadedModel(name=name, path=Path(path), model=model, summary=model.summary(), device=model.device)


@st.cache_resource(show_spinner=False)
def dashboard_device(preference: str | None) -> torch.device:
    """The device every model of this process runs on (CUDA, then MPS, then CPU unless overridden)."""
    return pick_device(preference)
