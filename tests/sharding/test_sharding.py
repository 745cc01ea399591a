"""Two CPU ranks over gloo (started by torchrun, as a user would) give the single-process results:
consistency and stability exactly (noise is seeded per image, every image is forwarded in the same
batch), the other scores, top-k patches, profiles and global characteristics to float64 rounding."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from protoviz.cli import main
from protoviz.compare.summary import CompareConfig, compare_models
from protoviz.compare.topk import TopKConfig
from protoviz.data.datasets import open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.explain.global_ import explain_dataset
from protoviz.explain.params import ExplainConfig
from protoviz.metrics.runner import evaluate
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model
from tests.sharding.settings import evaluation_config, explain_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The ranks run one thread each (OMP_NUM_THREADS=1), so the reference does too: float32 sums in
    upsampling depend on the thread count, not on the sharding."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("shards")
    data = generate_dataset(folder / "syn", SyntheticConfig(image_size=48, n_train_per_class=0, n_test_per_class=2))
    checkpoint = save_model(make_tiny_model(classes=8, per_class=2, seed=4), folder / "tiny.safetensors")
    return data, checkpoint


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_gloo_ranks_equal_one_process(setup: tuple[Path, Path], tmp_path: Path) -> None:
    data, checkpoint = setup
    torchrun("tests/sharding/worker.py", str(tmp_path / "out.pkl"), str(data), str(checkpoint))
    sharded = pickle.loads((tmp_path / "out.pkl").read_bytes())
    model, dataset = load_model(checkpoint), open_dataset(data, crop_to_box=False)

    single = evaluate(model, dataset, evaluation_config())
    merged = sharded["evaluation"]
    assert merged.provenance.world_size == 2 and merged.provenance.images == single.provenance.images == 16
    assert merged.provenance.key == single.provenance.key  # the same result, whoever computed it
    for name in ("consistency", "stability"):
        assert merged.scores[name] == single.scores[name]
    np.testing.assert_array_equal(merged.parts.frequencies, single.parts.frequencies)
    np.testing.assert_array_equal(merged.parts.stable_fraction, single.parts.stable_fraction)
    assert merged.parts.stability_per_draw == single.parts.stability_per_draw
    for name, value in single.scores.items():
        assert merged.scores[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    for mine, theirs in zip(merged.prototypes, single.prototypes, strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            same = value == pytest.approx(mine[key], rel=1e-12, abs=1e-12) if isinstance(value, float) else value == mine[key]
            assert same, (key, value, mine[key])

    config = CompareConfig(topk=TopKConfig(k=3), batch_size=3)
    [run] = compare_models({"a": model}, dataset, config).runs
    [shard_run] = sharded["comparison"].runs
    assert shard_run.accuracy == run.accuracy and shard_run.num_images == run.num_images
    np.testing.assert_array_equal(shard_run.topk.values.numpy(), run.topk.values.numpy())
    np.testing.assert_array_equal(shard_run.topk.images.numpy(), run.topk.images.numpy())
    np.testing.assert_array_equal(shard_run.profiles.numpy(), run.profiles.numpy())

    batch, limit = explain_settings()
    reference = explain_dataset(model, dataset, ExplainConfig(), batch, limit)
    explanation = sharded["explanation"]
    assert explanation.num_images == reference.num_images == limit
    np.testing.assert_allclose(explanation.importance, reference.importance, rtol=1e-12, atol=1e-15)


def test_torchrun_evaluate_command_writes_one_result(setup: tuple[Path, Path], tmp_path: Path) -> None:
    data, checkpoint = setup
    args = ["evaluate", str(checkpoint), "--data", str(data), "--metrics", "accuracy,consistency,stability",
            "--draws", "2", "--batch-size", "3", "--device", "cpu", "--quiet"]
    done = torchrun("-m", "protoviz", *args, "--json", str(tmp_path / "two.json"))
    assert done.stdout.count("consistency") == 1 and "2 ranks" in done.stdout  # rank 0 alone prints
    assert main([*args, "--json", str(tmp_path / "one.json")]) == 0
    two, one = (json.loads((tmp_path / f"{n}.json").read_text())["results"][0] for n in ("two", "one"))
    assert two["scores"] == one["scores"] and two["prototypes"] == one["prototypes"]
    assert two["provenance"]["world_size"] == 2 and one["provenance"]["world_size"] == 1
    assert two["provenance"]["settings_digest"] == one["provenance"]["settings_digest"]
