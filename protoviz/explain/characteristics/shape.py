"""Shape: a sine warp of rows then columns (Nauta et al.)."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as reference
from protoviz.explain.characteristics.registry import OPENCV_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


@register_characteristic("shape", "Shape", parameters=("shape_amplitude", "shape_frequency"),
                         neutral={"shape_amplitude": 0.0}, published=OPENCV_JPEG, paper=True,
                         source="Nauta et al. 2021, create_modified_datasets.py: modify_shape(img, A=4, w=0.05)")
class Shape:
    """shift(t) = int(A sin(pi w t)) truncated toward zero (A = 4 px, w = 0.05: a 40 px period); every
    row i is rolled horizontally by shift(i) with wrap-around, then every column j of the result
    vertically by shift(j). Fast: the same warp after resizing, amplitude and period scaled by the
    input / native size of each image and axis."""

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        return fast.shape(unit, context.params.shape_amplitude, context.params.shape_frequency, context.scale)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return reference.shape(image, params.shape_amplitude, params.shape_frequency)
