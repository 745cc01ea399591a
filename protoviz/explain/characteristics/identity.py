"""Identity: the shared noise floor (a modification that should change nothing)."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as reference
from protoviz.explain.characteristics.registry import PIL_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


@register_characteristic("identity", "Identity (noise floor)", published=PIL_JPEG,
                         source="protoviz: the noise floor of specs/characteristics.md")
class Identity:
    """An RGB -> HSV -> RGB round trip with no change (reference: PIL's uint8 HSV; fast: float HSV), so
    that |Delta| shows what the path alone changes. On the published path the unmodified image is also
    written as JPEG quality 75 and read back, as the reference did with its colour variants."""

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        return fast.identity(unit)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return reference.identity(image)
