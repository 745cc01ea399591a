"""JET overlays and boxes as ProtoPNet draws them; the explanation figure renders to PNG."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from protoviz.errors import ConfigError
from protoviz.viz.figures import FigureRow, evidence_panels, explanation_figure, figure_png
from protoviz.viz.overlay import draw_box, jet_colormap, normalize_map, overlay_heatmap, scale_box


def test_overlay_matches_protopnet_formula() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    heat = rng.normal(size=(20, 30)).astype(np.float32)
    # ProtoPNet: rescale, applyColorMap(JET), BGR->RGB, 0.5 * img + 0.3 * heatmap (both in [0, 1])
    rescaled = (heat - heat.min()) / (heat.max() - heat.min())
    colour = cv2.applyColorMap(np.uint8(255 * rescaled), cv2.COLORMAP_JET)
    colour = np.float32(colour) / 255
    colour = colour[..., ::-1]
    expected = 0.5 * image.astype(np.float32) / 255 + 0.3 * colour
    np.testing.assert_allclose(overlay_heatmap(image, heat), np.round(expected * 255), atol=1)
    assert overlay_heatmap(image, heat).dtype == np.uint8


def test_jet_is_rgb_blue_low_red_high() -> None:
    colours = jet_colormap(np.array([[0.0, 1.0]]))
    assert colours[0, 0, 2] > 100 and colours[0, 0, 0] == 0  # low -> blue
    assert colours[0, 1, 0] > 100 and colours[0, 1, 2] == 0  # high -> red


def test_constant_map_and_shape_errors() -> None:
    assert normalize_map(np.full((3, 3), 7.0)).max() == 0
    with pytest.raises(ConfigError):
        overlay_heatmap(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4)))
    with pytest.raises(ConfigError):
        draw_box(np.zeros((4, 4), np.uint8), (0, 1, 0, 1))


def test_box_outline_is_drawn_at_the_end_exclusive_edges() -> None:
    drawn = draw_box(np.zeros((10, 10, 3), np.uint8), (2, 6, 3, 8), colour=(255, 0, 0), width=1)
    assert tuple(drawn[2, 3]) == (255, 0, 0) and tuple(drawn[5, 7]) == (255, 0, 0)
    assert tuple(drawn[4, 5]) == (0, 0, 0) and tuple(drawn[6, 8]) == (0, 0, 0)
    assert scale_box((2, 6, 3, 8), (10, 10), (20, 5)) == (4, 12, 1, 4)


def test_explanation_figure_renders_with_missing_sources() -> None:
    image = np.full((32, 32, 3), 128, np.uint8)
    heat = np.outer(np.arange(32), np.arange(32)).astype(np.float32)
    known = evidence_panels(image, heat, (20, 32, 20, 32), (32, 32), source_image=image,
                            source_box=(0, 16, 0, 16), patch=image[:8, :8])
    unknown = evidence_panels(image, heat, (20, 32, 20, 32), (32, 32))
    assert unknown.patch is None and unknown.source is None
    figure = explanation_figure(image, "title", [FigureRow(known, "a"), FigureRow(unknown, "b")], footer="sum")
    png = Image.open(io.BytesIO(figure_png(figure)))
    assert png.format == "PNG" and png.size[0] > 300


def test_viz_does_not_import_torch() -> None:
    """viz/ may import numpy, PIL, cv2, matplotlib, protoviz.errors and itself, never torch."""
    folder = Path(__file__).resolve().parents[2] / "protoviz" / "viz"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("torch"), f"{path.name} imports {name}"
                if name.startswith("protoviz"):
                    assert name.startswith(("protoviz.viz", "protoviz.errors")), f"{path.name} imports {name}"
