"""Figures of characteristic importance: sorted bars, noise band, heatmap, image strip."""

from __future__ import annotations

import numpy as np
import pytest

from protoviz.errors import ConfigError
from protoviz.viz.characteristics import NEGATIVE, POSITIVE, importance_bars, importance_heatmap, modified_strip


def test_bars_are_sorted_with_the_largest_on_top_and_negatives_marked() -> None:
    figure = importance_bars({"hue": 2.2, "shape": 1.0, "texture": -0.3, "contrast": float("nan")}, "p", 0.05)
    bar = figure.data[0]
    assert list(bar.y) == ["texture", "shape", "hue"]  # plotly draws the first bar at the bottom
    assert list(bar.marker.color) == [NEGATIVE, POSITIVE, POSITIVE]
    assert figure.layout.shapes[0].x0 == -0.05 and figure.layout.shapes[0].x1 == 0.05
    with pytest.raises(ConfigError):
        importance_bars({"hue": float("nan")}, "p")


def test_heatmap_and_strip_shapes() -> None:
    figure = importance_heatmap(np.array([[1.0, -2.0], [0.5, 0.0]]), ["hue", "shape"], ["p0", "p1"])
    assert figure.data[0].zmax == 2.0 and figure.data[0].zmin == -2.0
    with pytest.raises(ConfigError):
        importance_heatmap(np.zeros((3, 2)), ["hue", "shape"], ["p0", "p1"])
    picture = np.zeros((40, 60, 3), dtype=np.uint8)
    strip = modified_strip(picture, [picture, picture], ["hue", "shape"], (5, 20, 10, 30), [0.5, -0.1], tile=60)
    assert strip.dtype == np.uint8 and strip.shape[1] == 3 * 60 + 2 * 4
    assert (strip == [255, 255, 0]).all(axis=-1).any()  # the box is drawn
    with pytest.raises(ConfigError):
        modified_strip(picture, [picture], ["hue", "shape"])
