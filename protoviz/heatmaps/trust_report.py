"""All trust figures of several heatmap methods on one model and image set, with how they were made.

:func:`evaluate_methods` runs, per method: the maps, the parameter-randomisation check, the deletion /
insertion curves and (when part masks are given) the mask relevance; :class:`TrustReport` keeps the
results as numpy arrays (no tensors, safe to keep in a session) and gives a summary table and JSON.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from protoviz.errors import ConfigError
from protoviz.heatmaps.methods import HeatmapOptions, compute_heatmaps, get_method
from protoviz.heatmaps.methods.registry import prototype_rows
from protoviz.heatmaps.trust import (
    MaskRelevance,
    PerturbationConfig,
    PerturbationCurves,
    RandomisationConfig,
    RandomisationResult,
    assign_prototype_parts,
    mask_relevance,
    perturbation_curves,
    randomisation_check,
)
from protoviz.models.base import PrototypeModel
from protoviz.progress import Progress


@dataclass(frozen=True)
class TrustConfig:
    """Which methods to evaluate and the parameters of every check."""

    methods: tuple[str, ...] = ("upsample", "saliency", "smoothgrad", "prp", "random")
    options: HeatmapOptions = field(default_factory=HeatmapOptions)
    randomisation: RandomisationConfig = field(default_factory=RandomisationConfig)
    perturbation: PerturbationConfig = field(default_factory=PerturbationConfig)
    part_top_n: int = 5

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("TrustConfig: choose at least one heatmap method")
        for name in self.methods:
            get_method(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MethodTrust:
    """One method's results. maps: (B, K, H, W) float32."""

    method: str
    maps: np.ndarray
    randomisation: RandomisationResult
    curves: PerturbationCurves
    relevance: MaskRelevance | None
    seconds: float


@dataclass
class TrustReport:
    """Results of :func:`evaluate_methods`. prototype_indices: (B, K); prototype_parts: (B, K) or None."""

    model_name: str
    image_names: list[str]
    prototype_indices: np.ndarray
    prototype_parts: np.ndarray | None
    results: dict[str, MethodTrust]
    provenance: dict[str, Any]

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per method: the headline number of every check (means over images and prototypes)."""
        rows = []
        for name, r in self.results.items():
            row: dict[str, Any] = {
                "method": name,
                "randomisation rho": round(r.randomisation.score, 3),
                "randomisation check": "pass" if r.randomisation.passed else "FAIL",
                "deletion AUC (lower better)": _mean(r.curves.deletion_auc),
                "insertion AUC (higher better)": _mean(r.curves.insertion_auc),
                "insertion - deletion": _mean(r.curves.insertion_auc - r.curves.deletion_auc),
            }
            if r.relevance is not None:
                row.update({"mass in part": _mean(r.relevance.part_share), "part area": _mean(r.relevance.part_area),
                            "mass in object": _mean(r.relevance.object_share),
                            "object area": _mean(r.relevance.object_area)})
            pairs = self.prototype_indices.size
            row["ms per (image, prototype)"] = round(1000 * r.seconds / max(1, pairs), 2)
            rows.append(row)
        return rows

    def to_json(self) -> str:
        """Summary, per-(image, prototype) numbers, curves and provenance as JSON (maps left out)."""
        data = {
            "model": self.model_name, "images": self.image_names,
            "prototype_indices": self.prototype_indices.tolist(),
            "prototype_parts": None if self.prototype_parts is None else self.prototype_parts.tolist(),
            "summary": self.summary_rows(), "provenance": self.provenance,
            "methods": {name: _method_json(r) for name, r in self.results.items()},
        }
        return json.dumps(data, indent=1, default=_json_default)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(finite.mean()), 4) if finite.size else None


def _method_json(r: MethodTrust) -> dict[str, Any]:
    out = {
        "randomisation": {"stages": r.randomisation.stage_labels, "layers": r.randomisation.layers,
                          "mean_rho": r.randomisation.mean_rho, "rho": r.randomisation.rho,
                          "passed": r.randomisation.passed},
        "fractions": r.curves.fractions, "deletion": r.curves.deletion, "insertion": r.curves.insertion,
        "deletion_auc": r.curves.deletion_auc, "insertion_auc": r.curves.insertion_auc, "seconds": r.seconds,
    }
    if r.relevance is not None:
        out["relevance"] = asdict(r.relevance)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return np.where(np.isfinite(value), value, None).tolist() if value.dtype.kind == "f" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def top_prototypes(model: PrototypeModel, images: Tensor, k: int) -> Tensor:
    """(B, K) the ``k`` prototypes with the highest max similarity on each image."""
    with torch.no_grad():
        pooled = model(images.to(model.device)).max_similarities
    return pooled.topk(min(k, pooled.shape[1]), dim=1).indices


def _permille(fraction: float) -> int:
    return round(1000 * min(1.0, max(0.0, fraction)))


def evaluate_methods(model: PrototypeModel, images: Tensor, prototype_indices: Tensor | Sequence[int],
                     config: TrustConfig | None = None, part_masks: Tensor | None = None,
                     prototype_parts: Tensor | None = None, image_names: Sequence[str] | None = None,
                     model_name: str = "", progress: Progress | None = None) -> TrustReport:
    """Run every check of ``config`` for every method on normalised images (B, 3, H, W).

    part_masks: (B, H, W) part ids at the model's input size (0 = background) to add mask relevance;
    prototype_parts: (B, K) the part each prototype is about, else assigned by
    :func:`~protoviz.heatmaps.trust.assign_prototype_parts` over these images.
    ``progress(done, 1000, stage)`` is called as the work advances (``done`` in thousandths of the whole).
    """
    config = config or TrustConfig()
    images = images.to(model.device)
    indices = prototype_rows(prototype_indices, images.shape[0], model.num_prototypes, images.device)
    parts = None
    parts_source = None if part_masks is None else "given" if prototype_parts is not None else \
        ("assigned: part most covered by the 95th-percentile box of the upsampled map on the top "
         f"{config.part_top_n} images")
    if part_masks is not None:
        if prototype_parts is None:
            unique = indices.unique()
            assigned = assign_prototype_parts(model, images, part_masks, unique, config.part_top_n)
            lookup = torch.zeros(model.num_prototypes, dtype=torch.long, device=images.device)
            lookup[unique] = assigned
            prototype_parts = lookup[indices]
        parts = torch.as_tensor(prototype_parts, device=images.device).long()
    results: dict[str, MethodTrust] = {}
    n = len(config.methods)
    for i, name in enumerate(config.methods):
        def step(done: int, total: int | None, stage: str = "", i: int = i, name: str = name) -> None:
            if progress:
                progress(_permille((i + 0.1 + 0.6 * done / max(total or 1, 1)) / n), 1000, f"{name}: {stage}")

        step(0, 1, "maps")
        start = time.perf_counter()
        maps = compute_heatmaps(name, model, images, indices, config.options)
        seconds = time.perf_counter() - start
        randomisation = randomisation_check(name, model, images, indices, config.randomisation, config.options, step)
        if progress:
            progress(_permille((i + 0.75) / n), 1000, f"{name}: deletion / insertion curves")
        curves = perturbation_curves(model, images, indices, maps, config.perturbation, config.options.batch_rows)
        relevance = None
        if parts is not None and part_masks is not None:
            relevance = mask_relevance(maps, part_masks.to(maps.device), parts, get_method(name).signed)
        results[name] = MethodTrust(name, maps.float().cpu().numpy(), randomisation, curves, relevance, seconds)
    if progress:
        progress(1000, 1000, "done")
    names = list(image_names) if image_names is not None else [f"image {b}" for b in range(images.shape[0])]
    provenance = {"config": config.to_dict(), "device": str(images.device), "torch": torch.__version__,
                  "python": platform.python_version(), "model_family": model.family,
                  "num_images": int(images.shape[0]), "prototypes_per_image": int(indices.shape[1]),
                  "parts_source": parts_source}
    return TrustReport(model_name, names, indices.cpu().numpy(), None if parts is None else parts.cpu().numpy(),
                       results, provenance)


@dataclass(frozen=True)
class MaskedImages:
    """Images with part masks: images (B, 3, H, W) normalised, masks (B, H, W) part ids, names, part names."""

    images: Tensor
    masks: Tensor
    names: list[str]
    part_names: tuple[str, ...]


def synthetic_images(spec: Any, count: int, config: Any = None, split: str = "test") -> MaskedImages:
    """``count`` images of the synthetic set (generated once into the cache), spread over its classes,
    with their part masks at the model's input size ``spec`` (an InputSpec)."""
    from protoviz.data.datasets import load_batch, open_dataset
    from protoviz.data.demo import synthetic_dataset

    if count < 1:
        raise ConfigError(f"need at least one synthetic image, got {count}")
    dataset = open_dataset(synthetic_dataset(config), kind="cub", split=split, crop_to_box=False)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)).tolist()
    batch = load_batch(dataset, spec, picks, with_masks=True)
    if batch.masks is None:
        raise ConfigError(f"the synthetic set at {dataset.root} has no part masks")
    return MaskedImages(batch.images, batch.masks, batch.image_ids, tuple(dataset.part_names or ()))
