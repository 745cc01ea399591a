"""Figures of the Compare page and report: correlation matrix, match strengths, latent scatter,
top-class bars (plotly; numpy in, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from protoviz.errors import ConfigError

PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                            "#7f7f7f", "#bcbd22", "#17becf")


def class_colour(index: int) -> str:
    """A colour per class index (cycling the palette); grey for -1 (no class)."""
    return "#999999" if index < 0 else PALETTE[index % len(PALETTE)]


def correlation_heatmap(correlation: np.ndarray, name_a: str, name_b: str,
                        pairs: Sequence[tuple[int, int]] = ()) -> go.Figure:
    """Prototype-profile correlation (P, Q) between two models, assigned pairs marked with circles."""
    corr = np.asarray(correlation, dtype=float)
    if corr.ndim != 2:
        raise ConfigError(f"expected a (P, Q) correlation matrix, got shape {corr.shape}")
    figure = go.Figure(go.Heatmap(z=corr, zmin=-1, zmax=1, colorscale="RdBu_r", colorbar={"title": "r"},
                                  hovertemplate=f"{name_a} #%{{y}} / {name_b} #%{{x}}: r=%{{z:.3f}}<extra></extra>"))
    if pairs:
        a, b = zip(*pairs)
        figure.add_trace(go.Scatter(x=list(b), y=list(a), mode="markers", name="matched",
                                    marker={"symbol": "circle-open", "color": "black", "size": 8}))
    figure.update_layout(title=f"profile correlation: {name_a} (rows) vs {name_b} (columns)", height=420,
                         xaxis_title=f"{name_b} prototype", yaxis_title=f"{name_a} prototype",
                         margin={"l": 60, "r": 10, "t": 40, "b": 50})
    figure.update_yaxes(autorange="reversed")
    return figure


def match_strength_bars(labels: Sequence[str], strengths: Sequence[float], threshold: float) -> go.Figure:
    """Correlation of each assigned pair (labels like 'A#3 - B#7'), with the threshold line."""
    values = [float(s) for s in strengths]
    colours = ["#2ca02c" if v >= threshold else "#bbbbbb" for v in values]
    figure = go.Figure(go.Bar(x=list(labels), y=values, marker_color=colours,
                              hovertemplate="%{x}: r=%{y:.3f}<extra></extra>"))
    figure.add_hline(y=threshold, line_dash="dash", annotation_text=f"threshold {threshold:g}")
    figure.update_layout(title="match strength of assigned pairs", height=300, yaxis={"range": [-1, 1.05]},
                         xaxis={"type": "category", "title": "prototype pair (reference-other)"},
                         margin={"l": 40, "r": 10, "t": 40, "b": 80})
    return figure


def latent_scatter(prototype_xy: np.ndarray, prototype_class: np.ndarray, patch_xy: np.ndarray,
                   patch_filled: np.ndarray, class_names: Sequence[str], explained: np.ndarray,
                   patch_values: np.ndarray | None = None, title: str = "latent space (PCA)") -> go.Figure:
    """Prototypes (P, 2) as large markers and their top-k patches (P, k, 2) as small dots, coloured by
    class. customdata is (prototype, rank) with rank -1 for prototypes, so a selection names a patch."""
    protos = np.asarray(prototype_xy, dtype=float)
    patches = np.asarray(patch_xy, dtype=float)
    filled = np.asarray(patch_filled, dtype=bool)
    classes = np.asarray(prototype_class, dtype=int)
    figure = go.Figure()
    for c in sorted(set(classes.tolist())):
        name = class_names[c] if c >= 0 else "no class"
        owners = np.flatnonzero(classes == c)
        rows, ranks = np.nonzero(filled[owners])
        proto_ids = owners[rows]
        sim = patch_values[proto_ids, ranks] if patch_values is not None else np.full(len(rows), np.nan)
        figure.add_trace(go.Scatter(
            x=patches[proto_ids, ranks, 0], y=patches[proto_ids, ranks, 1], mode="markers", legendgroup=name,
            name=f"{name} patches", marker={"size": 6, "color": class_colour(c), "opacity": 0.45},
            customdata=np.stack([proto_ids, ranks, sim], axis=1),
            hovertemplate="patch %{customdata[1]} of prototype %{customdata[0]}<br>sim=%{customdata[2]:.3f}"
                          "<extra></extra>"))
        figure.add_trace(go.Scatter(
            x=protos[owners, 0], y=protos[owners, 1], mode="markers", legendgroup=name, name=f"{name} prototypes",
            marker={"size": 13, "color": class_colour(c), "symbol": "star", "line": {"width": 1, "color": "black"}},
            customdata=np.stack([owners, np.full(len(owners), -1), np.full(len(owners), np.nan)], axis=1),
            hovertemplate="prototype %{customdata[0]}<extra></extra>"))
    ratio = np.asarray(explained, dtype=float)
    figure.update_layout(title=title, height=480, margin={"l": 50, "r": 10, "t": 40, "b": 50}, clickmode="event+select",
                         xaxis_title=f"PC1 ({100 * ratio[0]:.1f}% var.)",
                         yaxis_title=f"PC2 ({100 * ratio[1]:.1f}% var.)")
    return figure


def top_classes_bars(names: Sequence[str], probabilities: Sequence[float], title: str) -> go.Figure:
    """Horizontal bars of a prediction's top classes (best on top)."""
    figure = go.Figure(go.Bar(x=[float(p) for p in probabilities], y=list(names), orientation="h",
                              marker_color="#1f77b4", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    figure.update_layout(title=title, height=80 + 26 * len(names), xaxis={"range": [0, 1]},
                         margin={"l": 110, "r": 10, "t": 40, "b": 30})
    figure.update_yaxes(autorange="reversed")
    return figure
