"""Saturation: blend toward the image's own greyscale (Nauta et al.)."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as reference
from protoviz.explain.characteristics.registry import PIL_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


@register_characteristic("saturation", "Saturation", parameters=("saturation",), neutral={"saturation": 1.0},
                         published=PIL_JPEG, paper=True,
                         source="Nauta et al. 2021, create_modified_datasets.py: ColorJitter(saturation=[0.7, 0.7])")
class Saturation:
    """PIL ``ImageEnhance.Color(factor)``: blend each pixel toward its luma L = 0.299 R + 0.587 G +
    0.114 B. 1 leaves the image unchanged."""

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        return fast.saturation(unit, context.params.saturation)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return reference.saturation(image, params.saturation)
