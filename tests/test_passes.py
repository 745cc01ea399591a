"""The pass engine: one forward per batch shared by every consumer, one view forward per key, the one
out-of-memory fallback (tested with an injected OOM), progress and cancellation, provenance, and
consumers whose merged shards equal one pass."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from protoviz.compare.matching import ProfileAccumulator, ProfileConfig
from protoviz.compare.scan import tensor_batches
from protoviz.compare.topk import TopKAccumulator, TopKConfig
from protoviz.data.datasets import iterate_batches, open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.distributed import ShardGroup, cpu_copy
from protoviz.explain.global_ import CharacteristicView, GlobalAccumulator, _prepared
from protoviz.explain.params import ExplainConfig
from protoviz.metrics.accuracy import AccuracyAccumulator
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.consistency import PartAccumulator
from protoviz.metrics.noise import NoiseView
from protoviz.metrics.object_overlap import ObjectOverlapAccumulator
from protoviz.metrics.parts import prototype_classes
from protoviz.metrics.purity import PurityAccumulator
from protoviz.metrics.region_stability import RegionStabilityAccumulator
from protoviz.models.protopnet import ProtoPNet
from protoviz.passes import Needs, PassBatch, PassRecord, PassStep, run_pass
from protoviz.progress import Cancelled, CancelToken, ProgressTracker
from protoviz.provenance import dataset_identity
from tests.conftest import make_tiny_model


class Recorder:
    """A consumer keeping what it saw."""

    def __init__(self, needs: Needs | None = None) -> None:
        self.needs = needs or Needs()
        self.steps: list[PassStep] = []

    def update(self, step: PassStep) -> None:
        self.steps.append(step)

    def merge(self, other: Recorder) -> None:
        self.steps += other.steps

    def result(self) -> int:
        return sum(s.maps.shape[0] for s in self.steps)


class Counting(ProtoPNet):
    """The tiny ProtoPNet counting the images of each backbone forward (every similarity forward runs
    one), running out of memory above ``limit`` images (an injected CUDA out-of-memory error, so the
    fallback runs on a CPU)."""

    def count_calls(self, limit: int | None = None) -> Counting:
        self.calls: list[int] = []
        self.limit = limit
        return self

    def set_latents(self, x: Tensor) -> dict[str, Tensor]:
        self.calls.append(int(x.shape[0]))
        if self.limit is not None and x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("injected: CUDA out of memory")
        return super().set_latents(x)


def counting_model(limit: int | None = None) -> Counting:
    model = make_tiny_model(classes=3, per_class=2)
    model.__class__ = Counting
    return model.count_calls(limit)  # type: ignore[attr-defined, no-any-return]


def _images(count: int) -> Tensor:
    return torch.randn(count, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_one_forward_per_batch_and_one_per_view_key_whatever_the_consumers() -> None:
    model = counting_model()
    noise = NoiseView(0.2, 0.25, 0, draws=2)
    consumers = [Recorder(), Recorder(Needs(views=(noise,))), Recorder(Needs(views=(NoiseView(0.2, 0.25, 0, 2),)))]
    report = run_pass(model, tensor_batches(_images(7), 4), consumers)
    assert report.images == 7 and model.calls == [4, 4, 4, 3, 3, 3]  # clean + 2 draws, once for 2 consumers
    first, second, third = consumers
    assert [s.maps.shape[0] for s in first.steps] == [4, 3] and first.steps[1].offset == 4
    assert second.steps[0].maps is first.steps[0].maps  # the same step for everyone
    assert len(third.steps[0].view(noise)) == 2 and second.steps[0].unit is None  # nobody asked for unit
    assert torch.equal(first.steps[1].indices, torch.arange(4, 7))


def test_the_clean_maps_come_from_a_view_that_includes_them() -> None:
    model = counting_model()
    view = CharacteristicView(ExplainConfig())
    images = [torch.rand(3, 40, 48) for _ in range(3)]
    from PIL import Image
    pil = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for im in images]
    consumer = GlobalAccumulator(view.config.characteristics, model.num_prototypes, view)
    run_pass(model, _prepared(model, pil, [0, 1, 2], 2, view.config), [consumer])
    # originals and their 6 modified versions, B images per forward on a CPU; no separate clean forward
    assert model.calls == [2] * 7 + [1] * 7
    assert consumer.count == 3


def test_an_out_of_memory_batch_is_halved_retried_and_recorded() -> None:
    images, labels = _images(10), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    wanted = AccuracyAccumulator(3, torch.device("cpu"))
    run_pass(make_tiny_model(classes=3, per_class=2), tensor_batches(images, 8, labels), [wanted])
    model = counting_model(limit=2)
    got, record = AccuracyAccumulator(3, torch.device("cpu")), Recorder()
    report = run_pass(model, tensor_batches(images, 8, labels), [got, record], record=PassRecord(batch_size=8))
    assert model.calls == [8, 4, 2, 2, 2, 2, 2]  # 8 and 4 ran out of memory; later batches cut to 2 at once
    assert [s.maps.shape[0] for s in record.steps] == [2, 2, 2, 2, 2]
    assert torch.cat([s.indices for s in record.steps]).tolist() == list(range(10))
    assert torch.equal(got.correct, wanted.correct) and torch.equal(got.total, wanted.total)
    prov = report.provenance
    assert prov.oom_halvings == 2 and prov.batch_size == 8 and prov.batch_size_used == 2


def test_out_of_memory_on_one_image_is_raised() -> None:
    with pytest.raises(torch.OutOfMemoryError):
        run_pass(counting_model(limit=0), tensor_batches(_images(2), 2), [Recorder()])


def test_progress_after_each_batch_and_cancellation_stops_the_pass() -> None:
    model = counting_model()
    seen: list[tuple[int, int | None, str]] = []
    run_pass(model, tensor_batches(_images(5), 2), [Recorder()], lambda d, t, s="": seen.append((d, t, s)),
             total=5, stage="scan")
    assert seen == [(2, 5, "scan"), (4, 5, "scan"), (5, 5, "scan")]
    token = CancelToken()
    tracker = ProgressTracker(lambda reading: token.cancel() if reading.done >= 2 else None, cancel=token)
    model.train()
    with pytest.raises(Cancelled):
        run_pass(model, tensor_batches(_images(6), 2), [Recorder()], tracker)
    assert model.calls[-2:] == [2, 2] and model.training  # stopped at the next batch; mode restored


def test_provenance_is_stamped_once_with_a_key_that_ignores_the_batch_size(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "syn", SyntheticConfig(image_size=48, n_train_per_class=0, n_test_per_class=1))
    data = open_dataset(root)
    model = make_tiny_model(classes=8, per_class=1)
    model.metadata["checkpoint_sha256"] = "0" * 64  # as a loaded checkpoint records it
    ident = dataset_identity(data)

    def key(batch_size: int, settings: dict[str, Any]) -> Any:
        report = run_pass(model, iterate_batches(data, model.input_spec, batch_size), [Recorder()],
                          record=PassRecord(ident, settings, 0, batch_size))
        return report.provenance
    a, b, c = key(3, {"mu": 0.8}), key(8, {"mu": 0.8}), key(3, {"mu": 0.5})
    assert a.key == b.key and a.key != c.key and a.key.complete
    assert a.model_sha256 == "0" * 64 and a.model["family"] == "protopnet" and a.images == 8 and a.world_size == 1
    assert a.dataset.fingerprint == dataset_identity(open_dataset(root)).fingerprint  # stable
    assert dataset_identity(open_dataset(root, crop_to_box=False)).fingerprint != a.dataset.fingerprint
    record = a.to_dict()
    assert record["settings"] == {"mu": 0.8} and {"torch", "numpy", "python"} <= set(record["versions"])
    with pytest.raises(AttributeError):
        a.images = 3  # type: ignore[misc]


@dataclass(frozen=True)
class _Double:
    """A view with its own images: each batch doubled."""

    includes_clean = False

    @property
    def key(self) -> Hashable:
        return "double"

    def images(self, batch: PassBatch, model: Any) -> Iterator[Tensor]:
        yield batch.images * 2


def test_views_see_the_halved_batches_too() -> None:
    model = counting_model(limit=3)
    consumer = Recorder(Needs(views=(_Double(),)))
    run_pass(model, tensor_batches(_images(4), 4), [consumer])
    assert [s.view(_Double())[0].shape[0] for s in consumer.steps] == [2, 2]


# ----- shards merge into the single-pass result ------------------------------------------------------------
def _consumers(model: Any, part_names: tuple[str, ...]) -> list[Any]:
    relevance = prototype_classes(model)
    noise = NoiseView(0.3, 0.25, 1, draws=2)
    size, cpu = model.input_spec.image_size, torch.device("cpu")
    used = model.class_weights.detach().t().gt(0).any(dim=1)
    return [AccuracyAccumulator(model.num_classes, cpu), PartAccumulator(relevance, part_names, PartMetricConfig(),
                                                                         size, noise),
            RegionStabilityAccumulator(relevance, noise, size), ObjectOverlapAccumulator(relevance, size),
            PurityAccumulator(model.num_prototypes, part_names, size, cpu, used, top_k=3),
            TopKAccumulator(TopKConfig(k=3)), ProfileAccumulator(ProfileConfig(kind="map", grid=2))]


def test_merged_shards_equal_one_pass(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "syn", SyntheticConfig(image_size=48, n_train_per_class=0, n_test_per_class=2))
    data = open_dataset(root, crop_to_box=False)
    model = make_tiny_model(classes=8, per_class=2)
    positions = list(range(len(data)))
    whole = _consumers(model, data.part_names)
    run_pass(model, iterate_batches(data, model.input_spec, 3, positions, with_masks=True), whole,
             label_map=torch.arange(8))
    shards = []
    for rank in range(2):  # the split torchrun ranks use: every other batch of 3
        mine = ShardGroup(rank, 2, torch.device("cpu")).take(positions, 3)
        shard = _consumers(model, data.part_names)
        run_pass(model, iterate_batches(data, model.input_spec, 3, mine, with_masks=True), shard,
                 label_map=torch.arange(8))
        shards.append(shard)
    for mine, theirs in zip(shards[0], shards[1]):
        mine.merge(cpu_copy(theirs))
    for single, merged in zip(whole, shards[0]):
        _assert_same(single.result(), merged.result())


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, (Tensor, np.ndarray)):
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12)
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            _assert_same(getattr(a, name), getattr(b, name))
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12, nan_ok=True)
    else:
        assert a == b


@dataclass(frozen=True)
class _CountingProbe:
    """A probe that records each call (its batch size) and gives back the batch's pooled similarities."""

    calls: list[int]

    @property
    def key(self) -> Hashable:
        return "counting"

    def compute(self, batch: PassBatch, model: ProtoPNet, maps: Tensor, pooled: Tensor) -> Tensor:
        self.calls.append(len(batch))
        return pooled * 2


class _ProbeReader:
    def __init__(self, probe: _CountingProbe) -> None:
        self.probe, self.seen = probe, []

    @property
    def needs(self) -> Needs:
        return Needs(probes=(self.probe,))

    def update(self, step: PassStep) -> None:
        assert torch.equal(step.probe(self.probe), step.pooled * 2)
        self.seen.append(len(step.indices))

    def merge(self, other: _ProbeReader) -> None:
        self.seen += other.seen

    def result(self) -> list[int]:
        return self.seen


def test_a_probe_asked_by_two_consumers_runs_once_per_batch_after_the_clean_forward() -> None:
    model = make_tiny_model()
    calls: list[int] = []
    readers = [_ProbeReader(_CountingProbe(calls)), _ProbeReader(_CountingProbe(calls))]
    run_pass(model, tensor_batches(torch.randn(5, 3, 64, 64), 2), readers)
    assert calls == [2, 2, 1] and readers[0].result() == readers[1].result() == [2, 2, 1]
