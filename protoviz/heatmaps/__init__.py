"""Similarity map -> image-size heatmap, high-activation boxes, and the "this looks like that" explanation."""

from protoviz.heatmaps.boxes import map_argmax, percentile_box, percentile_boxes
from protoviz.heatmaps.explanation import ImageExplanation, PrototypeEvidence, explain_image
from protoviz.heatmaps.upsample import upsample_maps

__all__ = ["ImageExplanation", "PrototypeEvidence", "explain_image", "map_argmax", "percentile_box",
           "percentile_boxes", "upsample_maps"]
