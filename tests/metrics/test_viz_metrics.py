"""Figure builders of the Evaluate page (plotly, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from protoviz.errors import ConfigError
from protoviz.viz.metrics import (
    best_frequency_histogram,
    deletion_curves_figure,
    dominant_part_bars,
    figure_html,
    part_frequency_heatmap,
)


def test_figures_hold_the_data() -> None:
    hist = best_frequency_histogram({"a": np.array([0.1, 0.9]), "b": np.array([1.0])}, mu=0.8)
    assert [t.name for t in hist.data] == ["a", "b"] and list(hist.data[0].x) == [0.1, 0.9]
    bars = dominant_part_bars({"a": ["beak", "beak", "-"]}, ["head", "beak"])
    assert list(bars.data[0].x) == ["head", "beak", "-"] and list(bars.data[0].y) == [0, 2, 1]
    heat = part_frequency_heatmap(np.eye(2), ["head", "beak"], ["#0", "#1"], "t")
    assert np.array_equal(np.asarray(heat.data[0].z), np.eye(2))
    with pytest.raises(ConfigError, match="shape"):
        part_frequency_heatmap(np.eye(3), ["head", "beak"], ["#0", "#1"], "t")
    curves = deletion_curves_figure([0, 0.5, 1], {"a": np.array([3, 1, 0])}, {"a": np.array([0, 2, 3])})
    assert [t.name for t in curves.data] == ["a deletion", "a insertion"]
    assert b"plotly" in figure_html(curves)[:2_000_000].lower()
