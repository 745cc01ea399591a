"""Figures and overlays from numpy arrays (never imports torch)."""

from protoviz.viz.overlay import draw_box, jet_colormap, normalize_map, overlay_heatmap, png_bytes

__all__ = ["draw_box", "jet_colormap", "normalize_map", "overlay_heatmap", "png_bytes"]
