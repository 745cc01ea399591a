"""Characteristics and regions behind one registry (see ``registry``). Importing this package registers
the built-in ones: Nauta et al.'s six (hue, shape, texture, contrast, saturation, brightness), the
identity noise floor, blur; the regions whole, inside, outside, focus and dual."""

from protoviz.explain.characteristics import (  # noqa: F401 - registers the built-ins
    blur,
    box,
    brightness,
    contrast,
    dual,
    focus,
    hue,
    identity,
    saturation,
    shape,
    texture,
    whole,
)
from protoviz.explain.characteristics.registry import (
    COMBINE,
    FLOOR_PREFIX,
    OPENCV_JPEG,
    PAPER,
    PIL_JPEG,
    Characteristic,
    Codec,
    FastContext,
    Region,
    RegionContext,
    describe_run,
    get_characteristic,
    get_region,
    list_characteristics,
    list_regions,
    register_characteristic,
    register_region,
    validate_names,
)

__all__ = [
    "COMBINE",
    "FLOOR_PREFIX",
    "OPENCV_JPEG",
    "PAPER",
    "PIL_JPEG",
    "Characteristic",
    "Codec",
    "FastContext",
    "Region",
    "RegionContext",
    "describe_run",
    "get_characteristic",
    "get_region",
    "list_characteristics",
    "list_regions",
    "register_characteristic",
    "register_region",
    "validate_names",
]
