"""Contrast: blend toward a uniform grey (Nauta et al.)."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as reference
from protoviz.explain.characteristics.registry import PIL_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


@register_characteristic("contrast", "Contrast", parameters=("contrast",), neutral={"contrast": 1.0},
                         published=PIL_JPEG, paper=True,
                         source="Nauta et al. 2021, create_modified_datasets.py: ColorJitter(contrast=[0.45, 0.45])")
class Contrast:
    """PIL ``ImageEnhance.Contrast(factor)``: blend toward a uniform grey at the image's mean luma
    (rounded to a uint8 level, as PIL does). 1 leaves the image unchanged."""

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        return fast.contrast(unit, context.params.contrast)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return reference.contrast(image, params.contrast)
