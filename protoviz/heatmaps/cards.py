"""An explanation's "this looks like that" cards as pictures, words and one paper figure.

Shared by the Explain page and ``protoviz cards``, so both say the same thing: the panels of each card
(heatmap overlay with its box, the prototype's patch and source image), its numbers, the waterfall of
the class score and the sentence saying how it adds up.
"""

from __future__ import annotations

import plotly.graph_objects as go
from matplotlib.figure import Figure

from protoviz.heatmaps.explanation import ImageExplanation, PrototypeEvidence
from protoviz.viz.decision import decision_waterfall
from protoviz.viz.figures import EvidencePanels, FigureRow, evidence_panels, explanation_figure


def panels_of(explanation: ImageExplanation, evidence: PrototypeEvidence, input_size: tuple[int, int]
              ) -> EvidencePanels:
    """The three pictures of one card; ``input_size`` (H, W) is the model's, in which source boxes are given."""
    source = evidence.source
    return evidence_panels(
        explanation.image, evidence.heatmap, evidence.box, input_size,
        source_image=source.image_thumbnail if source is not None else None,
        source_box=source.box if source is not None else None,
        patch=source.patch_thumbnail if source is not None else None)


def evidence_text(evidence: PrototypeEvidence, prototype_set: str | None = None) -> str:
    """Three lines: which prototype (class, set), similarity x weight, = contribution."""
    kind = f", {prototype_set}" if prototype_set else ""
    return (f"prototype {evidence.index} (class {evidence.prototype_class_name}{kind})\n"
            f"similarity {evidence.similarity:.3f} x weight {evidence.weight:+.3f}\n"
            f"= contribution {evidence.contribution:+.3f}")


def sum_line(explanation: ImageExplanation) -> str:
    """How all contributions relate to the explained class's score, in words."""
    decision = explanation.decision
    if decision is not None and decision.unit == "leaf":
        return (f"The probability of '{explanation.explained_name}' is {explanation.class_logit:.4f}: "
                + decision.sentence() + " The prototype cards' contributions (similarity x 1 where the prototype "
                "leads to a leaf of the class) are a guide, not an exact split.")
    line = (f"Sum of all {len(explanation.contributions)} prototypes' contributions = "
            f"{explanation.total_contribution:.4f}; score of '{explanation.explained_name}' = "
            f"{explanation.class_logit:.4f}.")
    if decision is not None:
        line += " " + decision.sentence()
    if not explanation.sums_to_logit:
        line += (" This model's head is not a plain linear layer over the prototypes' similarities "
                 "(e.g. a tree, a threshold or a bias), so the contributions are a guide, not an exact split.")
    return line


def waterfall_of(explanation: ImageExplanation) -> go.Figure | None:
    """The decision's waterfall chart (None when the explanation has no decision)."""
    decision = explanation.decision
    if decision is None:
        return None
    steps = [(step.label, step.value, step.kind) for step in decision.steps]
    title = f"How the {decision.score_name} of '{decision.class_name}' adds up"
    return decision_waterfall(steps, decision.score, title, decision.score_name)


def header_text(explanation: ImageExplanation, model_label: str) -> str:
    """The figure's title block: image, model, prediction, explained class and top classes."""
    classes = "\n".join(f"{name:<18} {p:6.1%}" for _, name, p in explanation.top_classes)
    explained = ("" if explanation.explained_class == explanation.predicted
                 else f"\nexplained: {explanation.explained_name}")
    return (f"{explanation.name}  |  {model_label}\npredicted: {explanation.predicted_name}{explained}\n"
            f"{classes}")


def paper_figure(explanation: ImageExplanation, model_label: str, input_size: tuple[int, int],
                 sets: dict[int, str] | None = None) -> Figure:
    """The whole explanation as one matplotlib figure: cards for and against with colour scales, the
    waterfall, and the sentence; ``sets`` names each shown prototype's set (support / trivial) if any."""
    rows = [FigureRow(panels_of(explanation, e, input_size), evidence_text(e, (sets or {}).get(e.index)), e.side,
                      e.heat_range) for e in explanation.cards]
    footer = sum_line(explanation) + "".join(f" Warning: {w}" for w in explanation.warnings)
    return explanation_figure(explanation.image, header_text(explanation, model_label), rows, footer=footer,
                              waterfall=waterfall_of(explanation))
