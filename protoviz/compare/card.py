"""What the prototype card shows about one prototype: provenance, class weights, redundancy, and its
top-k patches drawn with heatmaps (re-running the model on only those k images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from protoviz.compare.matching import DuplicatePair
from protoviz.compare.topk import TopKPatches
from protoviz.errors import ConfigError
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.viz.overlay import draw_box, overlay_heatmap, scale_box


@dataclass(frozen=True)
class PrototypeFacts:
    """Everything about prototype ``index`` that needs no dataset.

    weights: (C,) its last-layer weight in every class; own_class: -1 when it serves no single class;
    source_image: the push source image with the source box drawn, or None; duplicates: its
    near-duplicate partners as (other prototype, profile correlation or None, cosine or None).
    """

    index: int
    own_class: int
    own_class_name: str
    group: str
    weights: np.ndarray
    source: PrototypeSource | None
    source_image: np.ndarray | None
    duplicates: list[tuple[int, float | None, float | None]]

    def as_record(self) -> dict[str, Any]:
        return {"prototype": self.index, "class": self.own_class, "class_name": self.own_class_name,
                "group": self.group, "class_weights": self.weights.tolist(),
                "source": self.source.to_dict() if self.source is not None else None,
                "near_duplicates": [{"other": o, "profile_r": r, "cosine": c} for o, r, c in self.duplicates]}


def prototype_facts(model: PrototypeModel, index: int, duplicates: list[DuplicatePair] | None = None,
                    input_size: tuple[int, int] | None = None) -> PrototypeFacts:
    """Collect the dataset-free facts about prototype ``index`` of ``model``."""
    if not 0 <= index < model.num_prototypes:
        raise ConfigError(f"prototype index must lie in [0, {model.num_prototypes}), got {index}")
    identity = model.prototype_class_identity[index].detach().cpu()
    own = int(identity.argmax()) if float(identity.sum()) > 0 else -1
    group = next((name for name, (a, b) in model.prototype_groups().items() if a <= index < b), "prototypes")
    source = model.prototype_sources[index] if index < len(model.prototype_sources) else None
    partners = [(p.b if p.a == index else p.a, p.correlation, p.cosine) for p in duplicates or []
                if index in (p.a, p.b)]
    return PrototypeFacts(
        index=index, own_class=own, own_class_name=model.class_names[own] if own >= 0 else "none", group=group,
        weights=model.class_weights[:, index].detach().cpu().double().numpy(), source=source,
        source_image=_source_picture(source, input_size or model.input_spec.image_size), duplicates=partners,
    )


def _source_picture(source: PrototypeSource | None, input_size: tuple[int, int]) -> np.ndarray | None:
    if source is None or source.image_thumbnail is None:
        return None
    thumb = np.ascontiguousarray(source.image_thumbnail, dtype=np.uint8)
    return draw_box(thumb, scale_box(source.box, input_size, thumb.shape[:2]))


@dataclass(frozen=True)
class PatchView:
    """One of a prototype's top-k patches: the image (H, W, 3) uint8 with the heatmap overlaid and the
    high-activation box drawn, the box (y0, y1, x0, x1), the dataset position and id, its similarity,
    and the (min, max) of the heatmap its colours run between (for a colour scale)."""

    rank: int
    dataset_index: int
    image_id: str
    similarity: float
    overlay: np.ndarray
    box: tuple[int, int, int, int]
    heat_range: tuple[float, float] = (0.0, 0.0)


def topk_patch_views(model: PrototypeModel, dataset: Any, topk: TopKPatches, index: int, method: str = "upsample",
                     percentile: float = 95.0) -> list[PatchView]:
    """Heatmap views of prototype ``index``'s top-k patches: one batched run over those k images only.

    ``method`` names a heatmap method of :mod:`protoviz.heatmaps.methods` (upsample = ProtoPNet's).
    """
    from protoviz.data.datasets import load_batch
    from protoviz.heatmaps.methods import compute_heatmaps

    filled = topk.filled()[index]
    positions = topk.images[index][filled].tolist()
    if not positions:
        return []
    batch = load_batch(dataset, model.input_spec, positions)
    with torch.no_grad() if method == "upsample" else torch.enable_grad():
        maps = compute_heatmaps(method, model, batch.images.to(model.device), [index])[:, 0]  # (k, H, W)
    boxes = percentile_boxes(maps, percentile).cpu().tolist()
    unit = (batch.unit.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    heat = maps.float().cpu().numpy()
    views = []
    for rank, (position, image_id) in enumerate(zip(positions, batch.image_ids)):  # k pictures to draw
        y0, y1, x0, x1 = (int(v) for v in boxes[rank])
        box = (y0, y1, x0, x1)
        views.append(PatchView(rank=rank + 1, dataset_index=int(position), image_id=str(image_id),
                               similarity=float(topk.values[index, rank]),
                               overlay=draw_box(overlay_heatmap(unit[rank], heat[rank]), box),
                               box=box,
                               heat_range=(float(heat[rank].min()), float(heat[rank].max()))))
    return views
