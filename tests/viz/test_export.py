"""Every figure exports for a paper: PNG at a chosen DPI, SVG and PDF (plotly redrawn with matplotlib), HTML offline.

The plotly figure builders are found by walking protoviz.viz, so a new chart without an example here fails.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import re
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

import protoviz.viz
from protoviz.errors import ConfigError
from protoviz.viz import characteristics as ch
from protoviz.viz import compare as co
from protoviz.viz import decision as de
from protoviz.viz import gallery as ga
from protoviz.viz import metrics as me
from protoviz.viz import trust as tr
from protoviz.viz.export import figure_file, html_file
from protoviz.viz.figures import FigureRow, evidence_panels, explanation_figure
from protoviz.viz.scale import colour_bar, with_colour_scale

RNG = np.random.default_rng(0)
EXAMPLES: dict[str, Callable[[], go.Figure]] = {
    "importance_bars": lambda: ch.importance_bars({"hue": 4.69, "shape": -0.2, "texture": 1.1}, "Prototype 3",
                                                  noise_floor=0.3),
    "importance_heatmap": lambda: ch.importance_heatmap(RNG.normal(size=(4, 2)), ["hue", "shape"],
                                                        [f"#{i}" for i in range(4)]),
    "randomisation_figure": lambda: tr.randomisation_figure(["none", "1"], {"upsample": [0.9, 0.2]}, 0.5),
    "curves_figure": lambda: tr.curves_figure([0, 0.5, 1], {"a": RNG.random((2, 3))}, {"a": RNG.random((2, 3))}),
    "relevance_figure": lambda: tr.relevance_figure(["a", "b"], [0.3, None], 0.1, [0.6, 0.7], 0.4),
    "best_frequency_histogram": lambda: me.best_frequency_histogram({"m": RNG.random(20)}, 0.8),
    "dominant_part_bars": lambda: me.dominant_part_bars({"m": ["beak", "-"]}, ["beak", "wing"]),
    "part_frequency_heatmap": lambda: me.part_frequency_heatmap(RNG.random((3, 2)), ["a", "b"], ["p0", "p1", "p2"],
                                                                "f"),
    "deletion_curves_figure": lambda: me.deletion_curves_figure([0, 1], {"m": np.array([1, 0.2])},
                                                                {"m": np.array([0.1, 0.9])}),
    "correlation_heatmap": lambda: co.correlation_heatmap(RNG.uniform(-1, 1, (3, 4)), "A", "B", [(0, 1)]),
    "match_strength_bars": lambda: co.match_strength_bars(["0-1", "2-3"], [0.9, 0.2], 0.5),
    "latent_scatter": lambda: co.latent_scatter(RNG.normal(size=(3, 2)), np.array([0, 1, -1]),
                                                RNG.normal(size=(3, 2, 2)), np.ones((3, 2), bool), ["c0", "c1"],
                                                np.array([0.5, 0.2]), RNG.random((3, 2))),
    "top_classes_bars": lambda: co.top_classes_bars(["a", "b"], [0.7, 0.3], "top"),
    "class_weight_bars": lambda: ga.class_weight_bars(RNG.normal(size=3), ["x", "y", "z"], 1),
    "score_bars": lambda: ga.score_bars({"hue": 0.4, "shape": 0.1}, "characteristics"),
    "decision_waterfall": lambda: de.decision_waterfall([("#1 a", 2.0, "for"), ("#2 b", -0.5, "against"),
                                                         ("3 other prototypes", -4.0, "other")], -2.5, "score"),
}


def figure_builders() -> list[str]:
    """Every public function of protoviz.viz annotated to return a plotly figure."""
    found = []
    for info in pkgutil.iter_modules(protoviz.viz.__path__):
        module = importlib.import_module(f"protoviz.viz.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_") and \
                    "go.Figure" in str(inspect.signature(function).return_annotation):
                found.append(name)
    return sorted(found)


def test_every_chart_has_an_export_example() -> None:
    assert set(figure_builders()) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_chart_exports_as_png_svg_pdf_and_offline_html(name: str) -> None:
    figure = EXAMPLES[name]()
    png = figure_file(figure, "png", dpi=100)
    small = Image.open(io.BytesIO(png))
    large = Image.open(io.BytesIO(figure_file(figure, "png", dpi=200)))
    assert small.format == "PNG" and 1.8 < large.width / small.width < 2.2  # the DPI sets the resolution
    svg = figure_file(figure, "svg").decode()
    assert "<svg" in svg and "</svg>" in svg
    title = figure.layout.title.text
    if title:
        assert all(word in svg for word in title.split()[:1])  # text stays text (editable, searchable)
    assert figure_file(figure, "pdf").startswith(b"%PDF")
    html = html_file(figure).decode()
    assert not re.search(r"<script[^>]+src=", html) and len(html) > 1_000_000  # plotly.js inlined, nothing fetched


def test_pictures_keep_their_pixels_and_the_dpi_sets_their_size() -> None:
    picture = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    png = Image.open(io.BytesIO(figure_file(picture, "png", dpi=300)))
    assert np.array_equal(np.asarray(png.convert("RGB")), picture)
    assert round(png.info["dpi"][0]) == 300
    assert b"<svg" in figure_file(picture, "svg") and figure_file(picture, "pdf").startswith(b"%PDF")
    with pytest.raises(ConfigError, match="dpi"):
        figure_file(picture, "png", dpi=5000)
    with pytest.raises(ConfigError, match="format"):
        figure_file(picture, "gif")
    with pytest.raises(ConfigError, match="HTML"):
        figure_file(picture, "html")


def test_svg_and_pdf_are_reproducible() -> None:
    figure = EXAMPLES["score_bars"]()
    assert figure_file(figure, "svg") == figure_file(figure, "svg")
    assert figure_file(figure, "pdf") == figure_file(figure, "pdf")


def test_bar_labels_have_room_and_the_noise_floor_sits_in_the_legend() -> None:
    figure = ch.importance_bars({"hue": 4.69, "shape": -0.2, "texture": 1.1}, "t", noise_floor=0.3)
    bar = figure.data[0]
    assert bar.cliponaxis is False and list(bar.text) == ["-0.2", "1.1", "4.69"]
    low, high = figure.layout.xaxis.range
    assert high >= 4.69 + 0.15 * (4.69 + 0.3) and low <= -0.2 - 0.15 * (4.69 + 0.3)  # room for the labels
    assert not figure.layout.annotations  # nothing written over the bars
    assert figure.layout.shapes[0].name == "noise floor (±0.3)" and figure.layout.shapes[0].showlegend


def test_the_waterfall_adds_up_and_refuses_steps_that_do_not() -> None:
    figure = EXAMPLES["decision_waterfall"]()
    bar = figure.data[0]
    assert list(bar.y) == ["for: #1 a", "against: #2 b", "3 other prototypes", "= logit"]
    assert list(bar.base) == [0.0, 2.0, 1.5, 0.0] and list(bar.x) == [2.0, -0.5, -4.0, -2.5]
    with pytest.raises(ConfigError, match="add up"):
        de.decision_waterfall([("a", 1.0, "for")], 2.0, "t")
    with pytest.raises(ConfigError, match="kinds"):
        de.decision_waterfall([("a", 1.0, "maybe")], 1.0, "t")


def test_every_heatmap_gets_a_colour_scale() -> None:
    picture = RNG.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    scaled = with_colour_scale(picture, 0.123, 4.656)
    assert scaled.shape[0] == 64 and scaled.shape[1] > 48 + 8
    assert np.array_equal(scaled[:, :48], picture)
    bar = colour_bar(64)
    assert tuple(bar[0, 0]) != tuple(bar[-1, 0])  # high at the top, low at the bottom
    assert bar[0, 0, 0] > bar[0, 0, 2] and bar[-1, 0, 2] > bar[-1, 0, 0]  # JET: red on top, blue below
    signed = colour_bar(65, signed=True)
    assert tuple(signed[32, 0]) == (255, 255, 255)  # zero is white
    image = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    panels = evidence_panels(image, RNG.random((32, 32)), (4, 20, 4, 20), (32, 32))
    figure = explanation_figure(image, "t", [FigureRow(panels, "a", "for", (0.0, 2.0)),
                                             FigureRow(panels, "b", "against", (0.0, 1.0))],
                                waterfall=EXAMPLES["decision_waterfall"]())
    svg = figure_file(figure, "svg").decode()
    assert svg.count("similarity") >= 2 and "Evidence against" in svg and "3 other prototypes" in svg


def test_scale_ends_get_the_digits_they_need() -> None:
    from protoviz.viz.scale import scale_labels

    assert scale_labels(0.123, 4.656) == ("0.123", "4.66")
    low, high = scale_labels(1.1512, 1.1534)
    assert low != high and float(low) == pytest.approx(1.1512, abs=1e-4)
    assert scale_labels(2.0, 2.0) == ("2", "2")
