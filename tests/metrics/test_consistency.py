"""Consistency and stability: batched accumulation equals a plain loop written from the formulas;
known answers on the synthetic set; noise reproducibility."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from protoviz.data.datasets import open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.errors import DatasetError
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.consistency import PartAccumulator, PartScores, class_mapping
from protoviz.metrics.noise import NoiseView, add_noise
from protoviz.metrics.runner import EvaluationConfig, evaluate
from protoviz.models.base import PrototypeModel
from tests.conftest import make_tiny_model
from tests.metrics.planted import BeakModel


def loop_reference(maps, noisy, labels, parts, proto_class, size, half, mu):
    """Straight from the formulas: cv2.resize per map, np.argmax, explicit loops."""
    n_protos, n_parts = maps.shape[1], parts.shape[1]
    freqs, consistent, stab = np.zeros((n_protos, n_parts)), [], []
    for p in range(n_protos):
        images = [i for i in range(len(labels)) if labels[i] == proto_class[p]]
        counts, visible, stable = np.zeros(n_parts), np.zeros(n_parts), 0
        for i in images:
            vectors = []
            for m in (maps[i, p], noisy[i, p]):
                up = cv2.resize(m, (size, size), interpolation=cv2.INTER_CUBIC)
                r, c = np.unravel_index(np.argmax(up), up.shape)
                r0, r1, c0, c1 = max(0, r - half), min(size, r + half), max(0, c - half), min(size, c + half)
                o = np.zeros(n_parts)
                for k in range(n_parts):
                    u, v, vis = parts[i, k]
                    if vis and r0 <= v <= r1 and c0 <= u <= c1:
                        o[k] = 1
                vectors.append(o)
            counts += vectors[0]
            visible += parts[i, :, 2] > 0
            stable += int(np.array_equal(vectors[0], vectors[1]))
        for k in range(n_parts):
            freqs[p, k] = counts[k] / max(1, visible[k])
        consistent.append(freqs[p].max() >= mu)
        stab.append(stable / len(images))
    return freqs, 100 * np.mean(consistent), 100 * np.mean(stab)


def test_batched_scores_equal_the_plain_loop_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    n, classes, per_class, n_parts, size = 30, 3, 2, 5, 64
    maps = (rng.standard_normal((n, classes * per_class, 4, 4)) * 2).astype(np.float32)
    noisy = (maps + rng.standard_normal(maps.shape).astype(np.float32) * 0.3).astype(np.float32)
    labels = np.tile(np.arange(classes), n // classes)
    parts = np.stack([rng.integers(0, size + 1, (n, n_parts)), rng.integers(0, size + 1, (n, n_parts)),
                      rng.random((n, n_parts)) < 0.8], axis=2).astype(np.float32)
    parts[labels == 2, 3, 2] = 0  # part 3 never visible in class 2 -> f = 0 through max(1, 0)
    proto_class = np.repeat(np.arange(classes), per_class)
    relevance = torch.from_numpy(np.eye(classes, dtype=bool)[proto_class])
    config = PartMetricConfig(half_size=36, mu=0.3)
    acc = PartAccumulator(relevance, [f"p{k}" for k in range(n_parts)], config, (size, size),
                          NoiseView(0.2, 0.25, 0, draws=1))
    for start in range(0, n, 7):  # uneven batches
        sl = slice(start, start + 7)
        acc.add(torch.from_numpy(labels[sl]), torch.from_numpy(parts[sl]), torch.from_numpy(maps[sl]),
                [torch.from_numpy(noisy[sl])])
    scores = acc.result()
    freqs, consistency, stability = loop_reference(maps, noisy, labels, parts, proto_class, size, 10, 0.3)
    np.testing.assert_array_equal(scores.frequencies, freqs)
    assert scores.frequencies[4:, 3].tolist() == [0.0, 0.0]
    assert scores.consistency == pytest.approx(consistency) and scores.stability == pytest.approx(stability)
    assert scores.n_images.tolist() == [10] * 6 and scores.half_size_pixels == (10, 10)
    assert 0 < consistency < 100 and stability < 100  # the case is not trivial


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SyntheticConfig(image_size=96, n_train_per_class=0, n_test_per_class=3, seed=5)
    return generate_dataset(tmp_path_factory.mktemp("syn"), config)


def part_scores(model: PrototypeModel, data: object, batch_size: int,
                config: PartMetricConfig | None = None) -> PartScores:
    """Consistency and stability through the evaluation engine."""
    result = evaluate(model, data, EvaluationConfig(metrics=("consistency", "stability"), batch_size=batch_size,
                                                    parts=config or PartMetricConfig()))
    return result.parts


def test_planted_beak_prototypes_are_fully_consistent_and_stable(synthetic_root: Path) -> None:
    data = open_dataset(synthetic_root, split="test")
    model = BeakModel(image_size=128, per_class=2).eval()
    scores = part_scores(model, data, 8)
    assert scores.consistency == 100.0 and scores.stability == 100.0
    assert np.all(scores.dominant_frequency == 1.0)  # 'head' ties with 'beak' at 1.0 in the 73 px box
    assert scores.n_images.tolist() == [3] * 16
    assert np.all(scores.frequencies[:, data.part_names.index("beak")] == 1.0)


def test_zero_noise_is_perfectly_stable_and_results_do_not_depend_on_batch_size(synthetic_root: Path) -> None:
    data = open_dataset(synthetic_root, split="test")
    model = make_tiny_model(classes=8, per_class=2, image_size=64)
    _, how = class_mapping(model.class_names, data.class_names)
    assert how == "class names differ; matched by index"
    quiet = part_scores(model, data, 5, PartMetricConfig(noise_std=0.0))
    assert quiet.stability == 100.0 and np.all(quiet.stable_fraction == 1.0)
    config = PartMetricConfig(noise_std=0.5, noise_draws=2, seed=3)
    a = part_scores(model, data, 3, config)
    b = part_scores(model, data, 24, config)
    assert a.stability_per_draw == b.stability_per_draw and len(a.stability_per_draw) == 2
    np.testing.assert_array_equal(a.frequencies, quiet.frequencies)  # the clean pass is the same


def test_noise_is_seeded_per_image_and_clipped() -> None:
    images = torch.zeros(3, 3, 8, 8)
    one = add_noise(images, [4, 5, 6], seed=1, draw=0, std=0.2, clip=0.25)
    again = add_noise(images[1:], [5, 6], seed=1, draw=0, std=0.2, clip=0.25)
    assert torch.equal(one[1:], again)
    assert not torch.equal(one, add_noise(images, [4, 5, 6], seed=1, draw=1, std=0.2, clip=0.25))
    assert one.abs().max() <= 0.25 and (one.abs() == 0.25).any()
    assert torch.equal(add_noise(images, [0, 1, 2], 0, 0, 0.0, 0.25), images)


def test_class_mapping() -> None:
    assert class_mapping(("a", "b"), ("b", "a"))[0].tolist() == [1, 0]
    assert class_mapping(("a", "b", "c"), ("c",))[0].tolist() == [2]
    with pytest.raises(DatasetError, match="cannot be matched"):
        class_mapping(("a", "b"), ("x",))
