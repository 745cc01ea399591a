"""Figures of the heatmap trust checks (plotly and numpy; no torch).

Inputs are plain numbers and arrays, as :class:`protoviz.heatmaps.trust_report.TrustReport` holds them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from protoviz.errors import ConfigError
from protoviz.viz.overlay import jet_colormap, overlay_heatmap

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def randomisation_figure(stage_labels: Sequence[str], mean_rho: Mapping[str, Sequence[float]],
                         threshold: float) -> go.Figure:
    """Mean Spearman rho per randomisation stage (x) for each method (one line each), with the pass line."""
    figure = go.Figure()
    for i, (method, values) in enumerate(mean_rho.items()):
        figure.add_trace(go.Scatter(x=list(stage_labels), y=list(values), mode="lines+markers", name=method,
                                    line={"color": PALETTE[i % len(PALETTE)]}))
    figure.add_hline(y=threshold, line_dash="dash", line_color="grey",
                     annotation_text=f"pass below {threshold:g}", annotation_position="top left")
    figure.update_layout(title="Model-parameter randomisation: does the map change when the weights do?",
                         xaxis_title="layers re-randomised (from the output side)",
                         yaxis_title="Spearman rho, trained vs randomised", yaxis_range=[-1.05, 1.05],
                         height=380, margin={"t": 60, "b": 40})
    return figure


def curves_figure(fractions: Sequence[float], deletion: Mapping[str, np.ndarray],
                  insertion: Mapping[str, np.ndarray]) -> go.Figure:
    """Mean deletion and insertion curves per method, side by side; curves (N, T+1) are averaged over N."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Deletion (lower area = better)",
                                                           "Insertion (higher area = better)"))
    for col, curves in ((1, deletion), (2, insertion)):
        for i, (method, values) in enumerate(curves.items()):
            with warnings.catch_warnings():  # an all-NaN column (score never changes) stays NaN: a gap
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(np.asarray(values, dtype=np.float64).reshape(-1, len(fractions)), axis=0)
            figure.add_trace(go.Scatter(x=list(fractions), y=mean.tolist(), mode="lines", name=method,
                                        legendgroup=method, showlegend=col == 1,
                                        line={"color": PALETTE[i % len(PALETTE)]}), row=1, col=col)
        figure.update_xaxes(title_text="fraction of pixels changed (heatmap order)", row=1, col=col)
    figure.update_yaxes(title_text="score / original score", row=1, col=1)
    figure.update_layout(height=380, margin={"t": 60, "b": 40})
    return figure


def relevance_figure(methods: Sequence[str], part_share: Sequence[float | None], part_area: float | None,
                     object_share: Sequence[float | None], object_area: float | None) -> go.Figure:
    """Bars: share of heatmap mass in the prototype's part and in the object, with the area (chance) lines."""
    figure = go.Figure()
    figure.add_trace(go.Bar(x=list(methods), y=[v if v is not None else np.nan for v in part_share],
                            name="mass in the prototype's part"))
    figure.add_trace(go.Bar(x=list(methods), y=[v if v is not None else np.nan for v in object_share],
                            name="mass in the object"))
    for value, label in ((part_area, "part area (uniform map)"), (object_area, "object area (uniform map)")):
        if value is not None:
            figure.add_hline(y=value, line_dash="dot", annotation_text=label, annotation_position="top right")
    figure.update_layout(barmode="group", title="Relevance against the ground-truth masks", yaxis_range=[0, 1],
                         yaxis_title="share of heatmap mass", height=380, margin={"t": 60, "b": 40})
    return figure


def signed_colormap(relevance: np.ndarray) -> np.ndarray:
    """(H, W) signed relevance -> (H, W, 3) uint8: red = positive, blue = negative, white = 0."""
    values = np.asarray(relevance, dtype=np.float64)
    scale = float(np.nanmax(np.abs(values))) or 1.0
    v = np.clip(values / scale, -1, 1)
    red = np.where(v < 0, 1 + v, 1.0)
    blue = np.where(v > 0, 1 - v, 1.0)
    green = 1 - np.abs(v)
    return np.round(255 * np.stack([red, green, blue], axis=-1)).astype(np.uint8)


def method_panels(image: np.ndarray, maps: Mapping[str, np.ndarray],
                  signed: Mapping[str, bool]) -> dict[str, np.ndarray]:
    """One picture (H, W, 3) uint8 per method: JET overlay on ``image``, or a red/blue map for signed maps."""
    panels = {}
    for method, heatmap in maps.items():
        if np.asarray(heatmap).shape != image.shape[:2]:
            raise ConfigError(f"map of {method!r} has shape {np.asarray(heatmap).shape}, image {image.shape[:2]}")
        if signed.get(method, False):
            panels[method] = np.round(0.35 * image + 0.65 * signed_colormap(heatmap)).astype(np.uint8)
        else:
            panels[method] = overlay_heatmap(image, heatmap)
    return panels


def colour_key() -> np.ndarray:
    """(16, 256, 3) uint8 JET strip from low to high, for a legend under the panels."""
    return jet_colormap(np.tile(np.linspace(0, 1, 256), (16, 1)))
