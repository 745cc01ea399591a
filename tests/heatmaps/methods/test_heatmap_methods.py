"""Contract and known-answer tests for the heatmap methods, generated from the method registry."""

from __future__ import annotations

import pytest
import torch

from protoviz.errors import ConfigError, ModelError
from protoviz.heatmaps.methods import HeatmapOptions, compute_heatmaps, get_method, list_methods
from protoviz.heatmaps.methods.randomise import parameterised_layers, randomised_copy
from protoviz.heatmaps.trust import normalise_maps
from protoviz.models import build_model, list_families
from protoviz.models.protopnet import log_similarity
from protoviz.models.registry import FAMILIES
from tests.conftest import make_tiny_model
from tests.heatmaps.methods.planted import PlantedModel, planted_images, region_mask

FAST = HeatmapOptions(smoothgrad_samples=4)


def _example(family: str):
    torch.manual_seed(0)
    return build_model(family, FAMILIES.get(family).example_config()).eval()


def _region_share(name: str, maps: torch.Tensor) -> torch.Tensor:
    mass = normalise_maps(maps, get_method(name).signed)
    return (mass * region_mask()).flatten(-2).sum(-1) / mass.flatten(-2).sum(-1)


def test_registry_lists_the_methods_default_first() -> None:
    names = list_methods()
    assert names[0] == "upsample"
    assert {"upsample", "saliency", "smoothgrad", "prp", "random"} <= set(names)
    with pytest.raises(ConfigError, match="unknown heatmap method"):
        get_method("nope")


@pytest.mark.parametrize("family", list_families())
@pytest.mark.parametrize("method", list_methods())
def test_maps_have_input_resolution_for_every_family(family: str, method: str) -> None:
    model = _example(family)
    h, w = model.input_spec.image_size
    torch.manual_seed(1)
    x = torch.randn(2, 3, h, w)
    shared = compute_heatmaps(method, model, x, [0, model.num_prototypes - 1], FAST)
    assert shared.shape == (2, 2, h, w)
    assert torch.isfinite(shared).all()
    per_image = compute_heatmaps(method, model, x, torch.tensor([[0, 1], [model.num_prototypes - 1, 0]]), FAST)
    assert per_image.shape == (2, 2, h, w)


@pytest.mark.parametrize("method", list_methods())
def test_batched_rows_match_one_pair_at_a_time(method: str) -> None:
    model = make_tiny_model()
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    indices = torch.tensor([[0, 3], [5, 1]])
    together = compute_heatmaps(method, model, x, indices, HeatmapOptions(batch_rows=3, smoothgrad_noise=0.0))
    for b in range(2):
        for k in range(2):
            alone = compute_heatmaps(method, model, x[b:b + 1], indices[b, k:k + 1],
                                     HeatmapOptions(smoothgrad_noise=0.0))
            torch.testing.assert_close(together[b, k], alone[0, 0], rtol=1e-4, atol=1e-7)


def test_saliency_is_the_absolute_input_gradient_of_the_max_similarity() -> None:
    model = make_tiny_model()
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).max_similarities[0, 4], x)
    maps = compute_heatmaps("saliency", model, x.detach(), [4])
    torch.testing.assert_close(maps[0, 0], grad[0].abs().amax(dim=0))


def test_smoothgrad_without_noise_is_saliency() -> None:
    model = make_tiny_model()
    x = torch.randn(2, 3, 64, 64)
    plain = compute_heatmaps("saliency", model, x, [1, 2])
    options = HeatmapOptions(smoothgrad_noise=0.0, smoothgrad_samples=3)
    smooth = compute_heatmaps("smoothgrad", model, x, [1, 2], options)
    torch.testing.assert_close(plain, smooth)


def test_bad_prototype_indices_are_refused() -> None:
    model = make_tiny_model()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ConfigError, match="prototype indices"):
        compute_heatmaps("upsample", model, x, [model.num_prototypes])
    with pytest.raises(ConfigError, match="shape"):
        compute_heatmaps("upsample", model, x, torch.zeros(3, 1, dtype=torch.long))


def test_methods_leave_the_model_unchanged() -> None:
    model = make_tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in list_methods():
        compute_heatmaps(method, model, torch.randn(1, 3, 64, 64), [0], FAST)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())


def test_randomised_copy_changes_every_layer_and_is_seeded() -> None:
    model = make_tiny_model()
    a, b, c = randomised_copy(model, seed=0), randomised_copy(model, seed=0), randomised_copy(model, seed=1)
    modules = dict(model.named_modules())
    for name in parameterised_layers(model):
        original = modules[name].weight
        assert not torch.equal(dict(a.named_modules())[name].weight, original)
        assert torch.equal(dict(a.named_modules())[name].weight, dict(b.named_modules())[name].weight)
        assert not torch.equal(dict(a.named_modules())[name].weight, dict(c.named_modules())[name].weight)


# ----- known answers on the planted model ------------------------------------------------------
@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "prp"])
def test_faithful_methods_put_most_mass_on_the_planted_patch(method: str) -> None:
    model = PlantedModel().eval()
    maps = compute_heatmaps(method, model, planted_images(4), [0], HeatmapOptions(smoothgrad_samples=8))
    assert (_region_share(method, maps) > 0.8).all()


def test_upsampling_points_at_the_planted_patch_but_spreads_beyond_it() -> None:
    model = PlantedModel().eval()
    maps = compute_heatmaps("upsample", model, planted_images(4), [0])
    share = _region_share("upsample", maps)
    area = region_mask().float().mean()
    peaks = maps.flatten(-2).argmax(-1)
    assert region_mask().flatten()[peaks].all()  # pointing game: the peak is in the patch
    assert (share > 3 * area).all() and (share < 0.8).all()  # bicubic mass leaks into neighbouring cells


def test_random_gradients_do_not_find_the_planted_patch() -> None:
    model = PlantedModel().eval()
    shares = torch.stack([_region_share("random", compute_heatmaps("random", model, planted_images(4, seed=s), [0],
                                                                    HeatmapOptions(random_seed=s)))
                          for s in range(4)])
    assert shares.mean() < 0.3


def test_prp_rule_conserves_the_similarity_down_to_the_pixels() -> None:
    model = PlantedModel().eval()  # L2 similarity, bias-free patchify conv: PRP's rule, then z^B
    images = planted_images(2)
    maps = compute_heatmaps("prp", model, images, [0, 1])
    with torch.no_grad():
        scores = model(images).max_similarities
    torch.testing.assert_close(maps.flatten(2).sum(-1), scores, rtol=1e-4, atol=1e-6)
    native = make_tiny_model()  # log ProtoPNet: BatchNorm, ReLU and a Sigmoid add-on pass relevance on
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = native(x).max_similarities[:, [0, 3]]
    torch.testing.assert_close(compute_heatmaps("prp", native, x, [0, 3]).flatten(2).sum(-1), expected,
                               rtol=1e-3, atol=1e-5)


class NoVectors(PlantedModel):
    """The planted model without exposed prototype vectors: PRP falls back to the gradient rule."""

    @property
    def prototype_embeddings(self) -> torch.Tensor:
        raise ModelError("no vectors")


def test_prp_gradient_rule_fallback_conserves_through_the_pixel_layer() -> None:
    model = NoVectors().eval()
    images = planted_images(2)
    latent = model.latent(images).detach().requires_grad_(True)
    score = log_similarity(latent, model.prototype_vectors)[:, 0].flatten(1).amax(1).sum()
    (grad,) = torch.autograd.grad(score, latent)
    top_relevance = (latent * grad).flatten(1).sum(1)  # the gradient rule at the similarity layer
    maps = compute_heatmaps("prp", model, images, [0])
    torch.testing.assert_close(maps.flatten(1).sum(1), top_relevance.detach(), rtol=1e-4, atol=1e-6)
    assert (_region_share("prp", maps) > 0.8).all()
