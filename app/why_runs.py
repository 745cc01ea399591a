"""The Why page's computations: local explanations (kept for the process, keyed by model file, image
content and settings) and dataset-wide ones (background jobs kept in the visitor's workspace), plus the
tables that set two data paths or a characteristic and its noise floor side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import streamlit as st

import protoviz.explain.global_ as global_module
from app.cache import LoadedModel
from app.datasets import PageDataset
from app.jobs import job_result
from app.store import job_manager
from app.widgets import NamedImage
from protoviz.explain import ExplainConfig, explain_images
from protoviz.explain.characteristics import FLOOR_PREFIX, get_characteristic
from protoviz.explain.export import provenance
from protoviz.explain.global_ import GlobalExplanation, global_key
from protoviz.explain.local import LocalExplanation
from protoviz.explain.params import IDENTITY
from protoviz.explain.summary import summarise_vector
from protoviz.payload import canonical_json, decode

MAX_LOCAL_RESULTS = 32
PATH_LABELS = {"published": "as published (Explaining_Prototypes)", "clean": "clean"}
CROP_CODEC = "JPEG quality 95 via OpenCV"


def _config_key(config: ExplainConfig) -> str:
    return canonical_json(config.to_dict())


@st.cache_resource(max_entries=MAX_LOCAL_RESULTS, show_spinner=False)
def _local(model_key: str, image_key: str, config_key: str, prototype: int | None, _loaded: LoadedModel,
           _image: NamedImage, _config: ExplainConfig) -> LocalExplanation:
    with _loaded.lock:
        if prototype is None:
            return explain_images(_loaded.model, [_image.image], _config, keep_images=True)
        return explain_images(_loaded.model, [_image.image], _config, prototypes=[prototype], keep_images=True)


def local_result(loaded: LoadedModel, image: NamedImage, config: ExplainConfig,
                 prototype: int | None = None) -> LocalExplanation:
    """All prototypes' Delta for one image with whole-image modifications (``prototype`` None), or one
    prototype's with ``config.region``; computed once per process for the same model file, image and settings."""
    return _local(f"{loaded.name}:{loaded.sha256}", image.key, _config_key(config), prototype, loaded, image, config)


def measured(values: Mapping[str, float]) -> dict[str, float]:
    """The values of the characteristics themselves (no noise floors)."""
    return {k: v for k, v in values.items() if not k.startswith(FLOOR_PREFIX) and k != IDENTITY}


def summary_rows(values: Mapping[str, float], prototype: int) -> list[dict[str, Any]]:
    """One row per measured characteristic against its noise floor, most important first."""
    return [{"rank": r.rank, "characteristic": r.characteristic, "Δ": r.importance,
             "noise floor": None if math.isnan(r.floor) else r.floor,
             "floor from": r.floor_source or "-", "margin (Δ − floor)": None if math.isnan(r.margin) else r.margin,
             "above its floor": r.above_floor} for r in summarise_vector(values, prototype)]


def codec_line(config: ExplainConfig, with_crops: bool) -> str:
    """Why the published path differs, from each characteristic's registered codec."""
    stored: dict[str, list[str]] = {}
    for name in measured({n: 0.0 for n in config.characteristics}):
        stored.setdefault(get_characteristic(name).published.describe(), []).append(name)
    parts = "; ".join(f"{', '.join(names)} as {codec}" for codec, names in stored.items())
    if with_crops:
        return (f"Why they differ: Explaining_Prototypes writes each crop to disk ({CROP_CODEC}) and each modified "
                f"image too ({parts}), and reads them back; the clean path keeps everything in memory.")
    return (f"Why they differ: Explaining_Prototypes writes each modified image to disk ({parts}) and reads it back; "
            "the clean path keeps everything in memory.")


def paths_table(published: Mapping[str, float], clean: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per characteristic: the value on each data path and their difference."""
    return [{"characteristic": name, PATH_LABELS["published"]: value, PATH_LABELS["clean"]: clean.get(name, math.nan),
             "difference (published − clean)": value - clean.get(name, math.nan)}
            for name, value in measured(published).items()]


def rank_agreement(published: GlobalExplanation, clean: GlobalExplanation) -> list[dict[str, Any]]:
    """Per characteristic: Spearman's rank correlation over the explained prototypes between the two paths."""
    from scipy.stats import spearmanr

    rows = []
    explained = published.explained
    for name in measured({n: 0.0 for n in published.characteristics}):
        m = published.characteristics.index(name)
        a, b = published.importance[explained, m], clean.importance[explained, m]
        ok = np.isfinite(a) & np.isfinite(b)
        rho = float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 and np.ptp(a[ok]) and np.ptp(b[ok]) else None
        rows.append({"characteristic": name, "rank agreement over prototypes (Spearman)": rho})
    return rows


def global_run(loaded: LoadedModel, data: PageDataset, config: ExplainConfig, limit: int | None, batch: int,
               prototypes: Sequence[int] | None, start: bool) -> GlobalExplanation | bool:
    """The dataset-wide explanation (stored, or started now when ``start``); else whether its job is queued
    or running (its progress panel is shown)."""
    model, lock, dataset = loaded.model, loaded.lock, data.dataset  # read now: the job runs without the session
    info = provenance(model, loaded.name, {**dataset.describe(), "limit": limit}, config.seed)
    chosen = None if config.region == "whole" else list(prototypes or [])

    def work(progress: Any) -> GlobalExplanation:
        return global_module.explain_dataset(model, dataset, config, batch_size=batch, limit=limit, progress=progress,
                                             provenance=info, lock=lock, prototypes=chosen)

    key = global_key(loaded.sha256, dataset, config, limit, chosen, data.identity)
    where = f" ({config.region})" if config.region != "whole" else ""
    record = job_result(key, work, start=start, label=f"Why{where}: {loaded.name} on {data.name}",
                        model_name=loaded.name, dataset_name=data.name)
    if record is None:
        return start or job_manager().find(key) is not None
    result: GlobalExplanation = decode(record.payload)
    return result


def with_path(config: ExplainConfig, path: str) -> ExplainConfig:
    return replace(config, path=path)
