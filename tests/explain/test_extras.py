"""Noise floor, JPEG floor, agreement, redundancy flags, sentences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.errors import ConfigError
from protoviz.explain import ExplainConfig, GlobalExplanation, describe, explain_dataset
from protoviz.explain.extras import (
    agreement,
    jpeg_noise_floor,
    noise_floor,
    rank_agreement,
    redundancy,
    region_comparison,
)
from protoviz.explain.params import CHARACTERISTICS
from tests.conftest import make_tiny_model
from tests.explain.analytic import HueModel


def _colourful(seed: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)


def _global(importance: np.ndarray) -> GlobalExplanation:
    p = importance.shape[0]
    return GlobalExplanation(CHARACTERISTICS, importance, importance, np.abs(importance), np.ones(p), np.ones(p), 1,
                             ExplainConfig())


def test_noise_floor_is_small_next_to_a_real_change() -> None:
    model = HueModel([0.05, 0.4]).eval()
    images = [_colourful(i) for i in range(3)]
    for mode in ("fast", "reference"):
        floor = noise_floor(model, images, ExplainConfig(mode=mode))
        hue = explain_dataset(model, images, ExplainConfig(mode=mode)).mean_abs_delta[:, 0].mean()
        assert floor.name == "identity" and floor.per_prototype.shape == (2,)
        assert floor.mean_abs < 0.05 * hue, (mode, floor.mean_abs, hue)
    fast_floor = noise_floor(model, images, ExplainConfig(mode="fast"))
    reference_floor = noise_floor(model, images, ExplainConfig(mode="reference"))
    assert fast_floor.max_abs < 1e-4 < reference_floor.max_abs  # float round trip vs PIL's uint8 HSV
    jpeg = jpeg_noise_floor(model, images, quality=75)
    assert jpeg.name == "jpeg75" and jpeg.mean_abs > fast_floor.mean_abs
    with pytest.raises(ConfigError):
        jpeg_noise_floor(model, images, quality=0)


def test_region_comparison_has_three_regions() -> None:
    model = make_tiny_model()
    out = region_comparison(model, _colourful(0), [0, 1])
    assert set(out) == {"whole", "inside", "outside"}
    assert out["inside"].boxes is not None and out["whole"].boxes is None
    assert all(r.deltas.shape == (1, 6, 2) for r in out.values())


def test_agreement_per_prototype() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 6))
    same = agreement(_global(a), _global(a * 2 + 1))
    np.testing.assert_allclose(same.pearson, 1.0)
    np.testing.assert_allclose(same.spearman, 1.0)
    reversed_ = agreement(_global(a), _global(-a))
    np.testing.assert_allclose(reversed_.spearman, -1.0)
    constant = agreement(_global(a), _global(np.ones((4, 6))))
    assert np.isnan(constant.pearson).all() and np.isnan(constant.median_spearman)
    with pytest.raises(ConfigError):
        agreement(_global(a), _global(a[:2]))
    rho = rank_agreement(a, a + 0.001 * rng.normal(size=a.shape))
    assert rho.shape == (6,) and (rho > 0.7).all()


def test_redundancy_flags_duplicated_prototypes_only() -> None:
    model = make_tiny_model(per_class=3)
    with torch.no_grad():
        model.prototype_vectors[4] = model.prototype_vectors[1]
    images = [_colourful(i) for i in range(4)]
    result = explain_dataset(model, images, batch_size=4)
    pairs = redundancy(result, model)
    assert [(p.first, p.second) for p in pairs] == [(1, 4)]
    assert pairs[0].embedding_cosine == pytest.approx(1.0) and pairs[0].explanation_cosine == pytest.approx(1.0)


def test_redundancy_uses_source_patches() -> None:
    model = make_tiny_model(per_class=1)
    from protoviz.models.base import PrototypeSource
    patch = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    model.prototype_sources = [PrototypeSource("a", (0, 8, 0, 8), patch_thumbnail=patch),
                               PrototypeSource("b", (0, 8, 0, 8), patch_thumbnail=patch.copy()), None]
    vectors = np.array([[1.0, 0.5, 0.2, 0.1, 0.1, 0.1], [1.0, 0.5, 0.2, 0.1, 0.1, 0.1], [1.0, 0.5, 0.2, 0.1, 0.1, 0.1]])
    pairs = redundancy(_global(vectors), model, embedding_threshold=1.1)  # embeddings never enough here
    assert [(p.first, p.second) for p in pairs] == [(0, 1)] and pairs[0].patch_correlation == pytest.approx(1.0)


def test_sentence_reads_like_the_spec() -> None:
    values = {"hue": 2.2, "shape": 1.04, "texture": 0.05, "contrast": 0.3, "saturation": 0.4, "brightness": 0.2}
    text = describe(values, 12, "Cardinal")
    assert text == "prototype 12 (class Cardinal) relies mostly on hue (2.2) and shape (1.0); texture barely matters"
    flat = describe({"hue": 0.001, "shape": -0.002}, 3, noise_floor=0.01)
    assert flat.startswith("prototype 3: no characteristic changes its similarity much")
    negative = describe({"hue": 1.0, "shape": -0.5, "texture": 0.02}, 1)
    assert "changing shape (-0.5) raised the similarity" in negative and "texture barely matters" in negative
    assert describe({"hue": float("nan")}, 0) == "prototype 0: no characteristic could be measured"
    assert "identity" not in describe({"hue": 1.0, "identity": 5.0}, 0)


def test_global_explanation_ranking() -> None:
    result = _global(np.array([[0.1, 0.5, 0.2, 0.0, -0.1, 0.3]]))
    assert result.ranking(0) == ["shape", "brightness", "texture", "hue", "contrast", "saturation"]
    assert dataclasses.replace(result, num_images=2).vector(0)["shape"] == 0.5
