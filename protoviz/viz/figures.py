"""Figures of the "this looks like that" explanation, from numpy arrays (no torch here).

:func:`evidence_panels` makes the three pictures of one prototype row; :func:`explanation_figure`
lays a whole explanation out as one downloadable matplotlib figure (built without pyplot, so it is
safe in the dashboard's threads).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from protoviz.viz.overlay import Box, draw_box, overlay_heatmap, scale_box


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
    """One prototype row of :func:`explanation_figure`."""

    panels: EvidencePanels
    text: str


def explanation_figure(image: np.ndarray, title: str, rows: Sequence[FigureRow], footer: str = "") -> Figure:
    """The image and its title on top, then one row per prototype: overlay | patch | source | text."""
    count = len(rows)
    figure = Figure(figsize=(10, 2.2 * (count + 1)), dpi=100, layout="constrained")
    grid = figure.add_gridspec(count + 1, 4, width_ratios=(1, 1, 1, 1.6))
    head = figure.add_subplot(grid[0, 0])
    _show(head, image)
    text = figure.add_subplot(grid[0, 1:])
    text.axis("off")
    text.text(0, 0.5, title, va="center", fontsize=11, family="monospace")
    for i, row in enumerate(rows, start=1):
        for column, (picture, label) in enumerate(((row.panels.overlay, "this (image)"),
                                                   (row.panels.patch, "looks like (prototype)"),
                                                   (row.panels.source, "prototype's source"))):
            axes = figure.add_subplot(grid[i, column])
            _show(axes, picture)
            if i == 1:
                axes.set_title(label, fontsize=9)
        note = figure.add_subplot(grid[i, 3])
        note.axis("off")
        note.text(0, 0.5, row.text, va="center", fontsize=9, family="monospace")
    if footer:
        figure.supxlabel(footer, fontsize=9, family="monospace")
    return figure


def figure_png(figure: Figure) -> bytes:
    """Render a matplotlib figure to PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _show(axes: Axes, picture: np.ndarray | None) -> None:
    axes.axis("off")
    if picture is None:
        axes.text(0.5, 0.5, "unknown", ha="center", va="center", color="grey")
    else:
        axes.imshow(picture)
