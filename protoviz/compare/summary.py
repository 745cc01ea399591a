"""Side-by-side summary of several models on the same dataset, and how it was made.

Every model gets one batched pass over the same images (each preprocessed with that model's own input
spec); the pass gives its accuracy, its top-k patches per prototype (gallery, latent view) and its
activation profiles (matching, near-duplicates) at once. Models are then matched pairwise against the
first (reference) model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from protoviz.compare.matching import (
    DUPLICATE_THRESHOLD,
    DuplicatePair,
    Matching,
    ProfileAccumulator,
    ProfileConfig,
    match_prototypes,
    near_duplicates,
)
from protoviz.compare.stored import get_array, put_array
from protoviz.compare.topk import TopKAccumulator, TopKConfig, TopKPatches
from protoviz.distributed import ShardGroup
from protoviz.errors import ConfigError, DatasetError, ModelError, WorkspaceError
from protoviz.metrics.accuracy import AccuracyAccumulator
from protoviz.models.base import PrototypeModel
from protoviz.passes import Consumer, PassRecord, run_pass
from protoviz.payload import Payload, result_type
from protoviz.progress import Progress
from protoviz.provenance import DatasetIdentity, Provenance, dataset_identity, model_identity, selection_digest

ACCURACY_COLUMN = "accuracy (%)"
PASS_RESULT = "compare.pass"  # the workspace's result type of a ModelRun


@dataclass(frozen=True)
class CompareConfig:
    """Parameters of a comparison (all recorded in its reproducibility panel).

    max_images: probe at most this many images (a seeded random subset, the same for all models);
    None = all. match_threshold: minimum profile correlation of a matched pair. duplicate_correlation /
    duplicate_cosine: near-duplicate thresholds within one model (profile correlation and, with
    ``duplicate_require_both``, also centred embedding cosine, see :func:`~protoviz.compare.matching.duplicate_rule`).
    """

    topk: TopKConfig = field(default_factory=TopKConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    match_threshold: float = 0.5
    duplicate_correlation: float = DUPLICATE_THRESHOLD
    duplicate_cosine: float = DUPLICATE_THRESHOLD
    duplicate_require_both: bool = True
    batch_size: int = 32
    max_images: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.max_images is not None and self.max_images < 2:
            raise ConfigError(f"max_images must be >= 2 (profiles need two images), got {self.max_images}")

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def settings(self, indices: Sequence[int]) -> dict[str, Any]:
        """What a model's pass results depend on: the pass parameters and the images (not the batch size)."""
        data = self.as_record()
        for name in ("batch_size", "max_images", "seed"):
            data.pop(name)
        return {**data, "images": selection_digest(indices), "image_count": len(indices)}


@result_type(PASS_RESULT)
@dataclass(frozen=True)
class ModelRun:
    """One model's pass: accuracy in % (None without usable labels), top-k patches, profiles (P, N'),
    near-duplicates, the CompareConfig it was made with (``settings``) and the pass's ``provenance``.

    Kept in the workspace as a payload (:meth:`to_payload`): the numbers as JSON and tables ("scores",
    "duplicates", "topk"), the arrays as blobs (top-k values, images, cells, boxes, latents and crops;
    profiles as float32), the provenance as its dict; :meth:`from_payload` reads it back.
    """

    name: str
    accuracy: float | None
    num_images: int
    topk: TopKPatches
    profiles: Tensor
    duplicates: list[DuplicatePair]
    info: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None

    def to_payload(self) -> Payload:
        blobs: dict[str, bytes] = {}
        topk = self.topk.store(blobs)
        put_array(blobs, "profiles", self.profiles.float().numpy())
        data = {"name": self.name, "accuracy": self.accuracy, "num_images": self.num_images, "info": self.info,
                "settings": self.settings, "topk": topk}
        tables = {"scores": scores_table([self]),
                  "duplicates": [{"a": p.a, "b": p.b, "correlation": p.correlation, "cosine": p.cosine}
                                 for p in self.duplicates],
                  "topk": self.topk.rows()}
        return Payload(data=data, tables=tables, blobs=blobs,
                       provenance=self.provenance.to_dict() if self.provenance is not None else {})

    @classmethod
    def from_payload(cls, payload: Payload) -> ModelRun:
        data, blobs = payload.data, payload.blobs
        try:
            duplicates = [DuplicatePair(int(r["a"]), int(r["b"]), r["correlation"], r["cosine"])
                          for r in payload.tables.get("duplicates", [])]
            return cls(name=str(data["name"]), accuracy=data["accuracy"], num_images=int(data["num_images"]),
                       topk=TopKPatches.restore(data["topk"], blobs),
                       profiles=torch.from_numpy(get_array(blobs, "profiles")).double(), duplicates=duplicates,
                       info=dict(data["info"]), settings=dict(data["settings"]),
                       provenance=Provenance.from_dict(payload.provenance) if payload.provenance else None)
        except (KeyError, TypeError, ValueError) as error:
            raise WorkspaceError(f"a stored model pass is incomplete ({error})") from error


@dataclass(frozen=True)
class Comparison:
    """Runs in model order; ``matchings[(0, j)]`` matches the reference model with model j."""

    runs: list[ModelRun]
    matchings: dict[tuple[int, int], Matching]
    indices: list[int]
    config: CompareConfig
    record: dict[str, Any]


def model_info(name: str, model: PrototypeModel) -> dict[str, Any]:
    """What identifies a model in a result: name, family, sizes, checkpoint hash."""
    return {**model_identity(model), "name": name}


def probe_indices(count: int, max_images: int | None, seed: int) -> list[int]:
    """Sorted positions of the probe images: all, or a seeded random subset of ``max_images``."""
    if max_images is None or max_images >= count:
        return list(range(count))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(count, generator=generator)[:max_images].tolist())


def dataset_label_map(model: PrototypeModel, dataset: Any) -> tuple[Tensor | None, str]:
    """Dataset label -> model class (C_data,) matched by class name (else by index when the counts agree),
    and how; (None, reason) when the classes cannot be matched (accuracy is then not computed)."""
    from protoviz.metrics.consistency import class_mapping

    names = getattr(dataset, "class_names", None)
    if names is None:
        return torch.arange(model.num_classes), "dataset labels used as model classes"
    try:
        return class_mapping(model.class_names, names)
    except DatasetError as error:
        return None, f"no accuracy: {error}"


def scan_model(name: str, model: PrototypeModel, batches: Any, config: CompareConfig,
               total: int | None = None, progress: Progress | None = None,
               label_map: Tensor | None = None, labels_note: str | None = None, *, lock: Any = None,
               record: PassRecord | None = None, group: ShardGroup | None = None) -> ModelRun | None:
    """One pass of ``model`` over ``batches`` giving accuracy, top-k patches and profiles together.

    ``label_map`` (C_data,) maps the batches' dataset labels to model classes for the accuracy; a
    ``labels_note`` starting with 'no accuracy' means the labels cannot be used. ``lock`` is held around
    each batch's forward. With ``group`` (a torchrun shard) rank 0 returns the merged run, others None.
    """
    use_labels = label_map is not None and not (labels_note or "").startswith("no accuracy")
    accuracy = AccuracyAccumulator(model.num_classes, model.device) if use_labels else None
    topk, profiles = TopKAccumulator(config.topk), ProfileAccumulator(config.profile)
    consumers: list[Consumer] = [topk, profiles]
    if accuracy is not None:
        consumers.append(accuracy)
    report = run_pass(model, batches, consumers, progress, total=total, stage=name, lock=lock,
                      label_map=label_map if use_labels else None, record=record, group=group)
    if group is not None and not group.is_main:
        return None
    if report.images == 0:
        raise ConfigError("the image stream was empty: nothing to scan")
    profile = profiles.result()
    try:
        embeddings: Tensor | None = model.prototype_embeddings.detach().cpu()
    except ModelError:
        embeddings = None
    duplicates = near_duplicates(profile, embeddings, config.duplicate_correlation, config.duplicate_cosine,
                                 require_both=config.duplicate_require_both,
                                 scale_invariant=model.similarity_kind == "cosine")
    return ModelRun(name=name, accuracy=None if accuracy is None else accuracy.result().top1,
                    num_images=report.images, topk=topk.result(), profiles=profile, duplicates=duplicates,
                    info=model_info(name, model), settings={**config.as_record(), "labels": labels_note or
                                                            "dataset labels"},
                    provenance=report.provenance)


def compare_models(models: dict[str, PrototypeModel], dataset: Any, config: CompareConfig = CompareConfig(),
                   progress: Progress | None = None) -> Comparison:
    """Scan every model over the same images of ``dataset`` (a protoviz ImageDataset) and match the
    prototypes of each model with those of the first. ``progress``'s stage is the model's name."""
    comparison = compare_shard(models, dataset, config, progress)
    if comparison is None:
        raise ConfigError("compare: no result on a single process")  # cannot happen without a group
    return comparison


def compare_shard(models: dict[str, PrototypeModel], dataset: Any, config: CompareConfig,
                  progress: Progress | None = None, group: ShardGroup | None = None) -> Comparison | None:
    """:func:`compare_models` as one rank of a torchrun job: rank 0 returns the comparison, others None."""
    if not models:
        raise ConfigError("compare needs at least one model")
    indices = probe_indices(len(dataset), config.max_images, config.seed)
    runs = [scan_dataset(name, model, dataset, indices, config, progress, group=group)
            for name, model in models.items()]
    if group is not None and not group.is_main:
        return None
    return comparison_from_runs([r for r in runs if r is not None], models, dataset, indices, config)


def scan_dataset(name: str, model: PrototypeModel, dataset: Any, indices: list[int], config: CompareConfig,
                 progress: Progress | None = None, *, lock: Any = None,
                 group: ShardGroup | None = None) -> ModelRun | None:
    """:func:`scan_model` over the images ``indices`` of a protoviz ImageDataset, in the model's own
    preprocessing, with its labels matched to the model's classes (rank 0's share and the merge under
    torchrun; the other ranks return None)."""
    from protoviz.data.datasets import iterate_batches

    label_map, note = dataset_label_map(model, dataset)
    mine = indices if group is None else group.take(indices, config.batch_size)
    batches = iterate_batches(dataset, model.input_spec, config.batch_size, indices=mine)
    record = PassRecord(dataset_identity(dataset), config.settings(indices), config.seed, config.batch_size,
                        {"labels": note})
    return scan_model(name, model, batches, config, total=len(mine), progress=progress, label_map=label_map,
                      labels_note=note, lock=lock, record=record, group=group)


def comparison_from_runs(runs: list[ModelRun], models: dict[str, PrototypeModel], dataset: Any, indices: list[int],
                         config: CompareConfig) -> Comparison:
    """Match the runs (made over the same ``indices`` of ``dataset``) and record how it was made."""
    record = reproducibility_record(runs, dataset_identity(dataset), {**config.as_record(),
                                                                     "probe_images": len(indices)})
    return Comparison(runs=runs, matchings=match_runs(runs, config.match_threshold), indices=indices,
                      config=config, record=record)


def open_probe_dataset(path: str | Path | None, split: str = "test") -> Any:
    """The dataset at ``path`` (CUB layout, Stanford, or ImageFolder), or, for None, the bundled synthetic
    set the demo models were trained on (generated into the cache folder on first use)."""
    from protoviz.data.datasets import open_dataset

    if path is None or not str(path).strip():
        from protoviz.data.demo import synthetic_dataset

        return open_dataset(synthetic_dataset(), kind="cub", split=split)
    return open_dataset(Path(str(path).strip()).expanduser(), split=split)


def match_runs(runs: Sequence[ModelRun], threshold: float) -> dict[tuple[int, int], Matching]:
    """Match the reference run (0) with every other run."""
    return {(0, j): match_prototypes(runs[0].profiles, runs[j].profiles, threshold) for j in range(1, len(runs))}


def scores_table(runs: Sequence[ModelRun], extra: dict[str, dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """One row per model: name, accuracy (%), images, prototypes, near-duplicate pairs, plus ``extra[name]``
    scores (e.g. ``{"consistency (%)": 62.5}``, columns named with their unit) where computed on the same
    images and settings."""
    rows = []
    for run in runs:
        flagged = {i for pair in run.duplicates for i in (pair.a, pair.b)}
        rows.append({
            "model": run.name, ACCURACY_COLUMN: run.accuracy, "images": run.num_images,
            "prototypes": run.info["prototypes"], "near-duplicate pairs": len(run.duplicates),
            "prototypes in duplicates": len(flagged), **(extra or {}).get(run.name, {}),
            "sha256": (run.info.get("checkpoint_sha256") or "")[:12],
        })
    return rows


def reproducibility_record(runs: Sequence[ModelRun], dataset: DatasetIdentity,
                           parameters: dict[str, Any]) -> dict[str, Any]:
    """The comparison's parameters and dataset, and each model's pass provenance (model with checkpoint
    sha256, settings, seed, device, versions, images)."""
    return {"dataset": {"fingerprint": dataset.fingerprint, "split": dataset.split, **dict(dataset.description)},
            "parameters": parameters,
            "runs": {run.name: run.provenance.to_dict() if run.provenance is not None else run.info for run in runs}}
