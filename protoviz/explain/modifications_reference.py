"""The reference modifications, operation for operation as the reference code (Nauta et al., 2021).

Each works on one whole PIL RGB image at its native size, before resizing and normalising. The
reference wrote every variant to JPEG (quality 75 for the colour ones, 95 for texture and shape) and
read it back; the clean path keeps the modified images in memory, so no re-encoding noise is added,
and the published path (``path='published'``, :mod:`protoviz.explain.published`) adds that round trip.
The registered characteristics (:mod:`protoviz.explain.characteristics`) call these functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from protoviz.errors import ImageError
from protoviz.explain.params import CHARACTERISTICS as PAPER_ORDER
from protoviz.explain.params import IDENTITY, ModificationParams


def contrast(image: Image.Image, factor: float) -> Image.Image:
    """PIL ``ImageEnhance.Contrast``: blend toward a uniform grey at the image's mean luma."""
    return ImageEnhance.Contrast(image).enhance(factor)


def saturation(image: Image.Image, factor: float) -> Image.Image:
    """PIL ``ImageEnhance.Color``: blend toward the image's own greyscale."""
    return ImageEnhance.Color(image).enhance(factor)


def brightness(image: Image.Image, factor: float) -> Image.Image:
    """PIL ``ImageEnhance.Brightness``: blend toward black."""
    return ImageEnhance.Brightness(image).enhance(factor)


def hue(image: Image.Image, steps: int) -> Image.Image:
    """Add ``steps`` (mod 256) to the H channel of PIL's uint8 HSV, as torchvision ``adjust_hue`` on PIL."""
    h, s, v = image.convert("HSV").split()
    shifted = ((np.asarray(h, dtype=np.uint16) + steps) % 256).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(shifted, "L"), s, v)).convert("RGB")


def texture(image: Image.Image, h: float, h_color: float, template: int, search: int) -> Image.Image:
    """OpenCV ``fastNlMeansDenoisingColored`` on the BGR image (fine texture removed, edges kept)."""
    bgr = cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h_color, template, search)
    return Image.fromarray(cv2.cvtColor(out, cv2.COLOR_BGR2RGB), "RGB")


def sine_shifts(length: int, amplitude: float, frequency: float) -> np.ndarray:
    """shift(t) = int(A sin(pi w t)) truncated toward zero, for t = 0 .. length - 1: (length,) int64."""
    t = np.arange(length, dtype=np.float64)
    return np.trunc(amplitude * np.sin(np.pi * frequency * t)).astype(np.int64)


def shape(image: Image.Image, amplitude: float, frequency: float) -> Image.Image:
    """Sine warp: roll row i right by shift(i), then column j of the result down by shift(j), wrapping."""
    pixels = np.asarray(image, dtype=np.uint8)
    height, width = pixels.shape[:2]
    rows = sine_shifts(height, amplitude, frequency)
    cols = sine_shifts(width, amplitude, frequency)
    # np.roll(row, s)[x] == row[(x - s) mod W]; gathered for all rows at once.
    x_src = (np.arange(width)[None, :] - rows[:, None]) % width
    warped = pixels[np.arange(height)[:, None], x_src]
    y_src = (np.arange(height)[:, None] - cols[None, :]) % height
    warped = warped[y_src, np.arange(width)[None, :]]
    return Image.fromarray(np.ascontiguousarray(warped), "RGB")


def identity(image: Image.Image) -> Image.Image:
    """The noise-floor modification: a PIL RGB -> HSV -> RGB round trip with no change (uint8, lossy)."""
    return Image.merge("HSV", image.convert("HSV").split()).convert("RGB")


def reference_operations(params: ModificationParams,
                         names: tuple[str, ...] | None = None) -> dict[str, Callable[[Image.Image], Image.Image]]:
    """Name -> the registered reference modification with ``params`` bound (Nauta et al.'s six and
    identity by default; any registered, combined or noise-floor name when ``names`` is given)."""
    from protoviz.explain.characteristics import get_characteristic

    chosen = names if names is not None else (*PAPER_ORDER, IDENTITY)
    return {name: functools.partial(get_characteristic(name).reference, params=params) for name in chosen}


def modify_reference(image: Image.Image, names: tuple[str, ...], params: ModificationParams,
                     published: bool = False) -> list[Image.Image]:
    """One RGB image at native size -> its modified versions, one per name, at native size; with
    ``published`` each is written and read back as the published code stored it (its ``Codec``)."""
    from protoviz.explain.characteristics import get_characteristic

    if image.mode != "RGB":
        raise ImageError(f"modify_reference: expected an RGB image, got mode {image.mode!r}")
    characteristics = [get_characteristic(name) for name in names]
    if published:
        return [c.published_image(image, params) for c in characteristics]
    return [c.reference(image, params) for c in characteristics]
