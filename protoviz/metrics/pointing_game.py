"""Pointing game: does each image's most similar prototype point at the object? (CaBRNet's relevance.)

For every evaluated image, its ``pointing_top`` most similar prototypes' heatmaps (``pointing_method``,
any registered heatmap method; ProtoPNet's upsampled similarity by default) are compared with the
image's object mask by :func:`protoviz.explain.pointing.pointing_game`. The headline is the mean *mask
relevance*: the share of the heatmap's top ``pointing_area`` pixels (10% by default) that lie on the
object, in percent (a share, as every share in protoviz). The *energy relevance* (share of the heatmap's
sum on the object, %) is the second column. Per prototype: how often it was among an image's top ones,
and its mean relevances (NaN where never). Needs per-pixel object masks; refused on datasets without.
The heatmaps are a probe of the shared pass (:class:`~protoviz.explain.pointing.TopHeatmaps`, computed
under the model's lock per batch), so a sharded run splits them across ranks like every other metric.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from protoviz.explain.pointing import PointingAccumulator, PointingGame, check_pointing, named
from protoviz.metrics.details import stored_details
from protoviz.metrics.registry import Metric, register_metric
from protoviz.metrics.score import PERCENT, Score

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun

stored_details("pointing_game")(PointingGame)


@register_metric("pointing_game", unit=PERCENT, needs={"masks", "model"},
                 description="CaBRNet's pointing game: share of the top prototype's hottest 10% heatmap pixels "
                             "that lie on the object (mask relevance; energy relevance beside it)")
class PointingGameMetric(Metric):
    def consumer(self, run: EvaluationRun) -> PointingAccumulator:
        config = run.config
        check_pointing(run.model, run.dataset, config.pointing_top)
        return PointingAccumulator(config.pointing_method, config.pointing_top, config.pointing_area)

    def score(self, run: EvaluationRun, state: PointingGame) -> Score:
        game = named(state, run.dataset)
        per_prototype = game.per_prototype
        nan = math.nan
        rows = tuple({"pointing_images": per_prototype.get(p, (0, nan, nan))[0],
                      "pointing_game": 100.0 * per_prototype.get(p, (0, nan, nan))[1],
                      "pointing_energy": 100.0 * per_prototype.get(p, (0, nan, nan))[2]}
                     for p in range(run.model.num_prototypes))
        return Score("pointing_game", 100.0 * game.mask_relevance, PERCENT,
                     extra={"pointing_energy": 100.0 * game.energy_relevance}, rows=rows, details=game)
