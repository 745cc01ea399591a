"""Side-by-side summary of several models on the same dataset, and how it was made.

Every model gets one batched pass over the same images (each preprocessed with that model's own input
spec); the pass gives its accuracy, its top-k patches per prototype (gallery, latent view) and its
activation profiles (matching, near-duplicates) at once. Models are then matched pairwise against the
first (reference) model.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
from protoviz.compare.scan import PredictionAccumulator, ProgressFn, run_pass
from protoviz.compare.topk import TopKAccumulator, TopKConfig, TopKPatches
from protoviz.device import describe_device
from protoviz.errors import ConfigError, DatasetError, ModelError
from protoviz.models.base import PrototypeModel

ModelProgress = Callable[[str, int, int | None], None]
"""Called with (model name, images done, total images or None)."""


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


@dataclass(frozen=True)
class ModelRun:
    """One model's pass: accuracy (None without labels), top-k patches, profiles (P, N'), near-duplicates,
    and the CompareConfig it was made with (``settings``)."""

    name: str
    accuracy: float | None
    num_images: int
    topk: TopKPatches
    profiles: Tensor
    duplicates: list[DuplicatePair]
    info: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


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
    return {
        "name": name, "family": model.family, "backbone": model.backbone_name,
        "similarity": model.similarity_kind, "prototypes": model.num_prototypes, "classes": model.num_classes,
        "input_size": list(model.input_spec.image_size),
        "checkpoint_sha256": model.metadata.get("checkpoint_sha256"),
    }


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
        return None, "dataset labels used as model classes"
    try:
        return class_mapping(model.class_names, names)
    except DatasetError as error:
        return None, f"no accuracy: {error}"


def scan_model(name: str, model: PrototypeModel, batches: Any, config: CompareConfig,
               total: int | None = None, progress: ProgressFn | None = None,
               label_map: Tensor | None = None, labels_note: str | None = None) -> ModelRun:
    """One pass of ``model`` over ``batches`` giving accuracy, top-k patches and profiles together.

    ``label_map`` (C_data,) maps the batches' dataset labels to model classes for the accuracy; a
    ``labels_note`` starting with 'no accuracy' means the labels cannot be used.
    """
    ignore = labels_note is not None and labels_note.startswith("no accuracy")
    predictions = PredictionAccumulator(label_map=label_map, ignore_labels=ignore)
    topk = TopKAccumulator(config.topk)
    profiles = ProfileAccumulator(config.profile)
    count = run_pass(model, batches, [predictions, topk, profiles], total=total, progress=progress)
    profile = profiles.result()
    try:
        embeddings: Tensor | None = model.prototype_embeddings.detach().cpu()
    except ModelError:
        embeddings = None
    duplicates = near_duplicates(profile, embeddings, config.duplicate_correlation, config.duplicate_cosine,
                                 require_both=config.duplicate_require_both,
                                 scale_invariant=model.similarity_kind == "cosine")
    return ModelRun(name=name, accuracy=predictions.accuracy(), num_images=count, topk=topk.result(),
                    profiles=profile, duplicates=duplicates, info=model_info(name, model),
                    settings={**config.as_record(), "labels": labels_note or "dataset labels"})


def compare_models(models: dict[str, PrototypeModel], dataset: Any, config: CompareConfig = CompareConfig(),
                   progress: ModelProgress | None = None) -> Comparison:
    """Scan every model over the same images of ``dataset`` (a protoviz ImageDataset) and match the
    prototypes of each model with those of the first."""
    if not models:
        raise ConfigError("compare needs at least one model")
    indices = probe_indices(len(dataset), config.max_images, config.seed)
    runs = []
    for name, model in models.items():
        report = None if progress is None else (lambda done, total, n=name: progress(n, done, total))
        runs.append(scan_dataset(name, model, dataset, indices, config, report))
    return comparison_from_runs(runs, models, dataset, indices, config)


def scan_dataset(name: str, model: PrototypeModel, dataset: Any, indices: list[int], config: CompareConfig,
                 progress: ProgressFn | None = None) -> ModelRun:
    """:func:`scan_model` over the images ``indices`` of a protoviz ImageDataset, in the model's own
    preprocessing, with its labels matched to the model's classes."""
    from protoviz.data.datasets import iterate_batches

    label_map, note = dataset_label_map(model, dataset)
    batches = iterate_batches(dataset, model.input_spec, config.batch_size, indices=indices)
    return scan_model(name, model, batches, config, total=len(indices), progress=progress, label_map=label_map,
                      labels_note=note)


def comparison_from_runs(runs: list[ModelRun], models: dict[str, PrototypeModel], dataset: Any, indices: list[int],
                         config: CompareConfig) -> Comparison:
    """Match the runs (made over the same ``indices`` of ``dataset``) and record how it was made."""
    describe = getattr(dataset, "describe", None)
    record = reproducibility_record(models, describe() if callable(describe) else {"images": len(dataset)},
                                    {**config.as_record(), "probe_images": len(indices)}, config.seed)
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
    """One row per model: name, accuracy, images, prototypes, near-duplicate pairs, plus ``extra[name]``
    scores (e.g. consistency, stability) where computed."""
    rows = []
    for run in runs:
        flagged = {i for pair in run.duplicates for i in (pair.a, pair.b)}
        rows.append({
            "model": run.name, "accuracy": run.accuracy, "images": run.num_images,
            "prototypes": run.info["prototypes"], "near-duplicate pairs": len(run.duplicates),
            "prototypes in duplicates": len(flagged), **(extra or {}).get(run.name, {}),
            "sha256": (run.info.get("checkpoint_sha256") or "")[:12],
        })
    return rows


def reproducibility_record(models: dict[str, PrototypeModel], dataset: dict[str, Any], parameters: dict[str, Any],
                           seed: int | None) -> dict[str, Any]:
    """Models (with checkpoint sha256), dataset, parameters, seed, device and library versions."""
    import torchvision

    import protoviz

    devices = sorted({describe_device(model.device) for model in models.values()})
    return {
        "models": [model_info(name, model) for name, model in models.items()],
        "dataset": dataset, "parameters": parameters, "seed": seed, "device": ", ".join(devices),
        "versions": {"protoviz": protoviz.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
