"""Texture: remove fine texture with non-local means, keeping edges (Nauta et al.)."""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as reference
from protoviz.explain.characteristics.registry import OPENCV_JPEG, FastContext, register_characteristic
from protoviz.explain.params import ModificationParams


@register_characteristic("texture", "Texture",
                         parameters=("texture_h", "texture_h_color", "texture_template", "texture_search"),
                         neutral={"texture_h": 0.01, "texture_h_color": 0.01}, published=OPENCV_JPEG, paper=True,
                         source="Nauta et al. 2021, create_modified_datasets.py: cv2.fastNlMeansDenoisingColored("
                                "h=4, hColor=4, templateWindowSize=7, searchWindowSize=21)")
class Texture:
    """OpenCV ``fastNlMeansDenoisingColored(h=4, hColor=4, template 7, search 21)`` on the BGR image: fine
    texture is averaged away where similar patches exist, edges stay. Fast: the same filter on the
    resized image with windows scaled to the input size and the search window capped
    (``ExplainConfig.fast_max_search``), through OpenCV on the CPU (on the loader thread, beside the
    forward pass) or as batched tensor operations on an accelerator (see ``modifications_fast``)."""

    @staticmethod
    def prepare(unit: Tensor, context: FastContext) -> Tensor | None:
        if context.backend != "opencv":
            return None
        return fast.texture_opencv(unit, context.params, context.scale, context.max_search)

    @staticmethod
    def fast(unit: Tensor, context: FastContext) -> Tensor:
        if context.prepared is not None:
            return context.prepared.to(device=unit.device, dtype=unit.dtype)
        return fast.texture_scaled(unit, context.params, context.scale, context.max_search)

    @staticmethod
    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return reference.texture(image, params.texture_h, params.texture_h_color, params.texture_template,
                                 params.texture_search)
