"""Brightness: blend toward black (computed by Nauta et al.'s code, not named in the paper)."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as reference
from protoviz.explain.characteristics.registry import PIL_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


@register_characteristic("brightness", "Brightness", parameters=("brightness",), neutral={"brightness": 1.0},
                         published=PIL_JPEG, paper=True,
                         source="Nauta et al. 2021, create_modified_datasets.py: ColorJitter(brightness=[0.8, 0.8])")
class Brightness:
    """PIL ``ImageEnhance.Brightness(factor)``: scale every channel by the factor toward black. 1 leaves
    the image unchanged."""

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        return fast.brightness(unit, context.params.brightness)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return reference.brightness(image, params.brightness)
