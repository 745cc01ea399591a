"""All trust figures of several heatmap methods on one model and image set, with how they were made.

:func:`evaluate_methods` runs, per method: the maps, the parameter-randomisation check, the deletion /
insertion curves and, when part masks are given, the mask relevance and the pointing game
(:mod:`protoviz.explain.pointing`: CaBRNet's mask and energy relevance against the object). A
:class:`TrustReport` keeps the results as numpy arrays (no tensors, safe to keep in a session), gives a
summary table and JSON, carries the :class:`~protoviz.provenance.Provenance` of the run (model sha256,
images, settings, seed, device, versions) and is kept in the workspace as a typed payload
(``@result_type("trust")``: numbers as tables and blobs, maps as float16 scaled per map).

The shared model is used under ``lock`` one batch of work at a time (a chunk of heatmap rows, a chunk
of perturbed images, a model copy), so another session using the same model waits at most that long.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from protoviz.compare.stored import get_array, has_array, put_array
from protoviz.device import describe_device
from protoviz.errors import ConfigError, WorkspaceError
from protoviz.heatmaps.methods import HeatmapOptions, compute_heatmaps, get_method
from protoviz.heatmaps.methods.registry import prototype_rows
from protoviz.heatmaps.trust import (
    Lock,
    MaskRelevance,
    PerturbationConfig,
    PerturbationCurves,
    RandomisationConfig,
    RandomisationResult,
    assign_prototype_parts,
    guarded,
    mask_relevance,
    perturbation_curves,
    randomisation_check,
)
from protoviz.models.base import PrototypeModel
from protoviz.passes import PassRecord
from protoviz.payload import Payload, result_type
from protoviz.progress import Progress
from protoviz.provenance import DatasetIdentity, Provenance, canonical, digest, library_versions, model_identity

TRUST_RESULT = "trust"
NO_MASKS = "these images have no segmentation masks (the synthetic set and datasets with masks have them)"


@dataclass(frozen=True)
class TrustConfig:
    """Which methods to evaluate and the parameters of every check. ``pointing_area``: the share of the
    image the pointing game keeps (the top 10% of each map by default, as CaBRNet)."""

    methods: tuple[str, ...] = ("upsample", "saliency", "smoothgrad", "prp", "random")
    options: HeatmapOptions = field(default_factory=HeatmapOptions)
    randomisation: RandomisationConfig = field(default_factory=RandomisationConfig)
    perturbation: PerturbationConfig = field(default_factory=PerturbationConfig)
    part_top_n: int = 5
    pointing_area: float = 0.1

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("TrustConfig: choose at least one heatmap method")
        for name in self.methods:
            get_method(name)
        if not 0.0 < self.pointing_area <= 1.0:
            raise ConfigError(f"TrustConfig: pointing_area must be in (0, 1], got {self.pointing_area}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = list(self.methods)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrustConfig:
        return cls(methods=tuple(data["methods"]), options=HeatmapOptions(**data["options"]),
                   randomisation=RandomisationConfig(**data["randomisation"]),
                   perturbation=PerturbationConfig(**data["perturbation"]), part_top_n=int(data["part_top_n"]),
                   pointing_area=float(data.get("pointing_area", 0.1)))


@dataclass(frozen=True)
class PointingScores:
    """The pointing game of one method (:mod:`protoviz.explain.pointing`), (B, K) arrays: ``mask``: the
    share of the map's top ``area`` pixels on the object; ``energy``: the share of its mass on the object."""

    area: float
    mask: np.ndarray
    energy: np.ndarray


@dataclass(frozen=True)
class MethodTrust:
    """One method's results. maps: (B, K, H, W) float32."""

    method: str
    maps: np.ndarray
    randomisation: RandomisationResult
    curves: PerturbationCurves
    relevance: MaskRelevance | None
    seconds: float
    pointing: PointingScores | None = None


@result_type(TRUST_RESULT)
@dataclass
class TrustReport:
    """Results of :func:`evaluate_methods`. prototype_indices: (B, K); prototype_parts: (B, K) or None;
    provenance: the run's :meth:`~protoviz.provenance.Provenance.to_dict` (plus what a caller adds);
    masks_note: why there is no mask relevance or pointing game ("" when there is)."""

    model_name: str
    image_names: list[str]
    prototype_indices: np.ndarray
    prototype_parts: np.ndarray | None
    results: dict[str, MethodTrust]
    provenance: dict[str, Any]
    masks_note: str = ""

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
            if r.pointing is not None:
                row.update({pointing_column(r.pointing.area): _mean(r.pointing.mask),
                            "energy on object": _mean(r.pointing.energy)})
            pairs = self.prototype_indices.size
            row["ms per (image, prototype)"] = round(1000 * r.seconds / max(1, pairs), 2)
            rows.append(row)
        return rows

    def pair_rows(self) -> list[dict[str, Any]]:
        """One row per (method, image, prototype): its rho on the most randomised model, curve areas,
        and where measured its part / object shares and pointing game."""
        rows = []
        for name, r in self.results.items():
            for b, image in enumerate(self.image_names):
                for k in range(self.prototype_indices.shape[1]):
                    row: dict[str, Any] = {"method": name, "image": image,
                                           "prototype": int(self.prototype_indices[b, k]),
                                           "rho": _num(r.randomisation.rho[-1, b, k]),
                                           "deletion AUC": _num(r.curves.deletion_auc[b, k]),
                                           "insertion AUC": _num(r.curves.insertion_auc[b, k])}
                    if r.relevance is not None:
                        row.update({"mass in part": _num(r.relevance.part_share[b, k]),
                                    "mass in object": _num(r.relevance.object_share[b, k])})
                    if r.pointing is not None:
                        row.update({pointing_column(r.pointing.area): _num(r.pointing.mask[b, k]),
                                    "energy on object": _num(r.pointing.energy[b, k])})
                    rows.append(row)
        return rows

    def to_json(self) -> str:
        """Summary, per-(image, prototype) numbers, curves and provenance as JSON (maps left out)."""
        data = {
            "model": self.model_name, "images": self.image_names,
            "prototype_indices": self.prototype_indices.tolist(),
            "prototype_parts": None if self.prototype_parts is None else self.prototype_parts.tolist(),
            "summary": self.summary_rows(), "provenance": self.provenance, "masks_note": self.masks_note,
            "methods": {name: _method_json(r) for name, r in self.results.items()},
        }
        return json.dumps(data, indent=1, default=_json_default)

    # -- the workspace ------------------------------------------------------------------------------
    def to_payload(self) -> Payload:
        blobs: dict[str, bytes] = {}
        put_array(blobs, "prototype_indices", self.prototype_indices)
        if self.prototype_parts is not None:
            put_array(blobs, "prototype_parts", self.prototype_parts)
        methods = {}
        for name, r in self.results.items():
            scale = np.abs(r.maps).reshape(*r.maps.shape[:2], -1).max(axis=-1).astype(np.float32)  # (B, K)
            safe = np.where(scale > 0, scale, 1.0)[..., None, None]
            put_array(blobs, f"{name}/maps", (r.maps / safe).astype(np.float16))
            put_array(blobs, f"{name}/maps_scale", scale)
            put_array(blobs, f"{name}/rho", r.randomisation.rho)
            for part in ("fractions", "deletion", "insertion", "deletion_auc", "insertion_auc"):
                put_array(blobs, f"{name}/{part}", getattr(r.curves, part))
            if r.relevance is not None:
                for part in ("part_share", "object_share", "part_area", "object_area"):
                    put_array(blobs, f"{name}/{part}", getattr(r.relevance, part))
            if r.pointing is not None:
                put_array(blobs, f"{name}/pointing_mask", r.pointing.mask)
                put_array(blobs, f"{name}/pointing_energy", r.pointing.energy)
            methods[name] = {"randomisation": {"config": asdict(r.randomisation.config),
                                               "stage_labels": r.randomisation.stage_labels,
                                               "layers": r.randomisation.layers},
                             "perturbation": asdict(r.curves.config), "seconds": r.seconds,
                             "relevance": r.relevance is not None,
                             "pointing_area": None if r.pointing is None else r.pointing.area}
        data = {"model_name": self.model_name, "image_names": self.image_names, "methods": methods,
                "masks_note": self.masks_note}
        return Payload(data=data, tables={"scores": self.summary_rows(), "pairs": self.pair_rows()}, blobs=blobs,
                       provenance=self.provenance)

    @classmethod
    def from_payload(cls, payload: Payload) -> TrustReport:
        data, blobs = payload.data, payload.blobs
        try:
            results = {name: _method_from(name, info, blobs) for name, info in data["methods"].items()}
            return cls(model_name=str(data["model_name"]), image_names=[str(n) for n in data["image_names"]],
                       prototype_indices=get_array(blobs, "prototype_indices"),
                       prototype_parts=get_array(blobs, "prototype_parts")
                       if has_array(blobs, "prototype_parts") else None,
                       results=results, provenance=dict(payload.provenance), masks_note=str(data.get("masks_note", "")))
        except (KeyError, TypeError, ValueError, ConfigError) as error:
            raise WorkspaceError(f"a stored trust report is incomplete ({error})") from error


def pointing_column(area: float) -> str:
    """The summary column of the pointing game, e.g. ``'pointing game (top 10%)'``."""
    return f"pointing game (top {100 * area:g}%)"


def _method_from(name: str, info: Mapping[str, Any], blobs: Mapping[str, bytes]) -> MethodTrust:
    def array(part: str) -> np.ndarray:
        return get_array(blobs, f"{name}/{part}")

    scale = array("maps_scale")
    maps = array("maps").astype(np.float32) * np.where(scale > 0, scale, 0.0)[..., None, None]
    randomisation = RandomisationResult(name, RandomisationConfig(**info["randomisation"]["config"]),
                                        list(info["randomisation"]["stage_labels"]),
                                        [list(layers) for layers in info["randomisation"]["layers"]], array("rho"))
    curves = PerturbationCurves(array("fractions"), array("deletion"), array("insertion"), array("deletion_auc"),
                                array("insertion_auc"), PerturbationConfig(**info["perturbation"]))
    relevance = (MaskRelevance(array("part_share"), array("object_share"), array("part_area"), array("object_area"))
                 if info.get("relevance") else None)
    area = info.get("pointing_area")
    pointing = None if area is None else PointingScores(float(area), array("pointing_mask"), array("pointing_energy"))
    return MethodTrust(name, maps, randomisation, curves, relevance, float(info["seconds"]), pointing)


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(finite.mean()), 4) if finite.size else None


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _method_json(r: MethodTrust) -> dict[str, Any]:
    out: dict[str, Any] = {
        "randomisation": {"stages": r.randomisation.stage_labels, "layers": r.randomisation.layers,
                          "mean_rho": r.randomisation.mean_rho, "rho": r.randomisation.rho,
                          "passed": r.randomisation.passed},
        "fractions": r.curves.fractions, "deletion": r.curves.deletion, "insertion": r.curves.insertion,
        "deletion_auc": r.curves.deletion_auc, "insertion_auc": r.curves.insertion_auc, "seconds": r.seconds,
    }
    if r.relevance is not None:
        out["relevance"] = asdict(r.relevance)
    if r.pointing is not None:
        out["pointing"] = {"area": r.pointing.area, "mask_relevance": r.pointing.mask,
                           "energy_relevance": r.pointing.energy}
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return value.tolist()
        cells = value.astype(object)
        cells[~np.isfinite(value)] = None  # JSON has no NaN/Inf
        return cells.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def top_prototypes(model: PrototypeModel, images: Tensor, k: int, lock: Lock = None) -> Tensor:
    """(B, K) the ``k`` prototypes with the highest max similarity on each image."""
    with torch.no_grad(), guarded(lock):
        pooled = model(images.to(model.device)).max_similarities
    return pooled.topk(min(k, pooled.shape[1]), dim=1).indices


def _permille(fraction: float) -> int:
    return round(1000 * min(1.0, max(0.0, fraction)))


def chunked_heatmaps(method: str, model: PrototypeModel, images: Tensor, indices: Tensor,
                     options: HeatmapOptions, lock: Lock = None) -> Tensor:
    """:func:`~protoviz.heatmaps.methods.compute_heatmaps` (B, K, H, W), one batch of rows at a time
    (``options.batch_rows`` rows, SmoothGrad's noisy copies counted), ``lock`` held per batch only."""
    cost = indices.shape[1] * (options.smoothgrad_samples if method == "smoothgrad" else 1)
    step = max(1, options.batch_rows // max(1, cost))
    chunks = []
    for start in range(0, images.shape[0], step):
        with guarded(lock):
            chunks.append(compute_heatmaps(method, model, images[start:start + step], indices[start:start + step],
                                           options))
    return torch.cat(chunks)


def pointing_scores(maps: Tensor, part_masks: Tensor, signed: bool, area: float) -> PointingScores:
    """The pointing game of maps (B, K, H, W) against the objects of ``part_masks`` (B, H, W) (> 0 = object),
    as :func:`protoviz.explain.pointing.pointing_game` scores it."""
    from protoviz.explain.pointing import energy_relevance, normalise
    from protoviz.explain.pointing import mask_relevance as pointing_mask

    b, k = maps.shape[:2]
    attribution = normalise(maps.flatten(0, 1).float(), signed)
    objects = (part_masks > 0).to(maps.device).repeat_interleave(k, dim=0)
    mask = pointing_mask(attribution, objects, area).view(b, k).cpu().numpy()
    energy = energy_relevance(attribution, objects).view(b, k).cpu().numpy()
    return PointingScores(area, mask, energy)


def evaluate_methods(model: PrototypeModel, images: Tensor, prototype_indices: Tensor | Sequence[int],
                     config: TrustConfig | None = None, part_masks: Tensor | None = None,
                     prototype_parts: Tensor | None = None, image_names: Sequence[str] | None = None,
                     model_name: str = "", progress: Progress | None = None, *, lock: Lock = None,
                     record: PassRecord | None = None, masks_note: str = NO_MASKS) -> TrustReport:
    """Run every check of ``config`` for every method on normalised images (B, 3, H, W).

    part_masks: (B, H, W) part ids at the model's input size (0 = background) to add mask relevance and
    the pointing game; prototype_parts: (B, K) the part each prototype is about, else assigned by
    :func:`~protoviz.heatmaps.trust.assign_prototype_parts` over these images. ``masks_note``: why there
    are no masks, said in the report when ``part_masks`` is None.
    ``progress(done, 1000, stage)`` is called as the work advances (``done`` in thousandths of the whole).
    ``lock`` is held around each batch of work on ``model`` (see the module doc). ``record``: the images'
    dataset identity, the settings that chose them, notes; it goes into the report's provenance.
    """
    config = config or TrustConfig()
    started, clock = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    images = images.to(model.device)
    given = prototype_indices if isinstance(prototype_indices, Tensor) else tuple(prototype_indices)
    indices = prototype_rows(given, images.shape[0], model.num_prototypes, images.device)
    parts = None
    parts_source = None if part_masks is None else "given" if prototype_parts is not None else \
        ("assigned: part most covered by the 95th-percentile box of the upsampled map on the top "
         f"{config.part_top_n} images")
    if part_masks is not None:
        if prototype_parts is None:
            unique = indices.unique()
            assigned = assign_prototype_parts(model, images, part_masks, unique, config.part_top_n, lock=lock)
            lookup = torch.zeros(model.num_prototypes, dtype=torch.long, device=images.device)
            lookup[unique] = assigned
            prototype_parts = lookup[indices]
        parts = torch.as_tensor(prototype_parts, device=images.device).long()
    results: dict[str, MethodTrust] = {}
    n = len(config.methods)
    for i, name in enumerate(config.methods):
        def step(done: int, total: int | None, stage: str = "", i: int = i, name: str = name,
                 start: float = 0.1, width: float = 0.6) -> None:
            if progress:
                fraction = start + width * done / max(total or 1, 1)
                progress(_permille((i + fraction) / n), 1000, f"{name}: {stage}")

        step(0, 1, "maps")
        begin = time.perf_counter()
        maps = chunked_heatmaps(name, model, images, indices, config.options, lock)
        seconds = time.perf_counter() - begin
        randomisation = randomisation_check(name, model, images, indices, config.randomisation, config.options, step,
                                            lock=lock, reference=maps)
        curves = perturbation_curves(model, images, indices, maps, config.perturbation, config.options.batch_rows,
                                     lock=lock, progress=_curve_progress(step))
        relevance, pointing = None, None
        signed = get_method(name).signed
        if parts is not None and part_masks is not None:
            masks = part_masks.to(maps.device)
            relevance = mask_relevance(maps, masks, parts, signed)
            pointing = pointing_scores(maps, masks, signed, config.pointing_area)
        results[name] = MethodTrust(name, maps.float().cpu().numpy(), randomisation, curves, relevance, seconds,
                                    pointing)
    if progress:
        progress(1000, 1000, "done")
    names = list(image_names) if image_names is not None else [f"image {b}" for b in range(images.shape[0])]
    record = record or PassRecord(DatasetIdentity(None, None, {"images": len(names)}))
    settings = {"trust": config.to_dict(), "prototypes": digest(indices.cpu().tolist()),
                "prototypes_per_image": int(indices.shape[1]), **dict(record.settings)}
    provenance = Provenance(
        model_sha256=model.metadata.get("checkpoint_sha256"), model=model_identity(model), dataset=record.dataset,
        settings=canonical(settings), seed=config.randomisation.seed, device=describe_device(images.device),
        versions=library_versions(), images=int(images.shape[0]), batch_size=config.options.batch_rows,
        batch_size_used=config.options.batch_rows, oom_halvings=0, world_size=1, started=started,
        seconds=time.perf_counter() - clock,
        notes={**dict(record.notes), "parts_source": parts_source,
               "masks": "given" if part_masks is not None else masks_note})
    return TrustReport(model_name, names, indices.cpu().numpy(), None if parts is None else parts.cpu().numpy(),
                       results, provenance.to_dict(), "" if part_masks is not None else masks_note)


def _curve_progress(step: Callable[..., None]) -> Progress:
    """The curves' progress (rows done of both curves) mapped onto the last quarter of a method's share."""
    def progress(done: int, total: int | None, stage: str = "") -> None:
        half = 0.0 if stage == "deletion" else 0.5
        step(half + 0.5 * done / max(total or 1, 1), 1, f"{stage} curve", start=0.7, width=0.3)
    return progress


@dataclass(frozen=True)
class MaskedImages:
    """Images with part masks: images (B, 3, H, W) normalised, masks (B, H, W) part ids, names, part names;
    ``identity`` of the dataset they come from and their ``positions`` in it."""

    images: Tensor
    masks: Tensor
    names: list[str]
    part_names: tuple[str, ...]
    identity: DatasetIdentity | None = None
    positions: tuple[int, ...] = ()


def spread_positions(count: int, size: int) -> list[int]:
    """``count`` positions spread evenly over a dataset of ``size`` images (each at most once)."""
    if count < 1:
        raise ConfigError(f"need at least one image, got {count}")
    return np.unique(np.linspace(0, size - 1, min(count, size)).round().astype(int)).tolist()


def synthetic_images(spec: Any, count: int, config: Any = None, split: str = "test") -> MaskedImages:
    """``count`` images of the synthetic set (generated once into the cache), spread over its classes,
    with their part masks at the model's input size ``spec`` (an InputSpec)."""
    from protoviz.data.datasets import load_batch, open_dataset
    from protoviz.data.demo import synthetic_dataset
    from protoviz.provenance import dataset_identity

    if count < 1:
        raise ConfigError(f"need at least one synthetic image, got {count}")
    dataset = open_dataset(synthetic_dataset(config), kind="cub", split=split, crop_to_box=False)
    picks = spread_positions(count, len(dataset))
    batch = load_batch(dataset, spec, picks, with_masks=True)
    if batch.masks is None:
        raise ConfigError(f"the synthetic set at {dataset.root} has no part masks")
    return MaskedImages(batch.images, batch.masks, batch.image_ids, tuple(dataset.part_names or ()),
                        dataset_identity(dataset), tuple(picks))


def dataset_images(spec: Any, data: Any, split: str, count: int
                   ) -> tuple[Tensor, Tensor | None, list[str], PassRecord]:
    """(images (B, 3, H, W) normalised for ``spec``, part masks (B, H, W) or None where the dataset has none,
    names, what the provenance records): ``count`` images spread over the ``split`` of the dataset at ``data``."""
    from protoviz.data.datasets import load_batch, open_dataset
    from protoviz.errors import DatasetError
    from protoviz.provenance import dataset_identity, selection_digest

    if count < 1:
        raise ConfigError(f"need at least one image, got {count}")
    dataset = open_dataset(data, split=split, crop_to_box=False)
    if len(dataset) == 0:
        raise DatasetError(f"{data}: the {split} split has no images")
    picks = spread_positions(count, len(dataset))
    batch = load_batch(dataset, spec, picks, with_masks=True)
    record = PassRecord(dataset_identity(dataset), {"images": selection_digest(picks), "image_count": len(picks)},
                        notes={"data": {"folder": str(data), "split": split, "images": len(picks)}})
    return batch.images, batch.masks, [str(name) for name in batch.image_ids], record


def synthetic_record(images: MaskedImages) -> PassRecord:
    """What the provenance records of images drawn from the synthetic set."""
    from protoviz.provenance import selection_digest

    return PassRecord(images.identity or DatasetIdentity(None, "test"),
                      {"images": selection_digest(images.positions), "image_count": len(images.positions)},
                      notes={"data": "the bundled synthetic set"})
