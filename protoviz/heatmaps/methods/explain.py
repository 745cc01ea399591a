"""Swap the heatmaps of an explanation for another method's, for the Explain page's method selector."""

from __future__ import annotations

import dataclasses

import torch

from protoviz.data.transforms import normalize
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.explanation import ImageExplanation
from protoviz.heatmaps.methods.registry import DEFAULT_METHOD, HeatmapOptions, compute_heatmaps, get_method
from protoviz.models.base import PrototypeModel


def explanation_with_method(model: PrototypeModel, explanation: ImageExplanation, method: str,
                            options: HeatmapOptions | None = None) -> ImageExplanation:
    """A copy of ``explanation`` whose shown prototypes' heatmaps (evidence for and against) come from ``method``.

    Boxes become the 95th-percentile boxes of the new maps (of their positive part for signed
    methods); similarities, weights and contributions are unchanged. ``settings['heatmap_method']``
    records the method. The default method returns the explanation as it is.
    """
    spec = get_method(method)
    shown = explanation.cards
    if method == DEFAULT_METHOD or not shown:
        return explanation
    unit = torch.from_numpy(explanation.image).permute(2, 0, 1)[None].float().div(255).to(model.device)
    images = normalize(unit, model.input_spec)
    indices = [evidence.index for evidence in shown]
    maps = compute_heatmaps(method, model, images, indices, options)[0]  # (K, H, W)
    boxes = percentile_boxes(maps.clamp(min=0) if spec.signed else maps, explanation.percentile).cpu().tolist()
    maps_np = maps.float().cpu().numpy()
    evidence = [dataclasses.replace(e, heatmap=maps_np[i], box=(int(boxes[i][0]), int(boxes[i][1]),
                                                             int(boxes[i][2]), int(boxes[i][3])))
                for i, e in enumerate(shown)]
    settings = {**explanation.settings, "heatmap_method": method,
                "heatmap_options": dataclasses.asdict(options or HeatmapOptions())}
    count = len(explanation.prototypes)
    return dataclasses.replace(explanation, prototypes=evidence[:count], against=evidence[count:], settings=settings)
