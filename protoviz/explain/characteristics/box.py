"""Inside / outside the prototype's high-activation box (protoviz, specs/characteristics.md)."""

from __future__ import annotations

from torch import Tensor

from protoviz.explain.characteristics.registry import RegionContext, register_region


def box_mask(context: RegionContext) -> Tensor:
    """(B, K, 1, H, W) float: 1 inside each prototype's ``config.percentile`` box of its upsampled map."""
    from protoviz.explain.local import high_activation_masks

    size = (int(context.unit.shape[-2]), int(context.unit.shape[-1]))
    _, inside = high_activation_masks(context.maps, size, context.config.percentile)
    return inside.to(context.unit.dtype)


@register_region("inside", "only inside the prototype's box")
class Inside:
    """Modify only inside the prototype's high-activation box (the ``percentile`` box of its upsampled
    similarity map, ProtoPNet's 95 by default); the rest of the image stays as it was."""

    @staticmethod
    def weights(context: RegionContext) -> Tensor:
        return box_mask(context)


@register_region("outside", "only outside the prototype's box")
class Outside:
    """Modify only outside the prototype's high-activation box: the box itself stays as it was."""

    @staticmethod
    def weights(context: RegionContext) -> Tensor:
        return 1.0 - box_mask(context)
