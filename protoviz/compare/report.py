"""A comparison as one self-contained HTML file: plotly inlined once, images as base64 PNG, no links.

:class:`HtmlReport` is a small builder (headings, text, tables, figures, images); :func:`comparison_report`
lays out a :class:`~protoviz.compare.summary.Comparison` with its reproducibility panel.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from protoviz.compare.latent import PROJECTION_LABELS, LatentView
from protoviz.compare.summary import Comparison, ModelRun, scores_table
from protoviz.viz.compare import correlation_heatmap, latent_scatter, match_strength_bars
from protoviz.viz.gallery import patch_strip
from protoviz.viz.overlay import draw_box, overlay_heatmap, png_bytes

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f0f0f0}figure{display:inline-block;margin:4px 8px;text-align:center;font-size:12px}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}.repro{border:2px solid #888;padding:8px}
"""


class HtmlReport:
    """Collects sections and renders one HTML document with everything embedded."""

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []
        self._plotly_included = False

    def heading(self, text: str, level: int = 2) -> None:
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of equal keys as an HTML table (floats with 4 decimals, None as '-')."""
        if not rows:
            self.text("(nothing to show)")
            return
        keys = list(rows[0])
        head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(k)))}</td>" for k in keys) + "</tr>"
                       for row in rows)
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, figure: go.Figure) -> None:
        """A plotly figure; its JavaScript library is inlined with the first one only."""
        self._parts.append(figure.to_html(full_html=False, include_plotlyjs=not self._plotly_included,
                                          config={"displaylogo": False}))
        self._plotly_included = True

    def images(self, images: Sequence[np.ndarray], captions: Sequence[str]) -> None:
        """RGB images (h, w, 3) uint8 in a row, embedded as base64 PNG with captions."""
        cells = []
        for image, caption in zip(images, captions):
            data = base64.b64encode(png_bytes(image)).decode("ascii")
            cells.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self._parts.append("<div>" + "".join(cells) + "</div>")

    def record(self, record: dict[str, Any], title: str = "Reproducibility") -> None:
        """The reproducibility panel: the record as a readable JSON block."""
        text = html.escape(json.dumps(record, indent=2, default=str))
        self._parts.append(f'<div class="repro" id="reproducibility"><h2>{html.escape(title)}</h2>'
                           f"<pre>{text}</pre></div>")

    def render(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1><p>generated {stamp} by protoviz</p>"
                + "\n".join(self._parts) + "</body></html>")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def comparison_report(comparison: Comparison, class_names: Mapping[str, Sequence[str]] | None = None,
                      latent_views: dict[str, LatentView] | None = None,
                      explanations: dict[str, list[Any]] | None = None, pairs_shown: int = 12,
                      title: str = "protoviz model comparison") -> HtmlReport:
    """Lay out a comparison: scores, per-image predictions (``explanations``: model name -> list of
    ImageExplanation), matched pairs, near-duplicates, latent views, and the reproducibility panel."""
    report = HtmlReport(title)
    report.heading("Scores")
    report.table(scores_table(comparison.runs))
    if explanations:
        _predictions_section(report, explanations)
    for (i, j), matching in comparison.matchings.items():
        _matching_section(report, comparison.runs[i], comparison.runs[j], matching, pairs_shown)
    report.heading("Near-duplicate prototypes within each model")
    for run in comparison.runs:
        report.heading(run.name, 3)
        report.table([{"prototype a": p.a, "prototype b": p.b, "profile r": p.correlation, "cosine": p.cosine}
                      for p in run.duplicates[:50]])
    for name, view in (latent_views or {}).items():
        names = (class_names or {}).get(name) or [str(c) for c in range(int(view.prototype_class.max()) + 1)]
        run = next(r for r in comparison.runs if r.name == name)
        report.figure(latent_figure(view, names, run.topk.values.numpy(), f"latent space of {name}"))
    report.record(comparison.record)
    return report


def latent_figure(view: LatentView, class_names: Sequence[str], patch_values: np.ndarray | None,
                  title: str) -> go.Figure:
    """The latent scatter of ``view`` with its projection's axis titles (PCA variance, or t-SNE / PaCMAP)."""
    figure = latent_scatter(view.prototype_xy, view.prototype_class, view.patch_xy, view.patch_filled, class_names,
                            np.nan_to_num(view.explained), patch_values,
                            title=f"{title} ({PROJECTION_LABELS[view.method]})")
    x_title, y_title = view.axis_titles
    figure.update_layout(xaxis_title=x_title, yaxis_title=y_title)
    return figure


def _predictions_section(report: HtmlReport, explanations: dict[str, list[Any]]) -> None:
    report.heading("Predictions on the same images")
    for name, items in explanations.items():
        report.heading(name, 3)
        for item in items:
            top = ", ".join(f"{n} {p:.2f}" for _, n, p in item.top_classes)
            report.text(f"{item.name}: predicted {item.predicted_name} (top: {top})")
            shown = [*item.prototypes[:3], *getattr(item, "against", [])[:3]]  # evidence for, then against
            pictures = [draw_box(overlay_heatmap(item.image, p.heatmap), p.box) for p in shown]
            report.images([item.image, *pictures],
                          ["input", *[f"{'for' if p.side == 'for' else 'against'}: prototype {p.index}: "
                                      f"{p.contribution:+.3f}" for p in shown]])


def _matching_section(report: HtmlReport, run_a: ModelRun, run_b: ModelRun, matching: Any, shown: int) -> None:
    report.heading(f"Matched prototypes: {run_a.name} vs {run_b.name}")
    report.text(f"{len(matching.pairs)} pairs with profile correlation >= {matching.threshold:g}; "
                f"{len(matching.unmatched_a)} prototypes of {run_a.name} and {len(matching.unmatched_b)} of "
                f"{run_b.name} have no counterpart.")
    report.figure(correlation_heatmap(matching.correlation.numpy(), run_a.name, run_b.name,
                                      [(p.a, p.b) for p in matching.pairs]))
    assigned = [*matching.pairs, *matching.weak]
    report.figure(match_strength_bars([f"{p.a}-{p.b}" for p in assigned], [p.correlation for p in assigned],
                                      matching.threshold))
    for pair in matching.pairs[:shown]:
        strips = []
        for run, index in ((run_a, pair.a), (run_b, pair.b)):
            if run.topk.thumbnails is not None:
                strips.append(patch_strip(run.topk.thumbnails[index], run.topk.values[index].numpy(), tile=56)[0])
        if strips:
            report.images(strips, [f"{run_a.name} #{pair.a} top patches",
                                   f"{run_b.name} #{pair.b} (r={pair.correlation:.3f})"])
    report.text(f"No counterpart in {run_b.name}: {list(matching.unmatched_a)}")
    report.text(f"No counterpart in {run_a.name}: {list(matching.unmatched_b)}")
