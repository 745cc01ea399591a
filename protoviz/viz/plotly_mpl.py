"""Redraw a plotly figure with matplotlib, so that every dashboard chart exports as vector SVG / PDF.

Covers what protoviz's charts use: bar (vertical, horizontal, grouped, overlaid, text labels), scatter
(lines, markers, dashes, symbols), heatmap (named or listed colour scales, colour bar), histogram,
subplot grids (``make_subplots``), hline / vline / vrect shapes with their annotations, subplot
titles, axis titles, ranges and reversed axes. Plotly's hover text is dropped (paper has no hover).
Built without pyplot (safe in the dashboard's threads). No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap, to_rgba
from matplotlib.figure import Figure

from protoviz.errors import ConfigError

PX_PER_INCH = 100.0
DEFAULT_SIZE_PX = (800, 450)
DASHES = {"dash": "--", "dot": ":", "dashdot": "-.", "longdash": "--", "solid": "-"}
SYMBOLS = {"circle": "o", "square": "s", "diamond": "D", "star": "*", "x": "x", "cross": "P", "triangle-up": "^",
           "triangle-down": "v"}
PALETTE = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880")  # plotly's


def plotly_to_matplotlib(figure: go.Figure) -> Figure:
    """A matplotlib Figure drawing the same traces, axes, shapes and titles as the plotly ``figure``."""
    layout = figure.layout
    width = (layout.width or DEFAULT_SIZE_PX[0]) / PX_PER_INCH
    height = max(2.4, (layout.height or DEFAULT_SIZE_PX[1]) / PX_PER_INCH)
    out = Figure(figsize=(width, height), layout="constrained")
    axes = _axes_grid(out, figure)
    _draw(out, axes, figure)
    if layout.title.text:
        out.suptitle(layout.title.text, fontsize=11)
    handles, labels = [], []
    for ax in axes.values():
        for handle, text in zip(*ax.get_legend_handles_labels()):
            if text not in labels:
                handles.append(handle)
                labels.append(text)
    if labels and (layout.showlegend or (layout.showlegend is None and len(labels) > 1)):
        out.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8, frameon=False)
    return out


def draw_plotly(ax: Axes, figure: go.Figure) -> None:
    """Draw a one-panel plotly ``figure`` into an existing matplotlib ``ax`` (its title becomes the axes title)."""
    pairs = list(dict.fromkeys((t.xaxis or "x", t.yaxis or "y") for t in figure.data)) or [("x", "y")]
    if len(pairs) != 1:
        raise ConfigError(f"draw_plotly draws one panel, the figure has {len(pairs)}")
    figure_of_ax = ax.get_figure()
    if not isinstance(figure_of_ax, Figure):
        raise ConfigError("the axes must belong to a matplotlib Figure")
    _draw(figure_of_ax, {pairs[0]: ax}, figure)
    if figure.layout.title.text:
        ax.set_title(figure.layout.title.text, fontsize=10)


def _draw(out: Figure, axes: dict[tuple[str, str], Axes], figure: go.Figure) -> None:
    layout = figure.layout
    overlay = layout.barmode in ("overlay", "stack")
    bars = [t for t in figure.data if t.type == "bar"]
    for i, trace in enumerate(figure.data):
        ax = axes[(trace.xaxis or "x", trace.yaxis or "y")]
        colour = PALETTE[i % len(PALETTE)]
        if trace.type == "bar":
            _bar(ax, trace, colour, bars.index(trace), 1 if overlay else len(bars))
        elif trace.type == "scatter":
            _scatter(ax, trace, colour)
        elif trace.type == "heatmap":
            _heatmap(out, ax, trace)
        elif trace.type == "histogram":
            _histogram(ax, trace, colour)
        else:
            raise ConfigError(f"cannot redraw a plotly {trace.type!r} trace with matplotlib")
    for key, ax in axes.items():
        _style_axes(ax, layout, key)
    _shapes(axes, layout)
    _annotations(axes, layout)


def _domain(axis: Any) -> tuple[float, float]:
    return tuple(axis.domain) if axis is not None and axis.domain else (0.0, 1.0)  # type: ignore[return-value]


def _axes_grid(out: Figure, figure: go.Figure) -> dict[tuple[str, str], Axes]:
    """One matplotlib Axes per (xaxis, yaxis) pair the traces use, laid out on the plotly domains' grid."""
    pairs = list(dict.fromkeys((t.xaxis or "x", t.yaxis or "y") for t in figure.data)) or [("x", "y")]
    layout = figure.layout
    xdomains = {p: _domain(layout[_axis_name(p[0], "x")]) for p in pairs}
    ydomains = {p: _domain(layout[_axis_name(p[1], "y")]) for p in pairs}
    columns = sorted(set(xdomains.values()))
    rows = sorted(set(ydomains.values()), reverse=True)  # plotly's y domains grow upwards
    grid = out.add_gridspec(len(rows), len(columns))
    return {p: out.add_subplot(grid[rows.index(ydomains[p]), columns.index(xdomains[p])]) for p in pairs}


def _axis_name(ref: str, letter: str) -> str:
    """'x2' -> 'xaxis2', 'y' -> 'yaxis'."""
    return f"{letter}axis{ref[1:]}"


def _colours(value: Any, count: int, fallback: str) -> list[Any]:
    if value is None:
        return [fallback] * count
    if isinstance(value, str):
        return [_colour(value)] * count
    return [_colour(v) for v in value]


def _colour(value: str) -> Any:
    text = str(value).strip()
    if text.startswith("rgb"):
        numbers = [float(v) for v in text[text.index("(") + 1:text.index(")")].split(",")]
        rgb = [v / 255.0 for v in numbers[:3]]
        return (*rgb, numbers[3] if len(numbers) > 3 else 1.0)
    return to_rgba(text)


def _bar(ax: Axes, trace: Any, colour: str, index: int, groups: int) -> None:
    horizontal = trace.orientation == "h"
    values = np.asarray(trace.x if horizontal else trace.y, dtype=float)
    labels = list(trace.y if horizontal else trace.x)
    positions = np.arange(len(labels), dtype=float)
    size = 0.8 / groups
    offset = (index - (groups - 1) / 2) * size
    colours = _colours(trace.marker.color, len(values), colour)
    alpha = trace.opacity if trace.opacity is not None else 1.0
    base = np.zeros(len(values)) if trace.base is None else np.broadcast_to(np.asarray(trace.base, float), values.shape)
    label = trace.name if trace.name and trace.showlegend is not False else None
    if horizontal:
        bars = ax.barh(positions + offset, np.nan_to_num(values), size, left=base, color=colours, alpha=alpha,
                       label=label)
    else:
        bars = ax.bar(positions + offset, np.nan_to_num(values), size, bottom=base, color=colours, alpha=alpha,
                      label=label)
    (ax.set_yticks if horizontal else ax.set_xticks)(positions, [str(v) for v in labels])
    if not horizontal and len(labels) > 6:
        ax.tick_params(axis="x", labelrotation=45)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    if trace.text is not None and len(trace.text) == len(values):
        ax.bar_label(bars, labels=[str(t) for t in trace.text], fontsize=8, padding=2)
        if horizontal:
            ax.margins(x=0.15)
        else:
            ax.margins(y=0.15)


def _scatter(ax: Axes, trace: Any, colour: str) -> None:
    y = np.asarray(trace.y, dtype=float)
    x = np.asarray(trace.x) if trace.x is not None else np.arange(len(y))
    mode = trace.mode or "lines+markers"
    line_colour = _colour(trace.line.color) if trace.line.color else colour
    marker = trace.marker
    symbol = str(marker.symbol or "circle")
    hollow = symbol.endswith("-open")
    shape = SYMBOLS.get(symbol.removesuffix("-open"), "o")
    if "lines" in mode:
        ax.plot(x, y, DASHES.get(str(trace.line.dash or "solid"), "-"), color=line_colour,
                marker=shape if "markers" in mode else None, markersize=4, label=trace.name or None)
        return
    sizes = (np.asarray(marker.size, dtype=float) if marker.size is not None else np.full(len(x), 6.0)) ** 2 / 2
    colours = _colours(marker.color, len(x), line_colour)
    alpha = marker.opacity if marker.opacity is not None else 1.0
    if hollow:
        ax.scatter(x, y, s=sizes, marker=shape, facecolors="none", edgecolors=colours, alpha=alpha,
                   label=trace.name or None)
        return
    edge = _colour(marker.line.color) if marker.line and marker.line.color else None
    ax.scatter(x, y, s=sizes, marker=shape, c=colours, edgecolors=edge, linewidths=0.6 if edge else 0, alpha=alpha,
               label=trace.name or None)


def _colormap(scale: Sequence[Sequence[Any]] | str | None) -> LinearSegmentedColormap | str:
    if scale is None:
        return "viridis"
    if isinstance(scale, str):
        return scale.lower()
    return LinearSegmentedColormap.from_list("plotly", [(float(pair[0]), _colour(pair[1])) for pair in scale])


def _heatmap(out: Figure, ax: Axes, trace: Any) -> None:
    z = np.asarray(trace.z, dtype=float)
    if z.ndim != 2:
        raise ConfigError(f"a heatmap needs a 2-D z, got shape {z.shape}")
    image = ax.imshow(z, aspect="auto", origin="lower", cmap=_colormap(trace.colorscale),
                      vmin=trace.zmin, vmax=trace.zmax, interpolation="nearest")
    for labels, setter, count in ((trace.x, ax.set_xticks, z.shape[1]), (trace.y, ax.set_yticks, z.shape[0])):
        if labels is not None and len(labels) == count:
            step = max(1, count // 30)
            setter(np.arange(0, count, step), [str(v) for v in list(labels)[::step]])
    bar = out.colorbar(image, ax=ax, fraction=0.05)
    title = trace.colorbar.title.text if trace.colorbar and trace.colorbar.title else None
    if title:
        bar.set_label(title)


def _histogram(ax: Axes, trace: Any, colour: str) -> None:
    values = np.asarray(trace.x, dtype=float)
    bins: Any = "auto"
    if trace.xbins and trace.xbins.size:
        bins = np.arange(float(trace.xbins.start), float(trace.xbins.end) + 1e-12, float(trace.xbins.size))
    ax.hist(values[np.isfinite(values)], bins=bins, alpha=trace.opacity or 1.0, color=colour, label=trace.name)


def _style_axes(ax: Axes, layout: Any, key: tuple[str, str]) -> None:
    xaxis, yaxis = layout[_axis_name(key[0], "x")], layout[_axis_name(key[1], "y")]
    for axis, set_label, set_range, invert in ((xaxis, ax.set_xlabel, ax.set_xlim, ax.invert_xaxis),
                                               (yaxis, ax.set_ylabel, ax.set_ylim, ax.invert_yaxis)):
        if axis is None:
            continue
        if axis.title and axis.title.text:
            set_label(axis.title.text, fontsize=9)
        if axis.range is not None:
            set_range(*axis.range)
        if axis.autorange == "reversed":
            invert()
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    ax.set_axisbelow(True)


def _shapes(axes: dict[tuple[str, str], Axes], layout: Any) -> None:
    for shape in layout.shapes or ():
        ax = _axes_of(axes, str(shape.xref or "x"), str(shape.yref or "y"))
        style: dict[str, Any] = {"color": _colour(shape.line.color) if shape.line and shape.line.color else "grey",
                 "linestyle": DASHES.get(str(shape.line.dash or "solid"), "-") if shape.line else "-"}
        x_domain, y_domain = "domain" in str(shape.xref), "domain" in str(shape.yref)
        if shape.line and shape.line.width:
            style["linewidth"] = float(shape.line.width)
        if shape.type == "line" and shape.y0 == shape.y1 and x_domain:
            ax.axhline(shape.y0, **{"linewidth": 1, **style})
        elif shape.type == "line" and shape.x0 == shape.x1 and y_domain:
            ax.axvline(shape.x0, **{"linewidth": 1, **style})
        elif shape.type == "rect" and (x_domain or y_domain):
            span = ax.axvspan if y_domain else ax.axhspan
            low, high = (shape.x0, shape.x1) if y_domain else (shape.y0, shape.y1)
            span(low, high, color=_colour(shape.fillcolor or "grey"), alpha=shape.opacity or 0.2, linewidth=0,
                 label=shape.name if shape.showlegend else None)


def _axes_of(axes: dict[tuple[str, str], Axes], xref: str, yref: str) -> Axes:
    x, y = xref.split(" ")[0], yref.split(" ")[0]
    for (ax_x, ax_y), ax in axes.items():
        if (x in (ax_x, "paper")) and (y in (ax_y, "paper")):
            return ax
    return next(iter(axes.values()))


def _annotations(axes: dict[tuple[str, str], Axes], layout: Any) -> None:
    """Subplot titles (paper refs above an axes) become titles; shape labels are drawn where plotly puts them."""
    for note in layout.annotations or ():
        text = str(note.text or "").replace("<br>", "\n")
        if not text:
            continue
        if note.xref == "paper" and note.yref == "paper":
            ax = _axes_at(axes, layout, float(note.x))
            ax.set_title(text, fontsize=9)
            continue
        ax = _axes_of(axes, str(note.xref or "x"), str(note.yref or "y"))
        transform = ax.get_xaxis_transform() if "domain" in str(note.yref) else (
            ax.get_yaxis_transform() if "domain" in str(note.xref) else ax.transData)
        ax.text(float(note.x), float(note.y), text, transform=transform, fontsize=8, color="#444444",
                ha={"left": "left", "right": "right"}.get(str(note.xanchor), "center"),
                va={"bottom": "bottom", "top": "top"}.get(str(note.yanchor), "center"))


def _axes_at(axes: dict[tuple[str, str], Axes], layout: Any, x: float) -> Axes:
    for key, ax in axes.items():
        low, high = _domain(layout[_axis_name(key[0], "x")])
        if low <= x <= high:
            return ax
    return next(iter(axes.values()))
