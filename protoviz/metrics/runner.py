"""Evaluate any registered metrics over a dataset in one shared pass of :func:`protoviz.passes.run_pass`.

``evaluate(model, dataset, EvaluationConfig(...))`` -> :class:`EvaluationResult`: one typed
:class:`~protoviz.metrics.score.Score` per metric (value, unit, spread, per-prototype rows), the merged
per-prototype table and the pass's :class:`~protoviz.provenance.Provenance`. Each metric puts at most one
consumer on the pass (metrics reading the same counts share one); noisy copies for stability and region
stability are one shared view. ``evaluate_shard`` runs the same as one rank of a torchrun job.

The result answers :func:`evaluation_key` (kind ``evaluate``; a page makes the key before running, to find
a stored or running result) and is kept in the workspace as a typed payload (``@result_type("evaluation")``:
a ``scores`` table with units, a ``prototypes`` table, the details' arrays, the provenance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
from torch import Tensor

from protoviz.data.datasets import ImageDataset, iterate_batches
from protoviz.distributed import ShardGroup
from protoviz.errors import ConfigError
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.consistency import class_mapping
from protoviz.metrics.noise import NoiseView
from protoviz.metrics.parts import prototype_classes
from protoviz.metrics.registry import Metric, get_metric, list_metrics
from protoviz.metrics.score import Score
from protoviz.models.base import PrototypeModel
from protoviz.passes import Consumer, PassRecord, run_pass
from protoviz.payload import Payload, result_type
from protoviz.progress import Progress
from protoviz.provenance import DatasetIdentity, Provenance, RunKey, dataset_identity, selection_digest

KIND = "evaluate"

C = TypeVar("C")


@dataclass(frozen=True)
class EvaluationConfig:
    """What to compute and how. ``limit``: evaluate that many images evenly spaced over the dataset
    (every class represented when limit >= classes); None = all. ``deletion_images_per_class``: images
    per class on which each of the class's prototypes gets deletion/insertion curves. ``pointing_*``: the
    pointing game's heatmap method, prototypes per image and share of the image kept (see
    :mod:`protoviz.explain.pointing`)."""

    metrics: tuple[str, ...] = ("accuracy", "consistency", "stability")
    parts: PartMetricConfig = field(default_factory=PartMetricConfig)
    batch_size: int = 32
    limit: int | None = None
    purity_top_k: int = 10
    purity_patch_size: float = 32.0
    deletion_steps: int = 10
    deletion_images_per_class: int = 2
    pointing_method: str = "upsample"
    pointing_top: int = 1
    pointing_area: float = 0.1

    def __post_init__(self) -> None:
        known = list_metrics()
        unknown = [m for m in self.metrics if m not in known]
        if unknown or not self.metrics:
            raise ConfigError(f"unknown metric(s) {unknown}; choose from {', '.join(known)}")
        if self.batch_size < 1 or (self.limit is not None and self.limit < 1):
            raise ConfigError(f"batch_size and limit must be >= 1, got {self.batch_size} and {self.limit}")
        if self.purity_top_k < 1 or self.deletion_steps < 1 or self.deletion_images_per_class < 1:
            raise ConfigError("purity_top_k, deletion_steps and deletion_images_per_class must be >= 1")
        if self.pointing_top < 1 or not 0.0 < self.pointing_area <= 1.0:
            raise ConfigError(f"pointing_top must be >= 1 and pointing_area in (0, 1], got {self.pointing_top} and "
                              f"{self.pointing_area}")
        from protoviz.heatmaps.methods import get_method

        get_method(self.pointing_method)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = list(self.metrics)
        return data

    def settings(self, indices: Sequence[int]) -> dict[str, Any]:
        """What a result depends on: the metrics (in table order: a stored run holds these scores), every
        parameter and the images chosen, not the batch size (results do not depend on it)."""
        data = self.to_dict()
        for name in ("batch_size", "limit"):
            data.pop(name)
        data["metrics"] = [m for m in list_metrics() if m in self.metrics]
        return {**data, "images": selection_digest(indices), "image_count": len(indices)}


def evaluation_indices(count: int, limit: int | None) -> list[int]:
    """All indices, or ``limit`` indices evenly spaced over [0, count) (so every class appears when the
    dataset is sorted by class and limit >= classes)."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


def evaluation_key(model_sha256: str | None, dataset: ImageDataset, config: EvaluationConfig,
                   indices: Sequence[int] | None = None, identity: DatasetIdentity | None = None) -> RunKey:
    """The key :func:`evaluate` will stamp on its result (``result.provenance.key``), made before running it:
    the model file, the dataset's fingerprint and split (``identity``, computed if not given) and
    :meth:`EvaluationConfig.settings` of the images ``evaluate`` will use."""
    chosen = list(indices) if indices is not None else evaluation_indices(len(dataset), config.limit)
    return RunKey.of(KIND, model_sha256, identity or dataset_identity(dataset), config.settings(chosen))


@dataclass
class EvaluationRun:
    """What the metrics of one evaluation share: model, dataset, config, the evaluated positions, the
    label map (C_data,) and prototype relevance (P, C) on the model's device, progress, the model's lock."""

    model: PrototypeModel
    dataset: ImageDataset
    config: EvaluationConfig
    metrics: tuple[str, ...]
    indices: list[int]
    label_map: Tensor
    class_match: str
    relevance: Tensor
    progress: Progress | None = None
    lock: Any = None
    consumers: dict[str, Any] = field(default_factory=dict)

    def wants(self, metric: str) -> bool:
        return metric in self.metrics

    def shared(self, key: str, make: Callable[[], C]) -> C:
        """The consumer stored under ``key``, made by ``make()`` the first time (so metrics share it)."""
        if key not in self.consumers:
            self.consumers[key] = make()
        return self.consumers[key]  # type: ignore[no-any-return]

    def noise_view(self) -> NoiseView:
        """The noisy copies of this evaluation (one view, forwarded once for every metric that reads it)."""
        parts = self.config.parts
        return NoiseView(parts.noise_std, parts.noise_clip, parts.seed, parts.noise_draws)


@result_type("evaluation")
@dataclass(frozen=True)
class EvaluationResult:
    """One :class:`Score` per metric in ``results`` (registry order), one row per prototype in
    ``prototypes`` (every metric's columns), and the pass's ``provenance``."""

    results: dict[str, Score]
    prototypes: list[dict[str, Any]]
    provenance: Provenance

    @cached_property
    def scores(self) -> dict[str, float]:
        """Every headline number by column (``accuracy``, ``balanced_accuracy``, ``stability_spread`` ...)."""
        return {k: v for score in self.results.values() for k, v in score.headline().items()}

    @property
    def units(self) -> dict[str, str]:
        """Column of :attr:`scores` -> its unit."""
        return {k: score.unit for score in self.results.values() for k in score.headline()}

    def details(self, *metrics: str) -> Any:
        """The full result of the first of ``metrics`` that ran (e.g. PartScores), or None."""
        for name in metrics:
            if name in self.results:
                return self.results[name].details
        return None

    @property
    def parts(self) -> Any:
        return self.details("consistency", "stability")

    @property
    def accuracy(self) -> Any:
        return self.details("accuracy")

    @property
    def region(self) -> Any:
        return self.details("region_stability")

    @property
    def purity(self) -> Any:
        return self.details("purity")

    @property
    def overlap(self) -> Any:
        return self.details("object_overlap")

    @property
    def deletion(self) -> Any:
        return self.details("deletion")

    @property
    def model_sha256(self) -> str | None:
        return self.provenance.model_sha256

    @property
    def num_prototypes(self) -> int:
        return len(self.prototypes)

    def prototype_part(self, index: int) -> str | None:
        """Name of prototype ``index``'s most frequent part, None without part results or part hits."""
        if self.parts is None:
            return None
        name = self.parts.dominant_part_names()[index]
        return None if name == "-" else name

    @property
    def key(self) -> RunKey:
        return self.provenance.key

    def score_table(self) -> list[dict[str, Any]]:
        """Every headline number as a row ``{"metric", "score", "value", "unit"}``, in metric order."""
        return [row for score in self.results.values() for row in score.table()]

    def to_payload(self) -> Payload:
        """The storable form: a ``scores`` table with units, the ``prototypes`` table, each score's record and
        its details' arrays (blobs ``details/{metric}/{field}``), the provenance."""
        records, blobs = [], {}
        for name, score in self.results.items():
            record, own = score.record(f"details/{name}")
            records.append(record)
            blobs.update(own)
        return Payload(data={"scores": records, "headline": dict(self.scores), "units": self.units},
                       tables={"scores": self.score_table(), "prototypes": [dict(r) for r in self.prototypes]},
                       blobs=blobs, provenance=self.provenance.to_dict())

    @classmethod
    def from_payload(cls, payload: Payload) -> EvaluationResult:
        """The result :meth:`to_payload` stored (details rebuilt when the payload's blobs were loaded)."""
        list_metrics()  # registers the built-in metrics' details types
        provenance = Provenance.from_dict(payload.provenance)
        rows = [dict(r) for r in payload.tables.get("prototypes", [])]
        results = {str(r["metric"]): Score.from_record(r, rows, payload.blobs, f"details/{r['metric']}", provenance)
                   for r in payload.data.get("scores", [])}
        return cls(results, rows, provenance)

    def prototype_scores(self, index: int) -> dict[str, float]:
        """Numeric per-prototype results of prototype ``index`` (for other pages' prototype cards)."""
        row = self.prototypes[index]
        return {k: float(v) for k, v in row.items() if k != "prototype" and isinstance(v, (int, float))
                and not isinstance(v, bool) and not k.startswith("f[") and math.isfinite(float(v))}


def evaluate(model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig = EvaluationConfig(),
             progress: Progress | None = None, *, lock: Any = None,
             indices: Sequence[int] | None = None) -> EvaluationResult:
    """Evaluate ``model`` on ``dataset`` (all images, ``config.limit`` spread over it, or ``indices``).

    ``progress(done, total, stage)`` after each batch; ``lock`` is held around each batch's forwards.
    """
    result = evaluate_shard(model, dataset, config, progress, lock=lock, indices=indices)
    assert result is not None  # one process is its own main rank
    return result


def evaluate_shard(model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig,
                   progress: Progress | None = None, *, lock: Any = None, indices: Sequence[int] | None = None,
                   group: ShardGroup | None = None) -> EvaluationResult | None:
    """:func:`evaluate` as one rank of a torchrun job: this rank's share of the batches, the consumers
    merged on rank 0, which returns the result (the other ranks return None)."""
    metrics = [get_metric(m).cls() for m in list_metrics() if m in config.metrics]
    for metric in metrics:
        if (error := metric.info.unavailable(dataset)) is not None:
            raise error
    chosen = list(indices) if indices is not None else evaluation_indices(len(dataset), config.limit)
    run = _open_run(model, dataset, config, chosen, progress, lock)
    consumers: dict[str, Consumer | None] = {m.info.name: m.consumer(run) for m in metrics}
    unique = list({id(c): c for c in consumers.values() if c is not None}.values())
    mine = chosen if group is None else group.take(chosen, config.batch_size)
    objects = any(m.info.needs & {"objects", "masks"} for m in metrics)
    batches = iterate_batches(dataset, model.input_spec, config.batch_size, mine, with_masks=objects)
    record = PassRecord(dataset_identity(dataset), config.settings(chosen), config.parts.seed, config.batch_size,
                        _notes(run))
    report = run_pass(model, batches, unique, progress, total=len(mine), lock=lock, label_map=run.label_map,
                      record=record, group=group)
    if group is not None and not group.is_main:
        return None
    states = {id(c): c.result() for c in unique}
    provenance = replace(report.provenance, kind=KIND)
    results = {m.info.name: _stamp(m, run, states, consumers, provenance) for m in metrics}
    return EvaluationResult(results, _rows(model, run.relevance, results.values()), provenance)


def _open_run(model: PrototypeModel, dataset: ImageDataset, config: EvaluationConfig, indices: list[int],
              progress: Progress | None, lock: Any) -> EvaluationRun:
    label_map, match = class_mapping(model.class_names, dataset.class_names)
    return EvaluationRun(model, dataset, config, tuple(config.metrics), indices, label_map.to(model.device), match,
                         prototype_classes(model).to(model.device), progress, lock)


def _notes(run: EvaluationRun) -> dict[str, Any]:
    from protoviz.metrics.parts import scaled_half_size

    parts = run.config.parts
    half = scaled_half_size(parts.half_size, run.model.input_spec.image_size, parts.reference_size)
    return {"metrics": list(run.metrics), "class_matching": run.class_match, "half_size_pixels": list(half),
            "half_size_rule": "round half up of half_size * (H, W) / reference_size"}


def _stamp(metric: Metric, run: EvaluationRun, states: dict[int, Any], consumers: dict[str, Consumer | None],
           provenance: Provenance) -> Score:
    consumer = consumers[metric.info.name]
    state = None if consumer is None else states[id(consumer)]
    score = metric.score(run, state)
    if score.unit != metric.info.unit:
        raise ConfigError(f"metric {metric.info.name} registered unit {metric.info.unit!r} but scored {score.unit!r}")
    return replace(score, provenance=provenance)


def _rows(model: PrototypeModel, relevance: Tensor, scores: Any) -> list[dict[str, Any]]:
    """One row per prototype: its index and classes, then every score's columns (in metric order)."""
    classes = relevance.cpu().numpy()
    names = model.class_names
    rows: list[dict[str, Any]] = [{"prototype": p, "classes": ";".join(
        names[c] if c < len(names) else str(c) for c in np.flatnonzero(classes[p]))} for p in range(classes.shape[0])]
    for score in scores:
        for row, extra in zip(rows, score.rows):
            row.update(extra)
    return rows
