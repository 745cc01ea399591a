"""Pointing game: CaBRNet's mask and energy relevance on known answers, and a run on synthetic masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from protoviz.data.datasets import open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.errors import ConfigError, DatasetError
from protoviz.explain.pointing import energy_relevance, mask_relevance, normalise, pointing_game
from protoviz.models.base import InputSpec
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig


def _by_the_definition(attribution: np.ndarray, segmentation: np.ndarray, area: float) -> tuple[float, float]:
    """Xu-Darme et al.'s mask relevance and Wang et al.'s energy relevance written out for one map."""
    ordered = np.sort(attribution.ravel())
    threshold = ordered[int(len(ordered) * (1 - area))]
    chosen = attribution > threshold
    mask = float((chosen & segmentation).sum() / chosen.sum()) if chosen.sum() else 0.0
    energy = float((attribution * segmentation).sum() / attribution.sum()) if attribution.sum() else 0.0
    return mask, energy


def test_relevances_follow_the_definitions() -> None:
    rng = np.random.default_rng(0)
    attribution = rng.random((4, 12, 10))
    segmentation = rng.random((4, 12, 10)) > 0.6
    attribution[3] = 0.0  # nothing selected, nothing to share
    for area in (0.1, 0.35, 1.0):
        masked = mask_relevance(torch.from_numpy(attribution), torch.from_numpy(segmentation), area)
        energy = energy_relevance(torch.from_numpy(attribution), torch.from_numpy(segmentation))
        for n in range(4):
            expected = _by_the_definition(attribution[n], segmentation[n], area)
            assert masked[n].item() == pytest.approx(expected[0]) and energy[n].item() == pytest.approx(expected[1])
    with pytest.raises(ConfigError):
        mask_relevance(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool), 0.0)


def test_evidence_on_the_object_scores_one_and_off_it_zero() -> None:
    segmentation = torch.zeros(2, 20, 20, dtype=torch.bool)
    segmentation[:, 5:15, 5:15] = True
    attribution = torch.zeros(2, 20, 20)
    attribution[0, 8:12, 8:12] = 1.0  # on the object
    attribution[1, 0:3, 0:3] = 1.0  # in a corner, off it
    assert mask_relevance(attribution, segmentation, 0.1).tolist() == [1.0, 0.0]
    # strictly above the threshold, as CaBRNet: with the top 2% all ties at 1, nothing is selected
    assert mask_relevance(attribution, segmentation, 0.02).tolist() == [0.0, 0.0]
    assert energy_relevance(attribution, segmentation).tolist() == [1.0, 0.0]
    assert normalise(torch.full((1, 3, 3), 2.0)).abs().sum() == 0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pointing")
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=1))


@pytest.mark.parametrize("method", ["upsample", "prp"])
def test_pointing_game_runs_on_synthetic_masks(synthetic: Path, method: str) -> None:
    dataset = open_dataset(synthetic, split="test")
    torch.manual_seed(0)
    model = ProtoPNet(ProtoPNetConfig(class_names=dataset.class_names, backbone="tiny_cnn_small", prototypes_per_class=2,
                                      prototype_dim=8, input=InputSpec(image_size=(64, 64)))).eval()
    game = pointing_game(model, dataset, method=method, top=2, batch_size=3)
    assert len(game.rows) == 2 * len(dataset)
    assert 0.0 <= game.mask_relevance <= 1.0 and 0.0 <= game.energy_relevance <= 1.0
    assert {r["rank"] for r in game.rows} == {1, 2}
    record = game.as_record()
    assert record["rows"] == 2 * len(dataset) and record["per_prototype"]
    with pytest.raises(ConfigError):
        pointing_game(model, dataset, top=0)


def test_pointing_game_needs_masks(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    (root / "a").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "a" / "x.png")
    torch.manual_seed(0)
    model = ProtoPNet(ProtoPNetConfig(class_names=("a",), backbone="tiny_cnn_small", prototypes_per_class=1,
                                      prototype_dim=4, input=InputSpec(image_size=(32, 32)))).eval()
    with pytest.raises(DatasetError, match="segmentations"):
        pointing_game(model, open_dataset(root), top=1)


@pytest.mark.parametrize("method", ["upsample", "saliency"])
def test_the_pass_gives_each_images_own_top_prototypes_by_the_definition(synthetic: Path, method: str) -> None:
    """Through the pass engine (heatmaps as a probe under the lock) the rows equal the pointing game written
    out by hand: top prototypes by max similarity, their heatmaps, the relevances. (One batch on both sides,
    so the floats are the same; batching and merging are checked by the shard test below.)"""
    from protoviz.data.datasets import iterate_batches
    from protoviz.heatmaps.methods import compute_heatmaps, get_method

    dataset = open_dataset(synthetic, split="test")
    torch.manual_seed(1)
    model = ProtoPNet(ProtoPNetConfig(class_names=dataset.class_names, backbone="tiny_cnn_small", prototypes_per_class=2,
                                      prototype_dim=8, input=InputSpec(image_size=(64, 64)))).eval()
    game = pointing_game(model, dataset, method=method, top=2, area=0.2, batch_size=len(dataset))
    whole = next(iter(iterate_batches(dataset, model.input_spec, len(dataset), with_masks=True)))
    assert whole.masks is not None
    with torch.no_grad():
        best = model.similarity_maps(whole.images).flatten(2).amax(2).topk(2, dim=1)
    heatmaps = compute_heatmaps(method, model, whole.images, best.indices).detach()
    attribution = normalise(heatmaps.flatten(0, 1), get_method(method).signed).numpy()
    objects = (whole.masks > 0).repeat_interleave(2, dim=0).numpy()
    assert [(r["image"], r["rank"]) for r in game.rows] == [(i, k) for i in whole.image_ids for k in (1, 2)]
    for n, row in enumerate(game.rows):
        assert row["prototype"] == int(best.indices.flatten()[n])
        expected = _by_the_definition(attribution[n], objects[n], 0.2)
        assert row["mask_relevance"] == pytest.approx(expected[0], abs=1e-6)
        assert row["energy_relevance"] == pytest.approx(expected[1], abs=1e-5)


def test_shards_of_the_pointing_game_merge_to_the_whole(synthetic: Path) -> None:
    from protoviz.data.datasets import iterate_batches
    from protoviz.explain.pointing import PointingAccumulator
    from protoviz.passes import run_pass

    dataset = open_dataset(synthetic, split="test")
    torch.manual_seed(2)
    model = ProtoPNet(ProtoPNetConfig(class_names=dataset.class_names, backbone="tiny_cnn_small", prototypes_per_class=1,
                                      prototype_dim=8, input=InputSpec(image_size=(64, 64)))).eval()
    halves = [PointingAccumulator("upsample", 1, 0.1) for _ in range(2)]
    for accumulator, chosen in zip(halves, ([1, 3, 5, 7], [0, 2, 4, 6]), strict=True):
        run_pass(model, iterate_batches(dataset, model.input_spec, 2, chosen, with_masks=True), [accumulator])
    halves[1].merge(halves[0])
    whole = pointing_game(model, dataset, top=1, batch_size=5, indices=list(range(8)))
    assert [r["image"] for r in whole.rows] == [dataset.records[i].image_id for i in range(8)]
    merged = halves[1].result().rows
    assert [(r["image"], r["prototype"], r["rank"]) for r in merged] == \
        [(i, r["prototype"], r["rank"]) for i, r in enumerate(whole.rows)]
    for mine, theirs in zip(merged, whole.rows, strict=True):  # other batch sizes: equal to float32 rounding
        assert mine["similarity"] == pytest.approx(theirs["similarity"], rel=1e-5)
        assert mine["mask_relevance"] == pytest.approx(theirs["mask_relevance"], abs=0.02)
        assert mine["energy_relevance"] == pytest.approx(theirs["energy_relevance"], rel=1e-4, abs=1e-6)
