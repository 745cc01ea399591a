"""Hue: shift every pixel's hue (Nauta et al.)."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as reference
from protoviz.explain.characteristics.registry import PIL_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


@register_characteristic("hue", "Hue", parameters=("hue",), neutral={"hue": 0.0}, published=PIL_JPEG, paper=True,
                         source="Nauta et al. 2021, create_modified_datasets.py: ColorJitter(hue=[0.1, 0.1])")
class Hue:
    """Shift the hue by ``int(hue * 255)`` of PIL's 256 hue steps with wrap-around (0.1 -> 25 steps, about
    35 degrees), as torchvision's ``adjust_hue`` on a PIL image. Fast: the same shift in float HSV (PIL's
    uint8 HSV round trip is skipped)."""

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        return fast.hue(unit, context.params.hue_shift_steps)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return reference.hue(image, params.hue_shift_steps)
