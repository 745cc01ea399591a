"""The evaluation runner (shared passes, provenance), purity, object overlap, deletion curves, export, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.cli import main
from protoviz.data.datasets import iterate_batches, open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.errors import ConfigError, DatasetError
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.deletion import step_masks
from protoviz.metrics.export import scores_csv, to_csv, to_json
from protoviz.metrics.registry import list_metrics
from protoviz.metrics.runner import EvaluationConfig, evaluate, evaluation_indices
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model
from tests.metrics.planted import BeakModel


@pytest.fixture(scope="module")
def syn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SyntheticConfig(image_size=80, n_train_per_class=0, n_test_per_class=3, seed=7)
    return generate_dataset(tmp_path_factory.mktemp("syn"), config)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(make_tiny_model(classes=8, per_class=2), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def test_all_metrics_in_one_run_with_provenance(syn: Path, checkpoint: Path) -> None:
    model = load_model(checkpoint)
    data = open_dataset(syn)
    result = evaluate(model, data, EvaluationConfig(metrics=tuple(list_metrics()), batch_size=5, deletion_steps=4,
                                                    deletion_images_per_class=1))
    for key in ("accuracy", "consistency", "stability", "region_stability", "purity", "object_overlap",
                "deletion_auc", "insertion_auc"):
        assert np.isfinite(result.scores[key]), key
    assert len(result.prototypes) == 16 and result.prototypes[5]["classes"] == "class_2"
    prov = result.provenance
    assert prov.model["checkpoint_sha256"] == model.metadata["checkpoint_sha256"] == result.model_sha256
    assert prov.settings["parts"]["half_size"] == 36.0 and prov.seed == 0 and prov.notes["half_size_pixels"] == [10, 10]
    assert prov.dataset.description["images"] == 24
    assert prov.notes["class_matching"] == "class names differ; matched by index"
    assert {"torch", "numpy", "opencv", "protoviz"} <= set(prov.versions) and prov.device.startswith("cpu")
    assert prov.images == 24 and prov.batch_size == 5 and prov.oom_halvings == 0 and prov.world_size == 1
    assert result.units["accuracy"] == "%" and result.units["purity"] == "fraction"
    assert result.units["deletion_auc"] == "ratio" and result.results["stability"].spread == 0.0
    assert result.deletion.deletion.shape == (16, 5)  # one image per class x its 2 prototypes, 4 steps + 1
    doc = json.loads(to_json({"tiny": result}))["results"][0]
    assert doc["model_name"] == "tiny" and doc["parts"]["names"][1] == "beak"
    assert to_csv({"tiny": result}).splitlines()[0].startswith("model,prototype,classes,images,dominant_part")
    assert scores_csv({"tiny": result}).count("\n") == 2
    assert set(result.prototype_scores(0)) >= {"dominant_frequency", "stable_fraction", "purity"}


def test_planted_model_purity_overlap_and_deletion(syn: Path) -> None:
    model = BeakModel(image_size=96).eval()
    data = open_dataset(syn)
    result = evaluate(model, data, EvaluationConfig(
        metrics=("consistency", "stability", "purity", "object_overlap", "deletion", "region_stability"),
        batch_size=8, deletion_steps=5, deletion_images_per_class=1))
    assert result.scores["consistency"] == 100.0 and result.scores["stability"] == 100.0
    assert result.scores["purity"] == 1.0
    assert {row["purity_part"] for row in result.prototypes} <= {"beak", "head"}
    assert result.scores["object_overlap"] > 75.0  # the 5% region (larger than the beak) is mostly on the bird
    assert result.scores["deletion_auc"] < result.scores["insertion_auc"]


def test_purity_equals_a_plain_loop(syn: Path) -> None:
    model = make_tiny_model(classes=8, per_class=2)
    data = open_dataset(syn)
    result = evaluate(model, data, EvaluationConfig(metrics=("purity",), batch_size=7, purity_top_k=4))
    batches = list(iterate_batches(data, model.input_spec, 24))
    with torch.no_grad():
        out = model(batches[0].images)
    parts, maps = batches[0].parts.numpy(), out.similarity_maps.numpy()
    half = round(16 * 64 / 224)  # 4.57 -> 5
    for p in range(16):
        top = np.argsort(-out.max_similarities[:, p].numpy(), kind="stable")[:4]
        counts = np.zeros(8)
        for i in top:
            up = cv2.resize(maps[i, p], (64, 64), interpolation=cv2.INTER_CUBIC)
            r, c = np.unravel_index(np.argmax(up), up.shape)
            for k in range(8):
                u, v, vis = parts[i, k]
                if vis and max(0, r - half) <= v < min(64, r + half) and max(0, c - half) <= u < min(64, c + half):
                    counts[k] += 1
        assert result.purity.purity[p] == pytest.approx(counts.max() / 4), p
        assert sorted(result.purity.top_images[p]) == sorted(top.tolist())


def test_shared_prototypes_are_evaluated_on_every_class_with_positive_weight(syn: Path) -> None:
    model = make_tiny_model(classes=8, per_class=1)
    with torch.no_grad():
        model.class_identity[0] = 1.0  # prototype 0 serves every class ...
        model.last_layer.weight[:, 0] = torch.tensor([1.0, 0.5, 0, 0, 0, 0, 0, -1.0])  # ... but weighs on two
    result = evaluate(model, open_dataset(syn), EvaluationConfig(metrics=("consistency",)))
    assert result.parts.n_images.tolist() == [6] + [3] * 7
    assert result.prototypes[0]["classes"] == "class_0;class_1"


def test_zero_noise_region_stability_and_limits(syn: Path) -> None:
    model = make_tiny_model(classes=8, per_class=1)
    config = EvaluationConfig(metrics=("region_stability",), parts=PartMetricConfig(noise_std=0.0), limit=8)
    result = evaluate(model, open_dataset(syn), config)
    assert result.scores["region_stability"] == 100.0 and result.provenance.images == 8
    assert evaluation_indices(24, 8) == [0, 3, 7, 10, 13, 16, 20, 23] and evaluation_indices(5, None) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="unknown metric"):
        EvaluationConfig(metrics=("consistancy",))


def test_step_masks_grow_from_nothing_to_everything_in_heatmap_order() -> None:
    heat = torch.tensor([[[0.1, 0.9], [0.5, 0.9]]])
    masks = step_masks(heat, 4).view(5, 4)
    assert masks.sum(1).tolist() == [0, 1, 2, 3, 4]
    assert masks[1].tolist() == [False, True, False, False]  # tie 0.9: first in row-major order first
    assert masks[3].tolist() == [False, True, True, True]


def test_part_metrics_without_parts_say_why(tmp_path: Path, checkpoint: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        Image.new("RGB", (20, 20), (200, 10, 10)).save(tmp_path / "data" / cls / "x.png")
    model = make_tiny_model(classes=2)
    with pytest.raises(DatasetError, match="consistency needs part annotations.*ImageFolder has no part"):
        evaluate(model, open_dataset(tmp_path / "data"), EvaluationConfig(metrics=("consistency",)))
    assert main(["evaluate", str(checkpoint), "--data", str(tmp_path / "data"), "--quiet"]) == 2  # 8 vs 2 classes


def test_cli_writes_json_and_csv(syn: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["evaluate", str(checkpoint), "--data", str(syn), "--json", str(tmp_path / "r.json"),
                 "--csv", str(tmp_path / "r.csv"), "--limit", "16", "--seed", "4", "--draws", "2",
                 "--batch-size", "6", "--metrics", "accuracy,consistency,stability"])
    assert code == 0
    out = capsys.readouterr()
    assert "consistency" in out.out and "forward passes: 16/16" in out.err
    doc = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert doc["provenance"]["seed"] == 4 and doc["provenance"]["settings"]["parts"]["noise_draws"] == 2
    assert doc["provenance"]["batch_size"] == 6 and doc["provenance"]["images"] == 16
    assert doc["scores"]["consistency"] == {"value": doc["scores"]["consistency"]["value"], "unit": "%"}
    assert len(doc["parts"]["stability_per_draw"]) == 2
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 17


def test_object_overlap_from_boxes_of_uncropped_images(tmp_path: Path) -> None:
    from protoviz.metrics.regions import box_masks
    from tests.metrics.test_families import make_parts_dataset

    masks = box_masks(torch.tensor([[1.0, 0.0, 3.0, 1.6], [float("nan")] * 4]), (3, 4))
    assert masks[0].int().tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]] and not masks[1].any()
    root = make_parts_dataset(tmp_path, classes=3)
    model = make_tiny_model(classes=3)
    with pytest.raises(ConfigError, match="turn cropping off"):
        evaluate(model, open_dataset(root), EvaluationConfig(metrics=("object_overlap",)))
    result = evaluate(model, open_dataset(root, crop_to_box=False), EvaluationConfig(metrics=("object_overlap",)))
    assert 0.0 < result.scores["object_overlap"] <= 100.0  # the 40x41 box covers most of the 48x48 image
    assert result.prototype_part(0) is None and result.parts is None


def test_deletion_curves_of_two_shards_merge_to_the_single_run(syn: Path, checkpoint: Path) -> None:
    """Deletion runs as a probe of the shared pass: two shards' curves, merged, equal the one-process run
    (same pairs in image order, same curves), and the chosen images are spread over the shards."""
    from protoviz.metrics.deletion import DeletionAccumulator
    from protoviz.metrics.registry import get_metric
    from protoviz.metrics.runner import _open_run
    from protoviz.passes import run_pass

    model = load_model(checkpoint)
    data = open_dataset(syn)
    config = EvaluationConfig(metrics=("deletion",), batch_size=4, deletion_steps=3, deletion_images_per_class=2)
    single = evaluate(model, data, config).results["deletion"].details
    everything = list(range(len(data)))
    run = _open_run(model, data, config, everything, None, None)
    metric = get_metric("deletion").cls()
    shards = [metric.consumer(run) for _ in range(2)]
    assert all(isinstance(shard, DeletionAccumulator) for shard in shards)
    first, second = (cast(DeletionAccumulator, shard) for shard in shards)
    for shard, mine in zip((first, second), (everything[:7], everything[7:]), strict=True):
        run_pass(model, iterate_batches(data, model.input_spec, 4, mine), [shard], label_map=run.label_map)
    assert first.parts and second.parts
    first.merge(second)
    merged = first.result()
    np.testing.assert_array_equal(merged.images, single.images)
    np.testing.assert_array_equal(merged.prototypes, single.prototypes)
    np.testing.assert_allclose(merged.deletion, single.deletion, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(merged.insertion, single.insertion, rtol=1e-5, atol=1e-6)
    assert len(set(single.images.tolist())) == 2 * 8  # two images of each of the 8 classes
