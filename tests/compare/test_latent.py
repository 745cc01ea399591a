"""Latent-space projection: shapes, determinism, and PCA on points with a known structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protoviz.compare.latent import fit_neighbourhood, fit_pca, latent_view, prototype_classes
from protoviz.compare.scan import tensor_batches
from protoviz.compare.topk import TopKConfig, topk_patches
from protoviz.errors import ConfigError
from tests.conftest import make_tiny_model


def test_pca_recovers_a_plane() -> None:
    generator = torch.Generator().manual_seed(0)
    scale = torch.tensor([3.0, 1.0], dtype=torch.float64)
    coords = torch.randn(50, 2, generator=generator, dtype=torch.float64) * scale
    basis = torch.linalg.qr(torch.randn(6, 2, generator=generator, dtype=torch.float64))[0].t()  # (2, 6) orthonormal
    points = coords @ basis + 5.0
    projection = fit_pca(points)
    assert projection.explained.sum().item() == pytest.approx(1.0)
    assert projection.explained[0] > projection.explained[1]
    xy = projection.transform(points)
    # distances between points are preserved by projecting onto their own plane
    torch.testing.assert_close(torch.cdist(xy, xy), torch.cdist(points, points), atol=1e-6, rtol=1e-9)


def test_pca_needs_two_points() -> None:
    with pytest.raises(ConfigError, match="at least 2 points"):
        fit_pca(torch.zeros(1, 4))


@pytest.mark.parametrize("similarity", ["log", "cosine"])
def test_latent_view_shapes_and_determinism(similarity: str) -> None:
    model = make_tiny_model(similarity=similarity, seed=1)
    torch.manual_seed(2)
    images = torch.randn(7, 3, 64, 64)
    views = []
    for batch_size in (2, 7):
        topk = topk_patches(model, tensor_batches(images, batch_size), TopKConfig(k=3, thumbnail_size=0))
        views.append(latent_view(model, topk))
    first, second = views
    assert first.prototype_xy.shape == (6, 2) and first.patch_xy.shape == (6, 3, 2)
    assert first.normalised == (similarity == "cosine")
    assert first.prototype_class.tolist() == prototype_classes(model).tolist() == [0, 0, 1, 1, 2, 2]
    for name in ("prototype_xy", "patch_xy", "explained"):
        assert getattr(first, name) == pytest.approx(getattr(second, name), abs=1e-9)


def test_latent_view_needs_latents() -> None:
    model = make_tiny_model()
    topk = topk_patches(model, tensor_batches(torch.randn(3, 3, 64, 64), 3), TopKConfig(k=2, keep_latents=False))
    with pytest.raises(ConfigError, match="without latents"):
        latent_view(model, topk)


@pytest.mark.parametrize("method", ["tsne", "pacmap"])
def test_neighbourhood_projections_are_seeded_and_keep_clusters(method: str) -> None:
    model = make_tiny_model(seed=3)
    torch.manual_seed(4)
    topk = topk_patches(model, tensor_batches(torch.randn(9, 3, 64, 64), 9), TopKConfig(k=4, thumbnail_size=0))
    first, again = latent_view(model, topk, method, seed=5), latent_view(model, topk, method, seed=5)
    assert first.method == method and first.prototype_xy.shape == (6, 2) and first.patch_xy.shape == (6, 4, 2)
    assert np.array_equal(first.prototype_xy, again.prototype_xy) and np.isnan(first.explained).all()
    assert np.isfinite(first.patch_xy[first.patch_filled]).all()
    assert first.axis_titles[0] in ("t-SNE 1", "PaCMAP 1")
    # two far-apart clusters in a 5-D space stay apart in 2-D
    generator = np.random.default_rng(0)
    points = np.concatenate([generator.normal(0, 0.1, (20, 5)), generator.normal(8, 0.1, (20, 5))])
    coords, _ = fit_neighbourhood(points, method, seed=0)
    centre_a, centre_b = coords[:20].mean(0), coords[20:].mean(0)
    spread = max(np.linalg.norm(coords[:20] - centre_a, axis=1).max(), np.linalg.norm(coords[20:] - centre_b, axis=1).max())
    assert np.linalg.norm(centre_a - centre_b) > 2 * spread


def test_unknown_projection_is_refused() -> None:
    model = make_tiny_model()
    topk = topk_patches(model, tensor_batches(torch.randn(3, 3, 64, 64), 3), TopKConfig(k=2, thumbnail_size=0))
    with pytest.raises(ConfigError, match="unknown latent projection"):
        latent_view(model, topk, "umap")
    assert latent_view(model, topk).axis_titles[0].startswith("PC1 (")
