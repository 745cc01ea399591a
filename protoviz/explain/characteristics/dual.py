"""Dual: modify where the prototype's heatmap is low (CaBRNet)."""

from __future__ import annotations

from torch import Tensor

from protoviz.explain.characteristics.focus import heatmap_weights
from protoviz.explain.characteristics.registry import RegionContext, register_region


@register_region("dual", "where the heatmap is low (dual)",
                 source="CaBRNet local_perturbation_analysis.py: _merge(perturbed, img, 1 - attribution)")
class Dual:
    """Each pixel is ``(1 - w) * modified + w * original`` with w the prototype's normalised heatmap
    (CaBRNet's "dual" perturbation): everything but the evidence changes. A faithful heatmap makes the
    similarity barely move here; a large drop says the heatmap misses where the prototype looks."""

    @staticmethod
    def weights(context: RegionContext) -> Tensor:
        return 1.0 - heatmap_weights(context)
