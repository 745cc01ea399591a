"""The whole decision as a waterfall: each shown card's term, the other prototypes, any bias, and the
class score they add up to (plotly; plain numbers in, no torch). It redraws with matplotlib for SVG / PDF."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from protoviz.errors import ConfigError

KIND_COLOURS: dict[str, str] = {"for": "#2a7ab9", "against": "#d62728", "other": "#9e9e9e", "offset": "#9467bd",
                                "total": "#333333"}
KIND_PREFIX: dict[str, str] = {"for": "for: ", "against": "against: ", "other": "", "offset": ""}

Step = tuple[str, float, str]  # (label, value, kind: 'for' | 'against' | 'other' | 'offset')


def decision_waterfall(steps: Sequence[Step], score: float, title: str, score_name: str = "logit") -> go.Figure:
    """Horizontal waterfall, top to bottom: each step as a bar from the running sum, then the score from 0.

    Evidence for is blue, against red, the other prototypes grey, a bias purple, the total dark; each bar
    carries its signed value. The steps must add up to ``score`` (checked to 1e-3 of its size).
    """
    if not steps:
        raise ConfigError("a waterfall needs at least one step")
    unknown = {kind for _, _, kind in steps} - set(KIND_PREFIX)
    if unknown:
        raise ConfigError(f"unknown waterfall step kinds {sorted(unknown)}; use {sorted(KIND_PREFIX)}")
    total = sum(float(v) for _, v, _ in steps)
    if abs(total - score) > 1e-3 * (1.0 + abs(score)):
        raise ConfigError(f"the steps add up to {total:.6g}, not to the score {score:.6g}")
    labels, values, bases, colours = [], [], [], []
    running = 0.0
    for label, value, kind in steps:
        labels.append(KIND_PREFIX[kind] + label)
        values.append(float(value))
        bases.append(running)
        colours.append(KIND_COLOURS[kind])
        running += float(value)
    labels.append(f"= {score_name}")
    values.append(float(score))
    bases.append(0.0)
    colours.append(KIND_COLOURS["total"])
    ends = [b + v for b, v in zip(bases, values)]
    low, high = min(0.0, *bases, *ends), max(0.0, *bases, *ends)
    room = 0.18 * ((high - low) or 1.0)
    figure = go.Figure(go.Bar(
        x=values, base=bases, y=labels, orientation="h", marker_color=colours, text=[f"{v:+.3f}" for v in values],
        textposition="outside", cliponaxis=False, showlegend=False,
        hovertemplate="%{y}: %{x:+.4f}<extra></extra>"))
    figure.add_vline(x=0, line_color="#555555", line_width=1)
    figure.update_layout(title=title, height=90 + 26 * len(labels), xaxis_title=score_name,
                         margin={"l": 10, "r": 20, "t": 50, "b": 40}, showlegend=False)
    figure.update_xaxes(range=[low - room, high + room])
    figure.update_yaxes(autorange="reversed", type="category")
    return figure
