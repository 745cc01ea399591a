"""Figures of characteristic importance (hue, shape, texture, ...): Plotly bars and image strips (no torch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from protoviz.errors import ConfigError
from protoviz.viz.overlay import Box, draw_box

POSITIVE = "#1f77b4"  # the change lowered the similarity: the characteristic matters
NEGATIVE = "#d62728"  # the change raised the similarity


def importance_bars(values: Mapping[str, float], title: str, noise_floor: float | None = None,
                    value_label: str = "Δ similarity (original − modified)") -> go.Figure:
    """Horizontal bars sorted from most to least important (largest on top), negatives in red, each with
    its value (3 significant digits, never clipped: the axis leaves room), the noise floor (if given) as
    a grey band around zero named in the legend (so no label sits on the bars)."""
    items = [(k, float(v)) for k, v in values.items() if np.isfinite(float(v))]
    if not items:
        raise ConfigError(f"importance_bars needs at least one finite value, got {dict(values)}")
    items.sort(key=lambda kv: kv[1])  # plotly draws the first bar at the bottom
    names, numbers = [k for k, _ in items], [v for _, v in items]
    figure = go.Figure(go.Bar(
        x=numbers, y=names, orientation="h", marker_color=[POSITIVE if v >= 0 else NEGATIVE for v in numbers],
        text=[f"{v:.3g}" for v in numbers], textposition="outside", cliponaxis=False, showlegend=False,
        hovertemplate="%{y}: %{x:.4g}<extra></extra>"))
    floor = noise_floor if noise_floor is not None and noise_floor > 0 else 0.0
    low, high = min(0.0, *numbers, -floor), max(0.0, *numbers, floor)
    room = 0.2 * ((high - low) or 1.0)  # space for the outside labels on each side that has bars
    figure.update_xaxes(range=[low - (room if min(numbers) < 0 else 0.02 * room),
                               high + (room if max(numbers) > 0 else 0.02 * room)])
    if floor:
        figure.add_vrect(x0=-floor, x1=floor, fillcolor="grey", opacity=0.2, line_width=0,
                         name=f"noise floor (±{floor:.3g})", showlegend=True)
    figure.update_layout(title=title, xaxis_title=value_label, yaxis_title=None, height=340,
                         margin={"l": 10, "r": 20, "t": 50, "b": 40}, showlegend=bool(floor),
                         legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return figure


def importance_heatmap(importance: np.ndarray, characteristics: Sequence[str], prototype_labels: Sequence[str],
                       title: str = "Global importance per prototype") -> go.Figure:
    """(P, M) importance as a heatmap, one row per prototype."""
    matrix = np.asarray(importance, dtype=np.float64)
    if matrix.shape != (len(prototype_labels), len(characteristics)):
        raise ConfigError(f"importance {matrix.shape} does not match {len(prototype_labels)} prototypes x "
                          f"{len(characteristics)} characteristics")
    limit = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 1.0
    figure = go.Figure(go.Heatmap(z=matrix, x=list(characteristics), y=list(prototype_labels), colorscale="RdBu",
                                  zmid=0.0, zmin=-limit, zmax=limit, colorbar={"title": "G"}))
    figure.update_layout(title=title, height=max(300, 18 * len(prototype_labels) + 120),
                         yaxis={"autorange": "reversed"}, margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return figure


def _caption(tile: np.ndarray, text: str, band: int = 16) -> np.ndarray:
    canvas = Image.new("RGB", (tile.shape[1], tile.shape[0] + band), (255, 255, 255))
    canvas.paste(Image.fromarray(tile), (0, band))
    ImageDraw.Draw(canvas).text((2, 2), text, fill=(0, 0, 0))
    return np.asarray(canvas)


def modified_strip(original: np.ndarray, modified: Sequence[np.ndarray], names: Sequence[str],
                   box: Box | None = None, deltas: Sequence[float] | None = None, tile: int = 160,
                   gap: int = 4) -> np.ndarray:
    """The original and each modified image (H, W, 3) uint8 side by side, each captioned (with its delta),
    the prototype's box (y0, y1, x0, x1) drawn on all; -> one (h, w, 3) uint8 picture."""
    if len(modified) != len(names) or (deltas is not None and len(deltas) != len(names)):
        raise ConfigError(f"modified_strip: {len(modified)} images, {len(names)} names, "
                          f"{None if deltas is None else len(deltas)} deltas")
    pictures = [original, *modified]
    # the default PIL font has no Greek letters, so "delta" is spelled out
    captions = ["original"] + [n if deltas is None else f"{n}: delta {d:+.3g}" for n, d in zip(names, deltas or names)]
    tiles = []
    for picture, caption in zip(pictures, captions):
        shown = draw_box(picture, box) if box is not None else np.asarray(picture)
        height, width = shown.shape[:2]
        scale = tile / max(height, width)
        resized = Image.fromarray(shown).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                                Image.Resampling.NEAREST)
        tiles.append(_caption(np.asarray(resized), caption))
    height = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, t in enumerate(padded):
        parts.extend([spacer, t] if i else [t])
    return np.concatenate(parts, axis=1)
