"""Huang et al.'s stability: share of images whose part vector is unchanged under Gaussian noise.

stab_p = (1 / |I_p|) sum_x 1[o_p(x) == o_p(x~)] for the noisy copy x~ (all K entries equal; two all-zero
vectors are equal); stability = 100 * mean_p stab_p over prototypes with images. With several draws:
the mean over draws, and their standard deviation as the spread. The counts come from the part consumer
consistency uses too (:func:`protoviz.metrics.consistency.part_consumer`), fed with the noisy copies of
:class:`protoviz.metrics.noise.NoiseView` (noise seeded per image: see :mod:`protoviz.metrics.noise`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protoviz.metrics.consistency import PartAccumulator, PartScores, part_consumer, part_rows
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import PERCENT, Score

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun


@register_metric("stability", unit=PERCENT, needs={"labels", "parts", "noise"}, default=True,
                 description="Huang et al.: share of images whose part vector is unchanged under Gaussian noise")
class StabilityMetric(Metric):
    def consumer(self, run: EvaluationRun) -> PartAccumulator:
        return part_consumer(run)

    def score(self, run: EvaluationRun, state: PartScores) -> Score:
        value = state.stability if state.stability is not None else float("nan")
        return Score("stability", value, PERCENT, spread=state.stability_spread or 0.0, rows=part_rows(state),
                     details=state)
