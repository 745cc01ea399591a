"""Figures of the Evaluate page: part frequencies, dominant parts, per-prototype part matrix and
deletion/insertion curves (numpy + plotly, no torch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from protoviz.errors import ConfigError
from protoviz.viz.export import html_file


def best_frequency_histogram(best: Mapping[str, np.ndarray], mu: float, bins: int = 20) -> go.Figure:
    """Histogram of each prototype's best-part frequency max_k f_p[k], one trace per model, with the
    consistency threshold mu as a vertical line (prototypes right of it are consistent)."""
    if bins < 1:
        raise ConfigError(f"bins must be >= 1, got {bins}")
    figure = go.Figure()
    for name, values in best.items():
        figure.add_trace(go.Histogram(x=np.asarray(values, dtype=float), name=name, opacity=0.7,
                                      xbins={"start": 0.0, "end": 1.0 + 1e-9, "size": 1.0 / bins}))
    figure.add_vline(x=mu, line_dash="dash", annotation_text=f"mu = {mu:g}", annotation_position="top")
    figure.update_layout(barmode="overlay", title="Best-part frequency per prototype",
                         xaxis_title="max_k f_p[k] (share of the class's images with that part in the region)",
                         yaxis_title="prototypes", height=360, margin={"t": 50, "b": 40})
    return figure


def dominant_part_bars(dominant: Mapping[str, Sequence[str]], part_names: Sequence[str]) -> go.Figure:
    """Number of prototypes whose most frequent part is each part ('-' = never hit a part), per model."""
    labels = [*part_names, "-"]
    figure = go.Figure()
    for name, parts in dominant.items():
        counts = [sum(1 for p in parts if p == label) for label in labels]
        figure.add_trace(go.Bar(x=labels, y=counts, name=name))
    figure.update_layout(barmode="group", title="Dominant part of each prototype", xaxis_title="part",
                         yaxis_title="prototypes", height=360, margin={"t": 50, "b": 40})
    return figure


def part_frequency_heatmap(frequencies: np.ndarray, part_names: Sequence[str], prototype_labels: Sequence[str],
                           title: str) -> go.Figure:
    """(P, K) frequencies f_p[k] as a heatmap, one row per prototype."""
    values = np.asarray(frequencies, dtype=float)
    if values.ndim != 2 or values.shape != (len(prototype_labels), len(part_names)):
        raise ConfigError(f"expected frequencies of shape ({len(prototype_labels)}, {len(part_names)}), "
                          f"got {values.shape}")
    figure = go.Figure(go.Heatmap(z=values, x=list(part_names), y=list(prototype_labels), zmin=0.0, zmax=1.0,
                                  colorscale="Viridis", colorbar={"title": "f"}))
    figure.update_layout(title=title, xaxis_title="part", yaxis_title="prototype", yaxis_autorange="reversed",
                         height=max(300, min(1200, 14 * len(prototype_labels) + 120)), margin={"t": 50, "b": 40})
    return figure


def deletion_curves_figure(fractions: Sequence[float], deletion: Mapping[str, np.ndarray],
                           insertion: Mapping[str, np.ndarray]) -> go.Figure:
    """Mean deletion (solid) and insertion (dotted) curves of prototype similarity, per model."""
    figure = go.Figure()
    for name, curve in deletion.items():
        figure.add_trace(go.Scatter(x=list(fractions), y=np.asarray(curve, float), name=f"{name} deletion",
                                    mode="lines+markers"))
    for name, curve in insertion.items():
        figure.add_trace(go.Scatter(x=list(fractions), y=np.asarray(curve, float), name=f"{name} insertion",
                                    mode="lines+markers", line={"dash": "dot"}))
    figure.update_layout(title="Prototype similarity as pixels are deleted / inserted in heatmap order",
                         xaxis_title="fraction of pixels", yaxis_title="mean pooled similarity", height=360,
                         margin={"t": 50, "b": 40})
    return figure


def figure_html(figure: go.Figure) -> bytes:
    """A standalone HTML file of the figure (plotly.js embedded, opens offline), for download."""
    return html_file(figure)
