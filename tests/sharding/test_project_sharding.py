"""`protoviz project` over two CPU ranks (torchrun, gloo) writes the file one process writes: the same
source image, map cell, distance and boxes for every prototype. The accumulator travels without its model."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from protoviz.cli import main
from protoviz.compare.scan import tensor_batches
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from protoviz.passes import run_pass
from protoviz.sources.projection import ProjectionAccumulator
from tests.conftest import make_tiny_model
from tests.sharding.test_sharding import torchrun
from tests.sources.conftest import folder_tensors, lively, make_image_folder


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_accumulator_pickles_without_the_model_and_merges(tmp_path: Path) -> None:
    model = lively(make_tiny_model(classes=3, per_class=2, seed=3))
    root = make_image_folder(tmp_path / "data", per_class=3)
    _unit, x, labels, _files = folder_tensors(root, model)
    batches = list(tensor_batches(x, 4, labels))
    whole = ProjectionAccumulator(model)
    run_pass(model, batches, [whole])
    halves = []
    for rank in (1, 0):  # merged in the wrong order on purpose: ties still go to the earlier image
        shard = ProjectionAccumulator(model)
        run_pass(model, batches[rank::2], [shard])
        data = pickle.dumps(shard)
        assert b"prototype_vectors" not in data  # no model weights travel
        halves.append(pickle.loads(data))
    first, second = halves
    assert first.model is None
    first.merge(second)
    expected, merged = whole.result(), first.result()
    assert torch.equal(merged.image, expected.image) and torch.equal(merged.cell, expected.cell)
    assert torch.equal(merged.distance, expected.distance)
    with pytest.raises(Exception, match="merge, not update"):
        first.update(None)  # type: ignore[arg-type]


def test_two_gloo_ranks_write_the_single_process_file(tmp_path: Path) -> None:
    model = lively(make_tiny_model(classes=3, per_class=2, seed=5))
    checkpoint = save_model(model, tmp_path / "tiny.safetensors")
    data = make_image_folder(tmp_path / "train", per_class=5, seed=7)
    args = ["project", str(checkpoint), "--data", str(data), "--batch-size", "2", "--device", "cpu", "--quiet"]
    done = torchrun("-m", "protoviz", args[0], args[1], str(tmp_path / "two.safetensors"), *args[2:])
    assert done.stdout.count("wrote") == 1 and "(2 ranks)" in done.stdout  # rank 0 alone writes
    assert main([args[0], args[1], str(tmp_path / "one.safetensors"), *args[2:]]) == 0
    two, one = (load_model(tmp_path / f"{n}.safetensors").prototype_sources for n in ("two", "one"))
    assert all(s is not None for s in one)
    for mine, theirs in zip(two, one, strict=True):
        assert mine is not None and theirs is not None
        assert (mine.image_id, mine.map_location, mine.box, mine.rf_box, mine.class_index) == \
            (theirs.image_id, theirs.map_location, theirs.box, theirs.rf_box, theirs.class_index)
        assert mine.distance == theirs.distance
        assert (mine.image_thumbnail == theirs.image_thumbnail).all()
