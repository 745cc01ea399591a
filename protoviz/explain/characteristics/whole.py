"""The whole image: one modified image shared by every prototype (Nauta et al.)."""

from __future__ import annotations

from protoviz.explain.characteristics.registry import register_region


@register_region("whole", "whole image", source="Nauta et al. 2021")
class Whole:
    """Modify the whole image; every prototype is read from the same modified image (one forward of
    the M modified images per image, shared by all prototypes)."""

    weights = None
