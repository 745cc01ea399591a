"""THE pass engine: one batched forward per batch, shared by every consumer of a dataset-wide result.

``run_pass(model, batches, consumers, progress)`` feeds each batch once through the model and hands
the outcome (a :class:`PassStep`) to every consumer: metrics, top-k patches, activation profiles,
predictions, global characteristic sums. Consumers declare what they need beyond the clean similarity
maps and logits in a :class:`Needs`:

- ``latent``: the latent feature map (B, D, h, w) (one backbone pass shared with the maps where the
  family allows);
- ``unit``: the images in [0, 1] on the device (computed from the normalised images when the batch
  does not carry them);
- ``views``: extra images derived from each batch, e.g. :class:`~protoviz.metrics.stability.NoiseView`
  (seeded noisy copies for stability) or the global explanation's modified images. Views with equal
  ``key`` are forwarded once, whichever consumers asked.

Every consumer has ``update(step)``, ``merge(other)`` (so that shards of a pass combine, see
:mod:`protoviz.distributed`) and ``result()``. The engine has one :class:`~protoviz.progress.Progress`
(``progress(done, total, stage)`` after each batch; raising :class:`~protoviz.progress.Cancelled` from
it stops the pass), one out-of-memory fallback (a batch whose forward runs out of device memory is
halved and retried, and later batches use the size that fitted; the halvings are recorded) and one
:class:`~protoviz.provenance.Provenance`, stamped when the pass ends. With ``lock`` the model's lock is
held around each batch's forwards only, so other users of a shared model wait at most one batch.

A batch is anything with ``images`` (B, 3, H, W) normalised for the model and optionally ``unit``,
``labels`` (B,), ``indices`` (B,) (dataset positions), ``parts``, ``masks``, ``boxes``, ``payload``:
``protoviz.data.datasets.Batch``, :class:`~protoviz.compare.scan.TensorBatch` or :class:`PassBatch`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import torch
from torch import Tensor

from protoviz.data.transforms import denormalize
from protoviz.device import describe_device
from protoviz.errors import ModelError
from protoviz.models.base import PrototypeModel
from protoviz.progress import Progress
from protoviz.provenance import DatasetIdentity, Provenance, canonical, library_versions, model_identity

if TYPE_CHECKING:
    from protoviz.distributed import ShardGroup


@dataclass(frozen=True)
class PassBatch:
    """One batch as the engine handles it.

    images: (B, 3, H, W) normalised. indices: (B,) int64 dataset positions. unit: (B, 3, H, W) in [0, 1]
    or None. labels: (B,) dataset labels or None. parts: (B, K, 3) or None. masks: (B, H, W) or None.
    boxes: (B, 4) or None. image_ids: (B,) names or None. payload: anything a view needs (sliced with its
    ``slice(start, stop)`` when the batch is halved), or None.
    """

    images: Tensor
    indices: Tensor
    unit: Tensor | None = None
    labels: Tensor | None = None
    parts: Tensor | None = None
    masks: Tensor | None = None
    boxes: Tensor | None = None
    image_ids: Sequence[str] | None = None
    payload: Any = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def slice(self, start: int, stop: int) -> PassBatch:
        """Images ``start:stop`` of this batch (every per-image field, and the payload, cut alike)."""
        cut: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "payload":
                cut[item.name] = None if value is None else value.slice(start, stop)
            else:
                cut[item.name] = None if value is None else value[start:stop]
        return PassBatch(**cut)

    def to(self, device: torch.device, unit: bool) -> PassBatch:
        """Tensors on ``device`` (``unit`` only when asked; the payload stays where it is)."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)
        return replace(self, images=self.images.to(device), indices=self.indices.to(device),
                       unit=move(self.unit) if unit else None, labels=move(self.labels), parts=move(self.parts),
                       masks=move(self.masks), boxes=move(self.boxes))


def as_pass_batch(batch: Any, offset: int = 0) -> PassBatch:
    """Any batch-like object -> :class:`PassBatch` (indices default to ``offset``, ``offset + 1``, ...)."""
    if isinstance(batch, PassBatch):
        return batch
    images = batch.images
    indices = getattr(batch, "indices", None)
    index = torch.arange(offset, offset + images.shape[0]) if indices is None else torch.as_tensor(indices)
    labels = getattr(batch, "labels", None)
    return PassBatch(images=images, indices=index.to(torch.long), unit=getattr(batch, "unit", None),
                     labels=None if labels is None else torch.as_tensor(labels),
                     parts=getattr(batch, "parts", None), masks=getattr(batch, "masks", None),
                     boxes=getattr(batch, "boxes", None), image_ids=getattr(batch, "image_ids", None),
                     payload=getattr(batch, "payload", None))


@runtime_checkable
class View(Protocol):
    """Extra images derived from each batch. Each tensor ``images`` yields ((n, 3, H, W), normalised, on
    the model's device) gets one forward; consumers read the maps in ``step.views[view.key]``.
    ``key`` must identify the images (equal keys are forwarded once) and views must pickle (no lambdas):
    consumers holding them travel between ranks.

    ``includes_clean``: the tensors the view yields, concatenated, are (B * (1 + V), 3, H, W), image-major:
    the first image of each group of 1 + V is the batch's own image. The engine then takes the clean maps from that
    forward instead of forwarding the batch twice (unless latents are needed), and the consumer compares
    originals and variants computed in the same forward (so an identity variant gives exactly zero).
    """

    includes_clean: bool

    @property
    def key(self) -> Hashable: ...

    def images(self, batch: PassBatch, model: PrototypeModel) -> Iterator[Tensor]: ...


@runtime_checkable
class Probe(Protocol):
    """More model calls on each batch, after its clean forward and under the same lock, shared by the
    consumers that ask for an equal ``key``: e.g. the heatmaps of each image's top prototypes
    (:class:`protoviz.explain.pointing.TopHeatmaps`), which may need gradients (a probe turns them on
    itself; the pass runs under ``torch.no_grad``). ``compute`` gets the batch on the model's device and
    its clean maps (B, P, h, w) and pooled similarities (B, P); what it returns is ``step.probe(self)``.
    """

    @property
    def key(self) -> Hashable: ...

    def compute(self, batch: PassBatch, model: PrototypeModel, maps: Tensor, pooled: Tensor) -> Any: ...


@dataclass(frozen=True)
class Needs:
    """What a consumer needs besides the clean maps, logits and pooled similarities of each batch."""

    latent: bool = False
    unit: bool = False
    views: tuple[View, ...] = ()
    probes: tuple[Probe, ...] = ()

    def __or__(self, other: Needs) -> Needs:
        keys = {view.key for view in self.views}
        probe_keys = {probe.key for probe in self.probes}
        return Needs(self.latent or other.latent, self.unit or other.unit,
                     self.views + tuple(v for v in other.views if v.key not in keys),
                     self.probes + tuple(p for p in other.probes if p.key not in probe_keys))


@dataclass(frozen=True)
class PassStep:
    """What one batch of a pass gives its consumers (tensors on the model's device).

    maps: (B, P, h, w) similarity maps; logits: (B, C); pooled: (B, P) max of each map; latent:
    (B, D, h, w) or None; images: (B, 3, H, W) normalised; unit: (B, 3, H, W) in [0, 1] (None unless
    a consumer needs it); labels: (B,) *model* class indices (dataset labels through the pass's label
    map) or None; indices: (B,) dataset positions; parts / masks / boxes as in the batch; offset:
    images that came before this batch (on this rank); views: view key -> one (n, P, h, w) map tensor
    per tensor the view yielded; probes: probe key -> what the :class:`Probe` computed.
    """

    maps: Tensor
    logits: Tensor
    pooled: Tensor
    latent: Tensor | None
    images: Tensor
    unit: Tensor | None
    labels: Tensor | None
    indices: Tensor
    parts: Tensor | None
    masks: Tensor | None
    boxes: Tensor | None
    offset: int
    views: Mapping[Hashable, tuple[Tensor, ...]] = field(default_factory=dict)
    probes: Mapping[Hashable, Any] = field(default_factory=dict)

    def view(self, view: View) -> tuple[Tensor, ...]:
        """The maps of ``view``'s images for this batch."""
        return self.views[view.key]

    def probe(self, probe: Probe) -> Any:
        """What ``probe`` computed on this batch."""
        return self.probes[probe.key]


class Consumer(Protocol):
    """Receives every batch of a pass. ``merge(other)`` adds another consumer's state (same class and
    settings, e.g. from another rank; its tensors may be on another device); ``result()`` gives the
    consumer's result once the pass (and any merge) is done."""

    @property
    def needs(self) -> Needs: ...

    def update(self, step: PassStep) -> None: ...

    def merge(self, other: Self) -> None: ...

    def result(self) -> Any: ...


@dataclass(frozen=True)
class PassRecord:
    """What the caller knows about a pass, recorded in its provenance: the dataset, the canonical
    settings the numbers depend on, the seed, the batch size asked for, and extra notes."""

    dataset: DatasetIdentity = field(default_factory=lambda: DatasetIdentity(None, None))
    settings: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    batch_size: int | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PassReport:
    """A finished pass: ``images`` seen (over all ranks) and its ``provenance``."""

    images: int
    provenance: Provenance


def forward_maps(model: PrototypeModel, x: Tensor, with_latent: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Similarity maps (B, P, h, w), pooled (B, P) and, if asked and available, latents (B, D, h, w).

    Families with ``set_latents``/``similarity_from_latents`` share one backbone pass between latents
    and maps; others run ``latent`` separately. Latents are None for a family without them or whose
    latent grid differs from its similarity maps.
    """
    latent = None
    set_latents = getattr(model, "set_latents", None)
    from_latents = getattr(model, "similarity_from_latents", None)
    if with_latent and callable(set_latents) and callable(from_latents):
        per_set = set_latents(x)
        maps = from_latents(per_set)
        latent = torch.cat(list(per_set.values()), dim=1)
    else:
        maps = model.similarity_maps(x)
        if with_latent:
            try:
                latent = model.latent(x)
            except ModelError:
                latent = None
    if latent is not None and latent.shape[-2:] != maps.shape[-2:]:
        latent = None
    return maps, maps.flatten(2).amax(dim=2), latent


def clean_forward(model: PrototypeModel, x: Tensor, with_latent: bool
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Maps (B, P, h, w), pooled (B, P), logits (B, C) and latents (or None) of normalised images.

    The logits come from the maps where the family allows (``logits_from_pooled``); otherwise (ProtoPool
    with soft slots) from the model's own forward, which then also gives the maps unless latents are needed.
    """
    if not model.logits_from_pooled and not with_latent:
        out = model(x)
        return out.similarity_maps, out.max_similarities, out.logits, None
    maps, pooled, latent = forward_maps(model, x, with_latent)
    logits = model.logits_from_similarities(maps, pooled) if model.logits_from_pooled else model(x).logits
    return maps, pooled, logits, latent


class _Engine:
    """The state of one running pass: the consumers, the batch size that fits, counts."""

    def __init__(self, model: PrototypeModel, consumers: Sequence[Consumer], lock: AbstractContextManager[Any] | None,
                 label_map: Tensor | None) -> None:
        self.model, self.consumers = model, list(consumers)
        self.needs = Needs()
        for consumer in self.consumers:
            self.needs = self.needs | consumer.needs
        self.lock = lock if lock is not None else nullcontext()
        self.label_map = None if label_map is None else label_map.to(model.device)
        self.fits: int | None = None  # the batch size that fitted after an out-of-memory error
        self.halvings = 0
        self.done = 0

    def feed(self, batch: PassBatch) -> None:
        """Forward ``batch`` (in pieces of the size that fits) and update every consumer."""
        pieces = deque(_pieces(batch, self.fits))
        while pieces:
            piece = pieces.popleft()
            try:
                step = self._forward(piece)
            except torch.OutOfMemoryError:
                if len(piece) < 2:
                    raise
                half = len(piece) // 2
                self.fits, self.halvings = half if self.fits is None else min(self.fits, half), self.halvings + 1
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                pieces = deque(sub for rest in (piece, *pieces) for sub in _pieces(rest, self.fits))
                continue
            for consumer in self.consumers:
                consumer.update(step)
            self.done += len(piece)

    def _forward(self, batch: PassBatch) -> PassStep:
        model, needs = self.model, self.needs
        batch = batch.to(model.device, unit=needs.unit)
        carrier = None if needs.latent else next((v for v in needs.views if v.includes_clean), None)
        with self.lock:
            views = {view.key: tuple(model.similarity_maps(x) for x in view.images(batch, model))
                     for view in needs.views}
            if carrier is None:
                maps, pooled, logits, latent = clean_forward(model, batch.images, needs.latent)
            else:
                stacked = torch.cat(views[carrier.key])
                maps, latent = stacked.view(len(batch), -1, *stacked.shape[1:])[:, 0], None
                pooled = maps.flatten(2).amax(dim=2)
                logits = model.logits_from_similarities(maps, pooled) if model.logits_from_pooled else \
                    model(batch.images).logits
            probes = {probe.key: probe.compute(batch, model, maps, pooled) for probe in needs.probes}
        unit = batch.unit
        if needs.unit and unit is None:
            unit = denormalize(batch.images, model.input_spec).clamp(0, 1)
        labels = batch.labels
        if labels is not None and self.label_map is not None:
            labels = self.label_map[labels]
        return PassStep(maps=maps, logits=logits, pooled=pooled, latent=latent, images=batch.images, unit=unit,
                        labels=labels, indices=batch.indices, parts=batch.parts, masks=batch.masks,
                        boxes=batch.boxes, offset=self.done, views=views, probes=probes)


def _pieces(batch: PassBatch, size: int | None) -> list[PassBatch]:
    if size is None or len(batch) <= size:
        return [batch]
    return [batch.slice(start, min(start + size, len(batch))) for start in range(0, len(batch), size)]


def run_pass(model: PrototypeModel, batches: Iterable[Any], consumers: Sequence[Consumer],
             progress: Progress | None = None, *, total: int | None = None, stage: str = "forward passes",
             lock: AbstractContextManager[Any] | None = None, label_map: Tensor | None = None,
             record: PassRecord | None = None, group: ShardGroup | None = None) -> PassReport:
    """Run ``model`` once over ``batches``, handing every batch to each consumer.

    progress: ``progress(images done, total, stage)`` after each batch. lock: held around each batch's
    forwards (e.g. a :class:`~protoviz.locking.ModelLock`). label_map: (C_data,) dataset label -> model
    class for ``step.labels``. record: what goes into the provenance. group: when the pass is one shard
    of a torchrun job, the consumers of every rank are merged into rank 0's (see
    :mod:`protoviz.distributed`); ``batches`` must then hold this rank's share only.
    """
    started, clock = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    engine = _Engine(model, consumers, lock, label_map)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for raw in batches:
                engine.feed(as_pass_batch(raw, engine.done))
                if progress is not None:
                    progress(engine.done, total, stage)
    finally:
        model.train(was_training)
    images, world = engine.done, 1
    if group is not None:
        images, world = group.merge(engine.consumers, engine.done), group.world_size
    record = record or PassRecord()
    provenance = Provenance(
        model_sha256=model.metadata.get("checkpoint_sha256"), model=model_identity(model), dataset=record.dataset,
        settings=canonical(dict(record.settings)), seed=record.seed, device=describe_device(model.device),
        versions=library_versions(), images=images, batch_size=record.batch_size,
        batch_size_used=engine.fits if engine.fits is not None else record.batch_size,
        oom_halvings=engine.halvings, world_size=world, started=started, seconds=time.perf_counter() - clock,
        notes=dict(record.notes))
    return PassReport(images, provenance)
