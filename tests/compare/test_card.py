"""Prototype card facts and top-k heatmap views; gallery and comparison figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from protoviz.compare.card import prototype_facts, topk_patch_views
from protoviz.compare.matching import DuplicatePair
from protoviz.compare.summary import CompareConfig, probe_indices, scan_dataset
from protoviz.compare.topk import TopKConfig
from protoviz.data.datasets import load_batch, open_dataset
from protoviz.errors import ConfigError
from protoviz.heatmaps import percentile_boxes, upsample_maps
from protoviz.models.base import PrototypeSource
from protoviz.viz.compare import correlation_heatmap, latent_scatter, match_strength_bars
from protoviz.viz.gallery import class_weight_bars, fit_tile, patch_strip, placeholder_tile, tile_grid
from tests.conftest import make_tiny_model


def test_prototype_facts_gather_weights_source_and_duplicates() -> None:
    model = make_tiny_model(sets=("support", "trivial"))
    model.prototype_sources = [None] * model.num_prototypes
    thumb = np.zeros((32, 32, 3), dtype=np.uint8)
    model.prototype_sources[7] = PrototypeSource("train/7.png", (0, 32, 32, 64), image_thumbnail=thumb)
    pairs = [DuplicatePair(2, 7, 0.99, None), DuplicatePair(1, 3, 0.98, 0.97)]
    facts = prototype_facts(model, 7, pairs)
    assert facts.group == "trivial" and facts.own_class == 0 and facts.own_class_name == "class_0"
    assert np.allclose(facts.weights, model.class_weights[:, 7].detach().double().numpy())
    assert facts.duplicates == [(2, 0.99, None)]
    # the source box (input pixels 64x64) is drawn at half scale on the 32x32 thumbnail: rows 0-15, cols 16-31
    drawn = facts.source_image.any(axis=2)
    assert drawn[0, 16] and drawn[15, 31] and not drawn[20, 5]
    assert prototype_facts(model, 0).source_image is None
    with pytest.raises(ConfigError, match="prototype index"):
        prototype_facts(model, 12)


def test_topk_views_show_the_upsampled_map_of_each_winning_image(tiny_dataset: Path) -> None:
    model = make_tiny_model(seed=3, classes=8, per_class=1)
    dataset = open_dataset(tiny_dataset)
    config = CompareConfig(topk=TopKConfig(k=3), batch_size=5)
    run = scan_dataset("m", model, dataset, probe_indices(len(dataset), None, 0), config)
    views = topk_patch_views(model, dataset, run.topk, 4)
    assert [v.dataset_index for v in views] == run.topk.images[4].tolist()
    assert [v.similarity for v in views] == pytest.approx(run.topk.values[4].tolist())
    batch = load_batch(dataset, model.input_spec, [views[0].dataset_index])
    with torch.no_grad():
        maps = model.similarity_maps(batch.images)[:, 4:5]
    expected = percentile_boxes(upsample_maps(maps, (64, 64)), 95.0)[0, 0].tolist()
    assert list(views[0].box) == expected
    assert views[0].overlay.shape == (64, 64, 3) and views[0].overlay.dtype == np.uint8


def test_gallery_pictures() -> None:
    tile = placeholder_tile(64, "no source recorded")
    assert tile.shape == (64, 64, 3) and (tile != tile[0, 0]).any()  # the text is drawn
    fitted = fit_tile(np.full((8, 12, 3), 200, dtype=np.uint8), 48)
    assert fitted.shape == (48, 48, 3) and (fitted == 200).all(axis=2).sum() == 32 * 48
    grid = tile_grid([tile] * 5, columns=3, gap=2)
    assert grid.shape == (64 * 2 + 2, 64 * 3 + 4, 3)
    strip, captions = patch_strip(np.zeros((3, 16, 16, 3), dtype=np.uint8), np.array([0.9, 0.5, -np.inf]), tile=32)
    assert strip.shape == (32, 32 * 3 + 8, 3) and captions == ["0.900", "0.500", "-"]
    with pytest.raises(ConfigError):
        fit_tile(np.zeros((4, 4), dtype=np.uint8), 32)


def test_figures() -> None:
    bars = class_weight_bars(np.array([1.0, -0.5, -0.5]), ["a", "b", "c"], own_class=0)
    assert isinstance(bars, go.Figure) and list(bars.data[0].y) == [1.0, -0.5, -0.5]
    with pytest.raises(ConfigError):
        class_weight_bars(np.ones(2), ["a", "b", "c"])
    heat = correlation_heatmap(np.eye(3), "A", "B", [(0, 0), (1, 1)])
    assert len(heat.data) == 2 and list(heat.data[1].x) == [0, 1]
    strength = match_strength_bars(["0-1", "2-0"], [0.9, 0.1], 0.5)
    assert list(strength.data[0].marker.color) == ["#2ca02c", "#bbbbbb"]
    assert strength.layout.xaxis.type == "category"
    scatter = latent_scatter(np.zeros((4, 2)), np.array([0, 0, 1, -1]), np.zeros((4, 2, 2)),
                             np.array([[True, True], [True, False], [True, True], [False, False]]),
                             ["a", "b"], np.array([0.6, 0.3]))
    names = [trace.name for trace in scatter.data]
    assert names == ["no class patches", "no class prototypes", "a patches", "a prototypes", "b patches",
                     "b prototypes"]
    assert len(scatter.data[2].x) == 3  # class a: 2 + 1 filled patch slots
