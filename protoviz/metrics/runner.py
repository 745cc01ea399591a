"""Run several metrics over a dataset with shared forward passes: one clean pass (accuracy,
consistency, purity, object overlap, the clean half of stability) plus one pass per noise draw.

``evaluate(model, dataset, EvaluationConfig(...))`` -> :class:`EvaluationResult` with headline scores,
per-prototype rows and a provenance record (every parameter, seed, model, dataset, device, versions).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from protoviz.data.datasets import Batch, ImageDataset, iterate_batches, load_batch
from protoviz.device import describe_device
from protoviz.errors import ConfigError
from protoviz.metrics.accuracy import Accuracy, AccuracyAccumulator
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.consistency import PartAccumulator, PartScores, class_mapping
from protoviz.metrics.deletion import DeletionCurves, deletion_insertion
from protoviz.metrics.parts import prototype_classes, select_pairs
from protoviz.metrics.purity import ObjectOverlap, ObjectOverlapAccumulator, Purity, PurityAccumulator, box_masks
from protoviz.metrics.stability import RegionStability, RegionStabilityAccumulator, add_noise
from protoviz.models.base import PrototypeModel

METRICS: dict[str, str] = {
    "accuracy": "top-1 accuracy (and class-balanced) of the model on the dataset",
    "consistency": "Huang et al.: share of prototypes whose region holds one part in >= mu of their class's images",
    "stability": "Huang et al.: share of images whose part vector is unchanged under Gaussian noise",
    "region_stability": "IoU of the 95th-percentile region with and without noise (needs no parts)",
    "purity": "PIP-Net: share of a prototype's top-10 patches holding its most frequent part",
    "object_overlap": "share of the 95th-percentile region on the object (needs part masks)",
    "deletion": "deletion/insertion AUC of a prototype's similarity in its own heatmap order",
}
PART_METRICS = ("consistency", "stability", "purity")
NOISE_METRICS = ("stability", "region_stability")
ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvaluationConfig:
    """What to compute and how. ``limit``: evaluate that many images evenly spaced over the dataset
    (every class represented when limit >= classes); None = all. ``deletion_images_per_class``: images
    per class on which each of the class's prototypes gets deletion/insertion curves."""

    metrics: tuple[str, ...] = ("accuracy", "consistency", "stability")
    parts: PartMetricConfig = field(default_factory=PartMetricConfig)
    batch_size: int = 32
    limit: int | None = None
    purity_top_k: int = 10
    purity_patch_size: float = 32.0
    deletion_steps: int = 10
    deletion_images_per_class: int = 2

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ConfigError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
        if self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise ConfigError(f"batch_size and limit must be >= 1, got {self.batch_size} and {self.limit}")
        if self.purity_top_k < 1 or self.deletion_steps < 1 or self.deletion_images_per_class < 1:
            raise ConfigError("purity_top_k, deletion_steps and deletion_images_per_class must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = list(self.metrics)
        return data


@dataclass(frozen=True)
class EvaluationResult:
    """Headline ``scores``, one row per prototype in ``prototypes``, and ``provenance``."""

    scores: dict[str, float]
    prototypes: list[dict[str, Any]]
    provenance: dict[str, Any]
    parts: PartScores | None = None
    accuracy: Accuracy | None = None
    region: RegionStability | None = None
    purity: Purity | None = None
    overlap: ObjectOverlap | None = None
    deletion: DeletionCurves | None = None

    @property
    def model_sha256(self) -> str | None:
        return self.provenance["model"].get("checkpoint_sha256")

    def prototype_part(self, index: int) -> str | None:
        """Name of prototype ``index``'s most frequent part, None without part results or part hits."""
        if self.parts is None:
            return None
        name = self.parts.dominant_part_names()[index]
        return None if name == "-" else name

    def prototype_scores(self, index: int) -> dict[str, float]:
        """Numeric per-prototype results of prototype ``index`` (for other pages' prototype cards)."""
        row = self.prototypes[index]
        return {k: float(v) for k, v in row.items() if k != "prototype" and isinstance(v, (int, float))
                and not isinstance(v, bool) and not k.startswith("f[") and math.isfinite(float(v))}


def evaluation_indices(count: int, limit: int | None) -> list[int]:
    """All indices, or ``limit`` indices evenly spaced over [0, count) (so every class appears when the
    dataset is sorted by class and limit >= classes)."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


class _Run:
    """The accumulators of one evaluation and the per-batch work that feeds them."""

    def __init__(self, model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig):
        self.model, self.config, self.metrics = model, config, set(config.metrics)
        for metric in self.metrics & set(PART_METRICS):
            dataset.require_parts(metric)
        if "object_overlap" in self.metrics and not (dataset.has_masks or dataset.has_object_boxes):
            raise ConfigError("object_overlap needs part masks (the synthetic set has them) or bounding boxes of "
                              f"uncropped images; {dataset.root} has neither (with boxes, turn cropping off)")
        device, size = model.device, model.input_spec.image_size
        self.label_map, self.class_match = class_mapping(model.class_names, dataset.class_names)
        self.label_map = self.label_map.to(device)
        self.relevance = prototype_classes(model).to(device)
        self.draws = config.parts.noise_draws if self.metrics & set(NOISE_METRICS) else 0
        num_p = self.relevance.shape[0]
        self.accuracy = AccuracyAccumulator(model.num_classes, device) if "accuracy" in self.metrics else None
        needs_parts = self.metrics & {"consistency", "stability"}
        self.parts = PartAccumulator(self.relevance, dataset.part_names or (), config.parts, size,
                                     self.draws if "stability" in self.metrics else 0) if needs_parts else None
        self.region = (RegionStabilityAccumulator(num_p, self.draws, size, device)
                       if "region_stability" in self.metrics else None)
        used = model.class_weights.detach().t().gt(0).any(dim=1)
        self.purity = (PurityAccumulator(num_p, dataset.part_names or (), size, device, used, config.purity_top_k,
                                         config.purity_patch_size) if "purity" in self.metrics else None)
        self.overlap = ObjectOverlapAccumulator(num_p, size, device) if "object_overlap" in self.metrics else None

    def process(self, batch: Batch) -> None:
        """Forward passes for one batch, then every accumulator; halves the batch on out-of-memory."""
        try:
            self._process(batch)
        except torch.OutOfMemoryError:
            if len(batch.indices) < 2:
                raise
            torch.cuda.empty_cache()
            half = len(batch.indices) // 2
            for part in (_slice(batch, 0, half), _slice(batch, half, len(batch.indices))):
                self.process(part)

    def _process(self, batch: Batch) -> None:
        device, parts_cfg = self.model.device, self.config.parts
        images = batch.images.to(device)
        labels = self.label_map[batch.labels.to(device)]
        out = self.model(images)
        noisy = [self.model.similarity_maps(add_noise(images, batch.indices, parts_cfg.seed, d, parts_cfg.noise_std,
                                                      parts_cfg.noise_clip)) for d in range(self.draws)]
        maps = out.similarity_maps
        parts = batch.parts.to(device) if batch.parts is not None else None
        if self.accuracy is not None:
            self.accuracy.update(out.logits, labels)
        if self.parts is not None and parts is not None:
            self.parts.update(labels, parts, maps, noisy if self.parts.stable.shape[0] else ())
        if self.region is not None or self.overlap is not None:
            image_idx, proto_idx = select_pairs(labels, self.relevance)
            if self.region is not None:
                self.region.update(image_idx, proto_idx, maps, noisy)
            if self.overlap is not None:
                self.overlap.update(image_idx, proto_idx, maps, self._objects(batch))
        if self.purity is not None and parts is not None:
            self.purity.update(maps, out.max_similarities, parts, batch.indices)


    def _objects(self, batch: Batch) -> Tensor:
        """(B, H, W) bool object pixels: the part mask where there is one, else the box."""
        device = self.model.device
        if batch.masks is not None:
            return batch.masks.to(device) > 0
        if batch.boxes is None:
            raise ConfigError("object_overlap: this batch has neither part masks nor boxes")
        return box_masks(batch.boxes.to(device), self.model.input_spec.image_size)


def _slice(batch: Batch, start: int, stop: int) -> Batch:
    def cut(t: Tensor | None) -> Tensor | None:
        return None if t is None else t[start:stop]
    return Batch(batch.images[start:stop], batch.unit[start:stop], batch.labels[start:stop],
                 batch.image_ids[start:stop], cut(batch.parts), batch.indices[start:stop], cut(batch.masks),
                 cut(batch.boxes))


@torch.inference_mode()
def evaluate(model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig = EvaluationConfig(),
             progress: ProgressFn | None = None) -> EvaluationResult:
    """Evaluate ``model`` on ``dataset``; ``progress(done, total, stage)`` after each batch."""
    started, clock = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    model.eval()
    run = _Run(model, dataset, config)
    indices = evaluation_indices(len(dataset), config.limit)
    done = 0
    for batch in iterate_batches(dataset, model.input_spec, config.batch_size, indices,
                                 with_masks=run.overlap is not None):
        run.process(batch)
        done += len(batch.indices)
        if progress is not None:
            progress(done, len(indices), "forward passes")
    deletion = None
    if "deletion" in run.metrics:
        deletion = _deletion(model, dataset, config, run, indices, progress)
    return _result(model, dataset, config, run, deletion, len(indices), started, time.perf_counter() - clock)


def _deletion(model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig, run: _Run,
              indices: Sequence[int], progress: ProgressFn | None) -> DeletionCurves:
    """Curves for each prototype on the first ``deletion_images_per_class`` evaluated images of its classes."""
    labels = dataset.labels[np.asarray(indices)]
    chosen = [i for c in np.unique(labels) for i in np.asarray(indices)[labels == c][:config.deletion_images_per_class]]
    batch = load_batch(dataset, model.input_spec, sorted(chosen))
    device = model.device
    image_idx, proto_idx = select_pairs(run.label_map[batch.labels.to(device)], run.relevance)
    total = int(image_idx.numel()) * 2
    state = {"done": 0}

    def step(n: int) -> None:
        state["done"] += n
        if progress is not None:
            progress(state["done"], total, "deletion/insertion curves")

    images = batch.images.to(device)[image_idx]
    return deletion_insertion(model, images, proto_idx, [batch.indices[i] for i in image_idx.tolist()],
                              config.deletion_steps, config.batch_size, progress=step)


def _result(model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig, run: _Run,
            deletion: DeletionCurves | None, images: int, started: str, seconds: float) -> EvaluationResult:
    scores: dict[str, float] = {}
    relevance = run.relevance.cpu().numpy()
    rows: list[dict[str, Any]] = [{"prototype": p, "classes": ";".join(
        _class_name(model, c) for c in np.flatnonzero(relevance[p]))} for p in range(relevance.shape[0])]
    accuracy = run.accuracy.result() if run.accuracy is not None else None
    if accuracy is not None:
        scores.update(accuracy=accuracy.top1, balanced_accuracy=accuracy.balanced)
    parts = run.parts.result("stability" in run.metrics) if run.parts is not None else None
    if parts is not None:
        _add_part_rows(rows, parts, scores, run.metrics)
    region = run.region.result() if run.region is not None else None
    if region is not None:
        scores.update(region_stability=region.score, region_stability_spread=region.spread)
        for row, value in zip(rows, region.iou):
            row["region_iou"] = float(value)
    purity = run.purity.result() if run.purity is not None else None
    if purity is not None:
        scores["purity"] = purity.score
        for p, row in enumerate(rows):
            row.update(purity=float(purity.purity[p]), purity_part=purity.part_names[purity.part[p]]
                       if purity.patches[p] else "-")
    overlap = run.overlap.result() if run.overlap is not None else None
    if overlap is not None:
        scores["object_overlap"] = overlap.score
        for row, value in zip(rows, overlap.share):
            row["object_overlap"] = float(value)
    if deletion is not None:
        rel_del, rel_ins = deletion.per_prototype(len(rows))
        scores.update(deletion_auc=float(np.nanmean(rel_del)) if np.isfinite(rel_del).any() else float("nan"),
                      insertion_auc=float(np.nanmean(rel_ins)) if np.isfinite(rel_ins).any() else float("nan"))
        for row, d, i in zip(rows, rel_del, rel_ins):
            row.update(deletion_auc=float(d), insertion_auc=float(i))
    provenance = _provenance(model, dataset, config, run, images, started, seconds)
    return EvaluationResult(scores, rows, provenance, parts, accuracy, region, purity, overlap, deletion)


def _class_name(model: PrototypeModel, index: int) -> str:
    return model.class_names[index] if index < len(model.class_names) else str(index)


def _add_part_rows(rows: list[dict[str, Any]], parts: PartScores, scores: dict[str, float], metrics: set[str]) -> None:
    if "consistency" in metrics:
        scores["consistency"] = parts.consistency
    if parts.stability is not None:
        scores.update(stability=parts.stability, stability_spread=parts.stability_spread or 0.0)
    names = parts.dominant_part_names()
    for p, row in enumerate(rows):
        row.update(images=int(parts.n_images[p]), dominant_part=names[p],
                   dominant_frequency=float(parts.dominant_frequency[p]), consistent=bool(parts.consistent[p]))
        if parts.stable_fraction is not None:
            row["stable_fraction"] = float(parts.stable_fraction[p])
        row.update({f"f[{name}]": float(v) for name, v in zip(parts.part_names, parts.frequencies[p])})


def _provenance(model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig, run: _Run, images: int,
                started: str, seconds: float) -> dict[str, Any]:
    import cv2
    import torchvision

    import protoviz

    half = run.parts.half if run.parts is not None else None
    return {
        "started": started, "seconds": round(seconds, 3), "images_evaluated": images,
        "config": config.to_dict(), "seed": config.parts.seed,
        "half_size_pixels": list(half) if half else None,
        "half_size_rule": "round half up of half_size * (H, W) / reference_size",
        "model": {"family": model.family, "backbone": model.backbone_name, "similarity": model.similarity_kind,
                  "input_size": list(model.input_spec.image_size), "prototypes": model.num_prototypes,
                  "classes": model.num_classes, "checkpoint_sha256": model.metadata.get("checkpoint_sha256"),
                  "metadata": {k: v for k, v in model.metadata.items() if isinstance(v, (str, int, float, bool))}},
        "dataset": dataset.describe(), "class_matching": run.class_match,
        "device": describe_device(model.device), "batch_size": config.batch_size,
        "versions": {"protoviz": protoviz.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
                     "python": platform.python_version()},
    }
