"""Heatmap methods for prototypes, behind one registry.

``compute_heatmaps(method, model, images, prototype_indices)`` -> (B, K, H, W) maps at input
resolution; ``list_methods()`` names them (``upsample`` first, the default), ``get_method(name)``
describes one. Importing this package registers the built-in methods.
"""

from protoviz.heatmaps.methods import gradients, prp, upsample  # noqa: F401 - registers the methods
from protoviz.heatmaps.methods.registry import (
    DEFAULT_METHOD,
    HeatmapMethod,
    HeatmapOptions,
    compute_heatmaps,
    get_method,
    list_methods,
    register_method,
)

__all__ = ["DEFAULT_METHOD", "HeatmapMethod", "HeatmapOptions", "compute_heatmaps", "get_method", "list_methods",
           "register_method"]
