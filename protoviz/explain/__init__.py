"""Why does a patch look like a prototype? Colour hue, shape, texture, contrast, saturation, brightness.

The method of Nauta et al. (specs/characteristics.md): modify an image six ways and measure how much
each modification lowers each prototype's similarity at its best location (local), then average that
over a dataset weighted by the similarity (global). ``reference`` mode reproduces the published
operations (PIL / OpenCV before resizing); ``fast`` mode does batched tensor operations on the device.
"""

from protoviz.explain.global_ import GlobalAccumulator, GlobalExplanation, explain_dataset
from protoviz.explain.local import LocalExplanation, explain_images, explain_units, prepare_units, top_prototype
from protoviz.explain.params import CHARACTERISTICS, IDENTITY, MODES, REGIONS, ExplainConfig, ModificationParams
from protoviz.explain.sentences import describe

__all__ = [
    "CHARACTERISTICS",
    "IDENTITY",
    "MODES",
    "REGIONS",
    "ExplainConfig",
    "GlobalAccumulator",
    "GlobalExplanation",
    "LocalExplanation",
    "ModificationParams",
    "describe",
    "explain_dataset",
    "explain_images",
    "explain_units",
    "prepare_units",
    "top_prototype",
]
