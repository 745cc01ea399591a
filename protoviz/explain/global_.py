"""Global characteristic importance per prototype over a dataset, streamed in constant memory.

G_{j,m} = sum_x w_j(x) Delta_{j,m}(x) / sum_x w_j(x), with w_j(x) = s_j(x) (Nauta et al.): a mean of the
local Delta weighted by how similar each image is to the prototype, over every image of the split.
Families whose similarity can be negative (cosine) would make that weight meaningless, so the weight is
max(s_j(x), 0); for ProtoPNet's log similarity (always > 0) this is exactly the reference formula.
Running sums are kept in float64, so memory does not grow with the dataset, and shards of a pass add up.

The pass is :func:`protoviz.passes.run_pass`: the originals get the engine's clean forward, their M
modified versions one forward per batch through :class:`CharacteristicView`, and
:class:`GlobalAccumulator` is the consumer that reads both. Regions other than ``whole`` (inside /
outside the prototype's box, focus / dual on its heatmap) perturb each prototype's own region:
:mod:`protoviz.explain.global_regions`, for the prototypes a run names.

A result answers :func:`global_key` (kind ``why``) and is kept in the workspace as a typed payload
(``@result_type("global_explanation")``): the arrays as blobs, a ``scores`` table per characteristic, an
``importance`` table per prototype and characteristic and, with noise floors, a ``summary`` table.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protoviz.data.transforms import normalize
from protoviz.errors import ConfigError, DatasetError
from protoviz.explain.characteristics import describe_run
from protoviz.explain.local import LocalExplanation, prepare_cpu, to_device, values_at
from protoviz.explain.params import ExplainConfig
from protoviz.models.base import PrototypeModel
from protoviz.passes import Needs, PassBatch, PassRecord, PassStep, run_pass
from protoviz.payload import Payload, array_from_bytes, array_to_bytes, result_type
from protoviz.progress import Progress
from protoviz.provenance import DatasetIdentity, Provenance, RunKey, dataset_identity, selection_digest

KIND = "why"
ARRAYS = ("importance", "mean_delta", "mean_abs_delta", "mean_similarity", "weight_sum")

if TYPE_CHECKING:
    from protoviz.distributed import ShardGroup


class ImageSource(Protocol):
    """What a global run reads: ``len()`` and items with an ``.image`` (e.g. protoviz's ImageDataset)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


@dataclass(frozen=True)
class CharacteristicView:
    """Each batch's images followed by their M modified versions (whole-image modifications of ``config``),
    (B * (1 + M), 3, H, W) image-major, forwarded as :func:`protoviz.explain.local.explain_units` does (one
    call on an accelerator, B images per call on a CPU), so that the numbers equal the local explanation's
    and an unchanged image gives exactly its original similarity; the batch's payload is its
    :class:`~protoviz.explain.local.PreparedBatch`."""

    config: ExplainConfig
    includes_clean = True

    @property
    def key(self) -> Hashable:
        return ("characteristics", self.config)

    def images(self, batch: PassBatch, model: PrototypeModel) -> Iterator[Tensor]:
        unit, modified = to_device(model, batch.payload, self.config)  # (B, 3, H, W), (B, M, 3, H, W)
        stacked = torch.cat([unit[:, None], modified], dim=1).flatten(0, 1)  # a fresh tensor: normalised in place
        spec = model.input_spec
        mean = torch.tensor(spec.mean, dtype=stacked.dtype, device=stacked.device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=stacked.dtype, device=stacked.device).view(1, 3, 1, 1)
        stacked.sub_(mean).div_(std)
        if stacked.device.type == "cpu":  # B images per forward, as explain_units: cheaper per image on a CPU
            yield from stacked.split(max(1, len(batch)))
        else:
            yield stacked


@dataclass
class GlobalAccumulator:
    """Running float64 sums over images for P prototypes and M modifications; with a ``view`` it is a
    consumer of :func:`protoviz.passes.run_pass` (``update``), else it adds local explanations (``add``)."""

    characteristics: tuple[str, ...]
    num_prototypes: int
    view: CharacteristicView | None = None
    weighted: np.ndarray = field(init=False)  # (P, M) sum of w * Delta
    weights: np.ndarray = field(init=False)  # (P,) sum of w
    deltas: np.ndarray = field(init=False)  # (P, M) sum of Delta
    abs_deltas: np.ndarray = field(init=False)  # (P, M) sum of |Delta|
    similarities: np.ndarray = field(init=False)  # (P,) sum of s
    count: int = 0

    def __post_init__(self) -> None:
        shape = (self.num_prototypes, len(self.characteristics))
        self.weighted, self.deltas, self.abs_deltas = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.weights, self.similarities = np.zeros(self.num_prototypes), np.zeros(self.num_prototypes)

    @property
    def needs(self) -> Needs:
        return Needs(views=(self.view,) if self.view is not None else ())

    def update(self, step: PassStep) -> None:
        """Add one pass batch: s_j(x) at l*_j of the clean maps, s_j(x_m) at the same cell of the modified."""
        if self.view is None:
            raise ConfigError("a global accumulator fed by a pass needs its CharacteristicView")
        stacked = torch.cat(step.view(self.view))  # (B * (1 + M), P, h, w)
        grouped = stacked.view(step.maps.shape[0], -1, *stacked.shape[1:])  # (B, 1 + M, P, h, w)
        original, changed = grouped[:, 0], grouped[:, 1:]
        index = original.flatten(-2).argmax(dim=-1)  # (B, P): the first maximum
        similarities = values_at(original, index).float().cpu()
        self._add(similarities, similarities[:, None, :] - values_at(changed, index).float().cpu())

    def add(self, local: LocalExplanation) -> None:
        """Add a batch's local explanation (it must cover all prototypes)."""
        if local.similarities.shape[1] != self.num_prototypes:
            raise ConfigError(f"a global run needs all {self.num_prototypes} prototypes, "
                              f"got a batch with {local.similarities.shape[1]}")
        self._add(local.similarities, local.deltas)

    def _add_rows(self, rows: Sequence[int], similarities: Tensor, deltas: Tensor) -> None:
        """similarities (B, K), deltas (B, M, K) on the CPU for the prototypes ``rows`` (K,) only."""
        index = np.asarray(rows, dtype=np.int64)
        s = similarities.double()
        delta = deltas.double()
        w = s.clamp_min(0.0)
        self.weighted[index] += torch.einsum("bp,bmp->pm", w, delta).numpy()
        self.weights[index] += w.sum(0).numpy()
        self.deltas[index] += delta.sum(0).t().numpy()
        self.abs_deltas[index] += delta.abs().sum(0).t().numpy()
        self.similarities[index] += s.sum(0).numpy()
        self.count += int(s.shape[0])

    def _add(self, similarities: Tensor, deltas: Tensor) -> None:
        """similarities (B, P), deltas (B, M, P) on the CPU."""
        s = similarities.double()
        delta = deltas.double()
        w = s.clamp_min(0.0)
        self.weighted += torch.einsum("bp,bmp->pm", w, delta).numpy()
        self.weights += w.sum(0).numpy()
        self.deltas += delta.sum(0).t().numpy()
        self.abs_deltas += delta.abs().sum(0).t().numpy()
        self.similarities += s.sum(0).numpy()
        self.count += int(s.shape[0])

    def merge(self, other: GlobalAccumulator) -> None:
        """Add another accumulator's sums (e.g. another rank's share of the images)."""
        for name in ("weighted", "weights", "deltas", "abs_deltas", "similarities"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.count += other.count

    def result(self, config: ExplainConfig | None = None, provenance: dict[str, Any] | None = None,
               run: Provenance | None = None, prototypes: tuple[int, ...] | None = None) -> GlobalExplanation:
        """The global explanation of everything added so far (``config``: the view's by default);
        ``prototypes``: the only rows computed (the others are NaN), None for all."""
        config = config or (self.view.config if self.view is not None else None)
        if config is None:
            raise ConfigError("a global result needs the ExplainConfig it was made with")
        if self.count == 0:
            raise DatasetError("a global explanation needs at least one image; the dataset gave none")
        with np.errstate(invalid="ignore", divide="ignore"):
            importance = np.where(self.weights[:, None] > 0, self.weighted / self.weights[:, None], np.nan)
        means = [self.deltas / self.count, self.abs_deltas / self.count, self.similarities / self.count]
        if prototypes is not None:
            skipped = np.setdiff1d(np.arange(self.num_prototypes), np.asarray(prototypes, dtype=np.int64))
            for values in means:
                values[skipped] = np.nan
        return GlobalExplanation(
            characteristics=self.characteristics, importance=importance, mean_delta=means[0],
            mean_abs_delta=means[1], mean_similarity=means[2],
            weight_sum=self.weights.copy(), num_images=self.count, config=config, provenance=dict(provenance or {}),
            run=run, prototypes=prototypes)


@result_type("global_explanation")
@dataclass(frozen=True)
class GlobalExplanation:
    """Per-prototype global importance.

    importance: (P, M) G_{j,m}, NaN for a prototype whose weights summed to 0. mean_delta and
    mean_abs_delta: (P, M) unweighted means of Delta and |Delta|. mean_similarity, weight_sum: (P,).
    prototypes: the prototypes a region run explained (the other rows are NaN), None = all.
    """

    characteristics: tuple[str, ...]
    importance: np.ndarray
    mean_delta: np.ndarray
    mean_abs_delta: np.ndarray
    mean_similarity: np.ndarray
    weight_sum: np.ndarray
    num_images: int
    config: ExplainConfig
    provenance: dict[str, Any] = field(default_factory=dict)
    run: Provenance | None = None  # the pass's provenance (its key joins results)
    prototypes: tuple[int, ...] | None = None

    @property
    def model_sha256(self) -> str | None:
        return self.run.model_sha256 if self.run is not None else None

    @property
    def explained(self) -> list[int]:
        """The prototypes this result explains (all of them unless a region run named some)."""
        return list(self.prototypes) if self.prototypes is not None else list(range(self.num_prototypes))

    def to_payload(self) -> Payload:
        """The storable form: arrays as blobs, config and legacy provenance as data, tables ``scores`` (per
        characteristic over the explained prototypes), ``importance`` and, with noise floors, ``summary``."""
        from protoviz.explain.global_tables import global_tables

        data = {"characteristics": list(self.characteristics), "num_images": self.num_images,
                "config": self.config.to_dict(), "provenance": self.provenance,
                "prototypes": None if self.prototypes is None else list(self.prototypes)}
        return Payload(data=data, tables=global_tables(self), blobs={n: array_to_bytes(getattr(self, n)) for n in ARRAYS},
                       provenance={} if self.run is None else self.run.to_dict())

    @classmethod
    def from_payload(cls, payload: Payload) -> GlobalExplanation:
        """The explanation :meth:`to_payload` stored (its arrays need the payload's blobs)."""
        from protoviz.errors import WorkspaceError

        missing = [n for n in ARRAYS if n not in payload.blobs]
        if missing:
            raise WorkspaceError(f"a stored global explanation lacks its arrays {missing} (load it with its blobs)")
        data = payload.data
        prototypes = data.get("prototypes")
        return cls(characteristics=tuple(data["characteristics"]),
                   **{n: array_from_bytes(payload.blobs[n]) for n in ARRAYS}, num_images=int(data["num_images"]),
                   config=ExplainConfig.from_dict(data["config"]), provenance=dict(data.get("provenance") or {}),
                   run=Provenance.from_dict(payload.provenance) if payload.provenance else None,
                   prototypes=None if prototypes is None else tuple(int(j) for j in prototypes))

    @property
    def num_prototypes(self) -> int:
        return int(self.importance.shape[0])

    def vector(self, prototype: int) -> dict[str, float]:
        """Characteristic -> G for one prototype."""
        return {name: float(v) for name, v in zip(self.characteristics, self.importance[prototype])}

    def ranking(self, prototype: int, include_identity: bool = False) -> list[str]:
        """The prototype's characteristics from most to least important."""
        pairs = [(n, v) for n, v in self.vector(prototype).items() if include_identity or n != "identity"]
        return [n for n, _ in sorted(pairs, key=lambda p: -np.nan_to_num(p[1], nan=-np.inf))]


def _images_of(source: ImageSource | Sequence[Image.Image], indices: Sequence[int]) -> list[Image.Image]:
    images = []
    for i in indices:
        item = source[i]
        images.append(item if isinstance(item, Image.Image) else item.image)
    return images


def global_settings(config: ExplainConfig, total: int, prototypes: Sequence[int] | None = None) -> dict[str, Any]:
    """What a global result depends on (the settings its pass records): the config and the first ``total``
    images, and for a region run the prototypes it explains."""
    settings: dict[str, Any] = {"explain": config, "images": selection_digest(range(total)), "image_count": total}
    if config.region != "whole":
        settings["prototypes"] = list(prototypes) if prototypes is not None else "all"
    return settings


def global_key(model_sha256: str | None, source: ImageSource | Sequence[Image.Image], config: ExplainConfig,
               limit: int | None = None, prototypes: Sequence[int] | None = None,
               identity: DatasetIdentity | None = None) -> RunKey:
    """The key :func:`explain_dataset` will stamp on its result (``result.run.key``), made before running it."""
    total = len(source) if limit is None else min(len(source), max(0, int(limit)))
    chosen = None if prototypes is None else sorted({int(j) for j in prototypes})
    return RunKey.of(KIND, model_sha256, identity or dataset_identity(source), global_settings(config, total, chosen))


def explain_dataset(model: PrototypeModel, source: ImageSource | Sequence[Image.Image],
                    config: ExplainConfig | None = None, batch_size: int = 16, limit: int | None = None,
                    progress: Progress | None = None, provenance: dict[str, Any] | None = None, *,
                    lock: Any = None, prototypes: Sequence[int] | None = None) -> GlobalExplanation:
    """Global explanation of every prototype over ``source`` (every image, or the first ``limit``).

    Batches of ``batch_size`` images are decoded (and, in reference mode, modified with PIL / OpenCV)
    on a worker thread while the previous batch runs on the device; each batch gets one forward of its
    originals and one of its M modified versions. ``progress(done, total, stage)`` after each batch;
    ``lock`` is held around each batch's forwards; the batch halves on out-of-memory (the pass engine's
    fallback). With a region other than ``whole`` each of ``prototypes`` (default: all) gets its own
    modified images (:mod:`protoviz.explain.global_regions`); whole images explain every prototype.
    """
    result = explain_shard(model, source, config, batch_size, limit, progress, provenance, lock=lock,
                           prototypes=prototypes)
    if result is None:
        raise ConfigError("explain: no result on a single process")  # cannot happen without a group
    return result


def explain_shard(model: PrototypeModel, source: ImageSource | Sequence[Image.Image],
                  config: ExplainConfig | None = None, batch_size: int = 16, limit: int | None = None,
                  progress: Progress | None = None, provenance: dict[str, Any] | None = None, *,
                  lock: Any = None, group: ShardGroup | None = None,
                  prototypes: Sequence[int] | None = None) -> GlobalExplanation | None:
    """:func:`explain_dataset` as one rank of a torchrun job: this rank's share of the batches, the sums
    merged on rank 0, which returns the result (the other ranks return None)."""
    config = config or ExplainConfig()
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if config.region == "whole" and prototypes is not None:
        raise ConfigError("a whole-image run explains every prototype in one shared forward; name prototypes only "
                          "for region runs (inside, outside, focus, dual)")
    total = len(source) if limit is None else min(len(source), max(0, int(limit)))
    provenance = {**(provenance or {}), "modifications": describe_run(config, model.device)}
    positions = list(range(total))
    accumulator, chosen, batch_size = _accumulator(model, config, prototypes, batch_size, lock)
    mine = positions if group is None else group.take(positions, batch_size)
    settings = global_settings(config, total, None if prototypes is None else chosen)
    record = PassRecord(dataset_identity(source), settings, config.seed, batch_size)
    report = run_pass(model, _prepared(model, source, mine, batch_size, config), [accumulator], progress,
                      total=len(mine), stage="characteristics", lock=lock, record=record, group=group)
    if group is not None and not group.is_main:
        return None
    run = replace(report.provenance, kind=KIND)
    return accumulator.result(config, provenance, run, None if config.region == "whole" else chosen)


def _accumulator(model: PrototypeModel, config: ExplainConfig, prototypes: Sequence[int] | None, batch_size: int,
                 lock: Any) -> tuple[GlobalAccumulator, tuple[int, ...] | None, int]:
    """The pass's consumer, the prototypes it explains (None: all, whole images) and the batch size to use."""
    if config.region == "whole":
        return GlobalAccumulator(config.characteristics, model.num_prototypes, CharacteristicView(config)), None, \
            batch_size
    from protoviz.explain.global_regions import (
        RegionAccumulator,
        RegionView,
        map_shape,
        region_batch_size,
        region_prototypes,
    )

    chosen = region_prototypes(model, prototypes)
    with lock if lock is not None else nullcontext():
        shape = map_shape(model)
    batch_size = region_batch_size(model, config, chosen, batch_size, shape)
    accumulator = RegionAccumulator(config.characteristics, model.num_prototypes,
                                    region_view=RegionView(config, chosen))
    return accumulator, chosen, batch_size


def _prepared(model: PrototypeModel, source: ImageSource | Sequence[Image.Image], positions: list[int],
              batch_size: int, config: ExplainConfig) -> Iterator[PassBatch]:
    """Pass batches of ``positions``, each prepared (decoded, resized, modified in reference mode) on a
    worker thread while the previous one runs."""
    chunks = [positions[s:s + batch_size] for s in range(0, len(positions), batch_size)]
    if not chunks:
        return

    def load(indices: list[int]) -> PassBatch:
        prepared = prepare_cpu(model, _images_of(source, indices), config)
        return PassBatch(images=normalize(prepared.unit, model.input_spec), indices=torch.tensor(indices),
                         unit=prepared.unit, payload=prepared)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[PassBatch] = pool.submit(load, chunks[0])
        for following in [*chunks[1:], None]:
            batch = pending.result()
            if following is not None:
                pending = pool.submit(load, following)
            yield batch
