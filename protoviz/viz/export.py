"""Every figure as a file for a paper: PNG at a chosen DPI, SVG and PDF, or standalone HTML that opens offline.

A figure is a plotly chart (redrawn with matplotlib for PNG / SVG / PDF, see
:mod:`protoviz.viz.plotly_mpl`), a matplotlib Figure, or an RGB picture (H, W, 3) uint8 (a heatmap
overlay, a gallery): pictures keep their pixels, and the DPI sets their printed size. No torch here.
"""

from __future__ import annotations

import io
from typing import TypeAlias

import matplotlib
import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure
from PIL import Image

from protoviz.errors import ConfigError
from protoviz.viz.plotly_mpl import plotly_to_matplotlib

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
MIME_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf",
                              "html": "text/html"}
DEFAULT_DPI = 200
DPI_RANGE = (50, 600)
REPRODUCIBLE_SALT = "protoviz"  # stable SVG element ids: the same figure gives the same file

AnyFigure: TypeAlias = go.Figure | Figure | np.ndarray


def figure_file(figure: AnyFigure, fmt: str, dpi: int = DEFAULT_DPI) -> bytes:
    """The bytes of ``figure`` as a ``fmt`` file ('png', 'svg', 'pdf', or 'html' for plotly charts)."""
    fmt = fmt.lower()
    if fmt == "html":
        if not isinstance(figure, go.Figure):
            raise ConfigError("only interactive (plotly) charts export as HTML")
        return html_file(figure)
    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"figure format must be one of {FIGURE_FORMATS} or 'html', got {fmt!r}")
    if not DPI_RANGE[0] <= int(dpi) <= DPI_RANGE[1]:
        raise ConfigError(f"dpi must be in [{DPI_RANGE[0]}, {DPI_RANGE[1]}], got {dpi}")
    if isinstance(figure, np.ndarray):
        return _picture_file(figure, fmt, int(dpi))
    drawn = plotly_to_matplotlib(figure) if isinstance(figure, go.Figure) else figure
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": REPRODUCIBLE_SALT}):
        drawn.savefig(buffer, format=fmt, dpi=int(dpi), bbox_inches="tight", pad_inches=0.05,
                      metadata=_metadata(fmt))
    return buffer.getvalue()


def html_file(figure: go.Figure) -> bytes:
    """A standalone HTML page of a plotly chart with plotly.js inlined: it opens without a network."""
    return figure.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False}).encode()


def _metadata(fmt: str) -> dict[str, str | None]:
    """Reproducible files: no creation date; the tool that made them."""
    if fmt == "svg":
        return {"Date": None, "Creator": "protoviz"}
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "protoviz"}
    return {"Software": "protoviz"}


def _picture_file(picture: np.ndarray, fmt: str, dpi: int) -> bytes:
    array = np.asarray(picture)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ConfigError(f"expected an RGB picture (H, W, 3) uint8, got {array.shape} {array.dtype}")
    buffer = io.BytesIO()
    if fmt == "png":  # the pixels as they are; the DPI sets the printed size
        Image.fromarray(array).save(buffer, format="PNG", dpi=(dpi, dpi))
        return buffer.getvalue()
    height, width = array.shape[:2]
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.axis("off")
    axes.imshow(array, interpolation="nearest")
    with matplotlib.rc_context({"svg.hashsalt": REPRODUCIBLE_SALT}):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    return buffer.getvalue()
