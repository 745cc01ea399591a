"""Global characteristic importance per prototype over a dataset, streamed in constant memory.

G_{j,m} = sum_x w_j(x) Delta_{j,m}(x) / sum_x w_j(x), with w_j(x) = s_j(x) (Nauta et al.): a mean of the
local Delta weighted by how similar each image is to the prototype, over every image of the split.
Families whose similarity can be negative (cosine) would make that weight meaningless, so the weight is
max(s_j(x), 0); for ProtoPNet's log similarity (always > 0) this is exactly the reference formula.
Running sums are kept in float64, so memory does not grow with the dataset, and shards of a pass add up.

The pass is :func:`protoviz.passes.run_pass`: the originals get the engine's clean forward, their M
modified versions one forward per batch through :class:`CharacteristicView`, and
:class:`GlobalAccumulator` is the consumer that reads both.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
from protoviz.progress import Progress
from protoviz.provenance import Provenance, dataset_identity, selection_digest

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
               run: Provenance | None = None) -> GlobalExplanation:
        """The global explanation of everything added so far (``config``: the view's by default)."""
        config = config or (self.view.config if self.view is not None else None)
        if config is None:
            raise ConfigError("a global result needs the ExplainConfig it was made with")
        if self.count == 0:
            raise DatasetError("a global explanation needs at least one image; the dataset gave none")
        with np.errstate(invalid="ignore", divide="ignore"):
            importance = np.where(self.weights[:, None] > 0, self.weighted / self.weights[:, None], np.nan)
        return GlobalExplanation(
            characteristics=self.characteristics, importance=importance, mean_delta=self.deltas / self.count,
            mean_abs_delta=self.abs_deltas / self.count, mean_similarity=self.similarities / self.count,
            weight_sum=self.weights.copy(), num_images=self.count, config=config, provenance=dict(provenance or {}),
            run=run)


@dataclass(frozen=True)
class GlobalExplanation:
    """Per-prototype global importance.

    importance: (P, M) G_{j,m}, NaN for a prototype whose weights summed to 0. mean_delta and
    mean_abs_delta: (P, M) unweighted means of Delta and |Delta|. mean_similarity, weight_sum: (P,).
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

    @property
    def model_sha256(self) -> str | None:
        return self.run.model_sha256 if self.run is not None else None

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


def explain_dataset(model: PrototypeModel, source: ImageSource | Sequence[Image.Image],
                    config: ExplainConfig | None = None, batch_size: int = 16, limit: int | None = None,
                    progress: Progress | None = None, provenance: dict[str, Any] | None = None, *,
                    lock: Any = None) -> GlobalExplanation:
    """Global explanation of every prototype over ``source`` (every image, or the first ``limit``).

    Batches of ``batch_size`` images are decoded (and, in reference mode, modified with PIL / OpenCV)
    on a worker thread while the previous batch runs on the device; each batch gets one forward of its
    originals and one of its M modified versions. ``progress(done, total, stage)`` after each batch;
    ``lock`` is held around each batch's forwards; the batch halves on out-of-memory (the pass engine's
    fallback). Whole-image modifications only.
    """
    result = explain_shard(model, source, config, batch_size, limit, progress, provenance, lock=lock)
    if result is None:
        raise ConfigError("explain: no result on a single process")  # cannot happen without a group
    return result


def explain_shard(model: PrototypeModel, source: ImageSource | Sequence[Image.Image],
                  config: ExplainConfig | None = None, batch_size: int = 16, limit: int | None = None,
                  progress: Progress | None = None, provenance: dict[str, Any] | None = None, *,
                  lock: Any = None, group: ShardGroup | None = None) -> GlobalExplanation | None:
    """:func:`explain_dataset` as one rank of a torchrun job: this rank's share of the batches, the sums
    merged on rank 0, which returns the result (the other ranks return None)."""
    config = config or ExplainConfig()
    if config.region != "whole":
        raise ConfigError("a global run modifies whole images; region-only perturbation is for local explanations")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    total = len(source) if limit is None else min(len(source), max(0, int(limit)))
    provenance = {**(provenance or {}), "modifications": describe_run(config, model.device)}
    positions = list(range(total))
    mine = positions if group is None else group.take(positions, batch_size)
    accumulator = GlobalAccumulator(config.characteristics, model.num_prototypes, CharacteristicView(config))
    record = PassRecord(dataset_identity(source), {"explain": config, "images": selection_digest(positions),
                                                   "image_count": total}, config.seed, batch_size)
    report = run_pass(model, _prepared(model, source, mine, batch_size, config), [accumulator], progress,
                      total=len(mine), stage="characteristics", lock=lock, record=record, group=group)
    if group is not None and not group.is_main:
        return None
    return accumulator.result(config, provenance, report.provenance)


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
