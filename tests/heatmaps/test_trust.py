"""Sanity checks and faithfulness figures: known answers on tiny and planted models."""

from __future__ import annotations

import functools
import operator

import numpy as np
import pytest
import scipy.stats
import torch

from protoviz.errors import ConfigError
from protoviz.heatmaps.methods import HeatmapOptions, compute_heatmaps
from protoviz.heatmaps.trust import (
    PerturbationConfig,
    RandomisationConfig,
    assign_prototype_parts,
    mask_relevance,
    normalise_maps,
    perturbation_curves,
    randomisation_check,
    randomisation_stages,
    spearman,
)
from tests.conftest import make_tiny_model
from tests.heatmaps.methods.planted import PlantedModel, planted_images, region_mask


def test_spearman_matches_scipy_including_ties() -> None:
    torch.manual_seed(0)
    a = torch.randn(3, 5, 6)
    b = a + 0.8 * torch.randn(3, 5, 6)
    b[0] = b[0].round()  # ties
    ours = spearman(a, b)
    for i in range(3):
        expected = scipy.stats.spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert ours[i].item() == pytest.approx(expected, abs=1e-10)


def test_spearman_of_constant_maps() -> None:
    ones = torch.ones(1, 4, 4)
    assert spearman(ones, ones).item() == 1.0
    assert spearman(ones, torch.randn(1, 4, 4)).item() == 0.0


def test_stages_cascade_from_the_top() -> None:
    model = make_tiny_model()
    labels, layers = randomisation_stages(model, RandomisationConfig(stages=3))
    assert len(labels) == len(layers) == 3
    assert layers[0][0] == "last_layer"
    assert all(set(layers[i]) < set(layers[i + 1]) for i in range(2))
    _, independent = randomisation_stages(model, RandomisationConfig(stages=3, mode="independent"))
    assert sorted(functools.reduce(operator.iadd, independent, [])) == sorted(layers[-1])


def test_saliency_changes_under_randomisation_and_passes() -> None:
    model = make_tiny_model()
    torch.manual_seed(3)
    result = randomisation_check("saliency", model, torch.randn(2, 3, 64, 64), [0, 1, 4], RandomisationConfig(stages=2))
    assert result.rho.shape == (2, 2, 3)
    assert result.passed and result.score < 0.5


def test_a_method_that_ignores_the_model_fails_randomisation() -> None:
    def image_edges(model, images, indices):  # depends on the image only, never on the weights
        edges = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().sum(1)
        edges = torch.nn.functional.pad(edges, (0, 0, 0, 1))
        return edges[:, None].expand(-1, indices.shape[1], -1, -1)

    model = make_tiny_model()
    result = randomisation_check(image_edges, model, torch.randn(2, 3, 64, 64), [0, 1])
    assert np.allclose(result.rho, 1.0) and not result.passed


def test_random_baseline_fails_randomisation_because_it_ignores_training() -> None:
    model = make_tiny_model()
    result = randomisation_check("random", model, torch.randn(1, 3, 64, 64), [2], RandomisationConfig(stages=2))
    assert np.allclose(result.rho[-1], 1.0) and not result.passed


def test_deletion_of_a_perfect_map_beats_a_random_map_on_the_planted_model() -> None:
    model = PlantedModel().eval()
    images = planted_images(3)
    perfect = region_mask().float().expand(3, 1, -1, -1).clone()
    torch.manual_seed(0)
    noise = torch.rand(3, 1, 64, 64)
    config = PerturbationConfig(steps=8)
    good = perturbation_curves(model, images, [0], perfect, config)
    bad = perturbation_curves(model, images, [0], noise, config)
    assert good.deletion.shape == (3, 1, 9) and good.fractions[-1] == 1.0
    np.testing.assert_allclose(good.deletion[..., 0], 1.0)
    np.testing.assert_allclose(good.insertion[..., -1], 1.0)
    assert (good.deletion[..., -1] < 0.2).all() and (good.insertion[..., 0] < 0.2).all()
    assert (good.deletion_auc < bad.deletion_auc).all()
    assert (good.insertion_auc > bad.insertion_auc).all()
    assert (good.deletion_auc < 0.2).all()  # the first step removes the whole patch


def test_saliency_beats_random_gradients_on_deletion() -> None:
    model = PlantedModel().eval()
    images = planted_images(3, seed=5)
    config = PerturbationConfig(steps=8, score="location")
    auc = {m: perturbation_curves(model, images, [0], compute_heatmaps(m, model, images, [0]), config).deletion_auc
           for m in ("saliency", "random")}
    assert auc["saliency"].mean() < auc["random"].mean()


def test_perturbation_rejects_maps_of_the_wrong_shape() -> None:
    model = make_tiny_model()
    with pytest.raises(ConfigError, match="maps must have shape"):
        perturbation_curves(model, torch.randn(2, 3, 64, 64), [0], torch.rand(2, 2, 64, 64))


def test_mask_relevance_known_shares() -> None:
    masks = torch.zeros(1, 4, 4, dtype=torch.long)
    masks[0, :2, :2] = 3  # part 3: top-left quarter
    masks[0, 2:, :] = 1  # part 1: bottom half
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0, :2, :2] = 1.0  # all mass on part 3
    maps[0, 1] = 1.0  # uniform (constant map)
    result = mask_relevance(maps, masks, torch.tensor([3, 2]))
    assert result.part_share[0, 0] == pytest.approx(1.0)
    assert result.object_share[0, 0] == pytest.approx(1.0)
    assert np.isnan(result.part_share[0, 1])  # part 2 absent from the image
    assert result.object_share[0, 1] == pytest.approx(12 / 16)
    assert result.object_area[0, 0] == pytest.approx(12 / 16) and result.part_area[0, 0] == pytest.approx(4 / 16)


def test_signed_maps_count_only_their_positive_part() -> None:
    maps = torch.tensor([[[[-2.0, 0.0], [0.0, 1.0]]]])
    torch.testing.assert_close(normalise_maps(maps, signed=True), torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]]))
    torch.testing.assert_close(normalise_maps(maps), torch.tensor([[[[0.0, 2 / 3], [2 / 3, 1.0]]]]))


def test_assign_prototype_parts_finds_the_planted_part() -> None:
    model = PlantedModel().eval()
    images = planted_images(3)
    masks = torch.ones(3, 64, 64, dtype=torch.long)  # part 1 everywhere ...
    masks[:, region_mask()] = 4  # ... except the planted patch, part 4
    parts = assign_prototype_parts(model, images, masks, [0], top_n=2)
    assert parts.tolist() == [4]


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError):
        RandomisationConfig(mode="sideways")
    with pytest.raises(ConfigError):
        PerturbationConfig(deletion_baseline="zero")
    with pytest.raises(ConfigError):
        HeatmapOptions(batch_rows=0)
