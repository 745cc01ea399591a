"""Figures of the "this looks like that" explanation, from numpy arrays (no torch here).

:func:`evidence_panels` makes the three pictures of one prototype row; :func:`explanation_figure`
lays a whole explanation out as one downloadable matplotlib figure (built without pyplot, so it is
safe in the dashboard's threads): evidence for and against with colour scales, and the waterfall of
the class score. Save it with :func:`protoviz.viz.export.figure_file` as PNG, SVG or PDF.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from protoviz.viz.overlay import Box, draw_box, overlay_heatmap, scale_box
from protoviz.viz.plotly_mpl import draw_plotly


@dataclass(frozen=True)
class EvidencePanels:
    """Pictures of one prototype row: the image with the prototype's heatmap and box, the
    prototype's source patch, and its source image with the box (None where unknown)."""

    overlay: np.ndarray
    patch: np.ndarray | None
    source: np.ndarray | None


def evidence_panels(image: np.ndarray, heatmap: np.ndarray, box: Box, input_size: tuple[int, int],
                    source_image: np.ndarray | None = None, source_box: Box | None = None,
                    patch: np.ndarray | None = None) -> EvidencePanels:
    """image (H, W, 3) uint8 and heatmap (H, W) -> :class:`EvidencePanels`.

    ``source_box`` is in model-input pixels ``input_size`` (H, W); it is scaled to the thumbnail.
    """
    overlay = draw_box(overlay_heatmap(image, heatmap), box)
    source = None
    if source_image is not None:
        source = np.ascontiguousarray(source_image, dtype=np.uint8)
        if source_box is not None:
            source = draw_box(source, scale_box(source_box, input_size, source.shape[:2]))
    return EvidencePanels(overlay, None if patch is None else np.ascontiguousarray(patch, np.uint8), source)


@dataclass(frozen=True)
class FigureRow:
    """One prototype row of :func:`explanation_figure`: its pictures, its words, whether it is evidence
    'for' or 'against', and the (low, high) similarity its heatmap colours run between (for the scale)."""

    panels: EvidencePanels
    text: str
    side: str = "for"
    heat_range: tuple[float, float] | None = None


SIDE_TITLES = {"for": "Evidence for", "against": "Evidence against"}


def explanation_figure(image: np.ndarray, title: str, rows: Sequence[FigureRow], footer: str = "",
                       waterfall: go.Figure | None = None, footer_width: int = 110) -> Figure:
    """The image and its title on top; one row per prototype (this | looks like | source | numbers), each
    heatmap with its colour scale, grouped into evidence for and against; then the waterfall of the whole
    class score (a plotly figure redrawn here), and the footer in wrapped lines. Vector-ready (SVG / PDF)."""
    steps = len(waterfall.data[0].y) if waterfall is not None and waterfall.data else 0
    heights = [2.0] + [1.9] * len(rows) + ([max(1.4, 0.3 * steps + 0.8)] if waterfall is not None else [])
    figure = Figure(figsize=(10, sum(heights) + 0.4), dpi=100, layout="constrained")
    grid = figure.add_gridspec(len(heights), 4, width_ratios=(1, 1, 1, 1.7), height_ratios=heights)
    head = figure.add_subplot(grid[0, 0])
    _show(head, image)
    text = figure.add_subplot(grid[0, 1:])
    text.axis("off")
    text.text(0, 0.5, title, va="center", fontsize=10, family="monospace")
    previous = None
    for i, row in enumerate(rows, start=1):
        pictures = ((row.panels.overlay, "this (image)"), (row.panels.patch, "looks like (prototype)"),
                    (row.panels.source, "prototype's source"))
        for column, (picture, label) in enumerate(pictures):
            axes = figure.add_subplot(grid[i, column])
            _show(axes, picture)
            if row.side != previous:
                axes.set_title(label, fontsize=9)
            if column == 0:
                axes.set_ylabel(SIDE_TITLES.get(row.side, row.side), fontsize=9)
                axes.axis("on")
                axes.set_xticks([])
                axes.set_yticks([])
                if row.heat_range is not None:
                    _colour_scale(figure, axes, row.heat_range)
        note = figure.add_subplot(grid[i, 3])
        note.axis("off")
        note.text(0, 0.5, row.text, va="center", fontsize=9, family="monospace")
        previous = row.side
    if waterfall is not None:
        draw_plotly(figure.add_subplot(grid[len(heights) - 1, :]), waterfall)
    if footer:
        figure.supxlabel(textwrap.fill(footer, footer_width), fontsize=8, family="monospace", ha="center")
    return figure


def _colour_scale(figure: Figure, axes: Axes, heat_range: tuple[float, float]) -> None:
    low, high = heat_range
    scale = ScalarMappable(Normalize(low, high if high > low else low + 1e-9), cmap="jet")
    bar = figure.colorbar(scale, ax=axes, fraction=0.08, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    bar.set_label("similarity", fontsize=7)


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes (other formats: :func:`protoviz.viz.export.figure_file`)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _show(axes: Axes, picture: np.ndarray | None) -> None:
    axes.axis("off")
    if picture is None:
        axes.text(0.5, 0.5, "unknown", ha="center", va="center", color="grey")
    else:
        axes.imshow(picture)
