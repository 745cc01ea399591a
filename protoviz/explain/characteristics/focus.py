"""Focus: modify where the prototype's heatmap is high, weighted by it (CaBRNet)."""

from __future__ import annotations

import torch
from torch import Tensor

from protoviz.explain.characteristics.registry import RegionContext, register_region


def heatmap_weights(context: RegionContext) -> Tensor:
    """(B, K, 1, H, W) in [0, 1]: each prototype's heatmap from ``config.heatmap_method`` (any registered
    method of ``protoviz.heatmaps.methods``), min-max normalised per image and prototype as CaBRNet's
    ``normalize_min_max`` (a constant map gives 0 everywhere). Signed methods are clamped at 0 first
    (evidence against the prototype is not where it is)."""
    from protoviz.data.transforms import normalize
    from protoviz.heatmaps.methods import compute_heatmaps, get_method

    method = context.config.heatmap_method
    images = normalize(context.unit, context.model.input_spec)
    with torch.enable_grad():  # gradient methods need it even inside a no_grad explanation
        maps = compute_heatmaps(method, context.model, images, context.prototypes).to(context.unit.dtype)
    if get_method(method).signed:
        maps = maps.clamp_min(0.0)
    low = maps.amin(dim=(2, 3), keepdim=True)
    span = maps.amax(dim=(2, 3), keepdim=True) - low
    weights = torch.where(span > 0, (maps - low) / span.clamp_min(1e-12), torch.zeros_like(maps))
    return weights[:, :, None]


@register_region("focus", "where the heatmap is high (focus)",
                 source="CaBRNet local_perturbation_analysis.py: _merge(perturbed, img, attribution)")
class Focus:
    """Each pixel is ``w * modified + (1 - w) * original`` with w the prototype's normalised heatmap
    (CaBRNet's "focus" perturbation): the change lands where the heatmap says the evidence is. If the
    heatmap is faithful and the characteristic matters, the similarity drops about as much as with
    the whole image modified. CaBRNet rounds the blend to uint8; protoviz keeps it in float."""

    @staticmethod
    def weights(context: RegionContext) -> Tensor:
        return heatmap_weights(context)
