"""Prototype gallery and card pictures: tiles, patch strips and bar charts (numpy/PIL/plotly, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from protoviz.errors import ConfigError

TILE_BACKGROUND: tuple[int, int, int] = (235, 235, 235)


def placeholder_tile(size: int, text: str = "no source recorded") -> np.ndarray:
    """A grey (size, size, 3) uint8 tile with ``text`` written on it, for prototypes without a picture."""
    canvas = Image.new("RGB", (size, size), TILE_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    words, lines, line = text.split(), [], ""
    for word in words:  # greedy wrap to the tile width
        trial = f"{line} {word}".strip()
        if draw.textlength(trial) > size - 6 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    top = max(2, (size - 12 * len(lines)) // 2)
    for i, row in enumerate(lines):
        draw.text((3, top + 12 * i), row, fill=(90, 90, 90))
    return np.asarray(canvas)


def fit_tile(image: np.ndarray | None, size: int, text: str = "no source recorded") -> np.ndarray:
    """RGB image (h, w, 3) uint8 scaled so its longer side is ``size`` and letterboxed into a
    (size, size, 3) tile; a placeholder tile when None."""
    if image is None:
        return placeholder_tile(size, text)
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ConfigError(f"expected an RGB image (h, w, 3) uint8, got {array.shape} {array.dtype}")
    height, width = array.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    # small patches are enlarged pixel by pixel (nothing invented), large pictures shrunk smoothly
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BICUBIC
    picture = Image.fromarray(array).resize(target, method)
    canvas = Image.new("RGB", (size, size), TILE_BACKGROUND)
    canvas.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return np.asarray(canvas)


def tile_row(tiles: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Equal-height RGB tiles (h, w_i, 3) side by side with ``gap`` pixels of white between them."""
    if not tiles:
        raise ConfigError("tile_row needs at least one tile")
    height = tiles[0].shape[0]
    if any(t.shape[0] != height for t in tiles):
        raise ConfigError(f"tiles must share a height, got {[t.shape[0] for t in tiles]}")
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        parts.extend([spacer, tile] if i else [tile])
    return np.concatenate(parts, axis=1)


def tile_grid(tiles: Sequence[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Same-size tiles (s, s, 3) in rows of ``columns`` (the last row padded with white)."""
    if not tiles or columns < 1:
        raise ConfigError("tile_grid needs at least one tile and columns >= 1")
    blank = np.full_like(tiles[0], 255)
    rows = []
    for start in range(0, len(tiles), columns):
        row = list(tiles[start:start + columns])
        row += [blank] * (columns - len(row))
        rows.append(tile_row(row, gap))
    spacer = np.full((gap, rows[0].shape[1], 3), 255, dtype=np.uint8)
    stacked: list[np.ndarray] = []
    for i, strip in enumerate(rows):
        stacked.extend([spacer, strip] if i else [strip])
    return np.concatenate(stacked, axis=0)


def class_weight_bars(weights: np.ndarray, class_names: Sequence[str], own_class: int | None = None,
                      title: str = "last-layer weight per class") -> go.Figure:
    """Bar chart of one prototype's class weights (C,); its own class drawn in a darker colour."""
    values = np.asarray(weights, dtype=float).ravel()
    if values.shape[0] != len(class_names):
        raise ConfigError(f"{values.shape[0]} weights for {len(class_names)} classes")
    colours = ["#1f4e79" if c == own_class else "#7fa7d1" for c in range(len(values))]
    figure = go.Figure(go.Bar(x=list(class_names), y=values, marker_color=colours,
                              hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    figure.update_layout(title=title, height=260, margin={"l": 40, "r": 10, "t": 40, "b": 60}, yaxis_title="weight")
    return figure


def score_bars(scores: dict[str, float], title: str, value_range: tuple[float, float] | None = None) -> go.Figure:
    """Horizontal bars of named scores (e.g. colour/shape/texture importance, consistency, stability)."""
    names = list(scores)
    figure = go.Figure(go.Bar(x=[float(scores[n]) for n in names], y=names, orientation="h",
                              marker_color="#5b8c5a", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    figure.update_layout(title=title, height=60 + 28 * len(names), margin={"l": 90, "r": 10, "t": 40, "b": 30})
    if value_range is not None:
        figure.update_xaxes(range=list(value_range))
    return figure


def patch_strip(thumbnails: np.ndarray, values: np.ndarray, tile: int = 72) -> tuple[np.ndarray, list[str]]:
    """Top-k patch crops (k, t, t, 3) uint8 and similarities (k,) -> one strip image and per-tile captions.

    Slots with a non-finite value (fewer candidates than k) are drawn as empty placeholders.
    """
    tiles, captions = [], []
    for thumb, value in zip(thumbnails, np.asarray(values, dtype=float)):
        filled = bool(np.isfinite(value))
        tiles.append(fit_tile(thumb if filled else None, tile, "no patch"))
        captions.append(f"{value:.3f}" if filled else "-")
    return tile_row(tiles), captions
