"""Turn "prototype j came from image i (at cell (r, c))" into full :class:`PrototypeSource` records.

Shared by ``protoviz project`` (the picks of a projection pass) and ``protoviz convert --push-dir``
(the picks an original push wrote). For every pick, one batched forward over the distinct source
images gives the prototype's own map on its source image, from which come: the map location (when the
pick has none: the nearest cell, as the family's push measures it), the latent distance there, the
high-activation box (the family's activation map upsampled bicubically to the input size as OpenCV's
INTER_CUBIC, then ProtoPNet's 95th-percentile box), the receptive-field box and the thumbnails.
Memory: one batch of images and their (b, P, h, w) maps at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from protoviz.data.datasets import ImageDataset, load_batch
from protoviz.data.transforms import to_uint8_image
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.progress import Progress
from protoviz.sources.criteria import PushRule, push_rule
from protoviz.sources.receptive import FieldInfo, pipnet_patch_box, receptive_field
from protoviz.train.push import thumbnail

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Pick:
    """One prototype's source image (a position in the dataset) and, if known, its map cell.

    location: (row, col), or None for the prototype's nearest cell on that image.
    push_box / rf_box: boxes read from an original push folder (input pixels), or None.
    """

    prototype: int
    image_index: int
    location: tuple[int, int] | None = None
    push_box: Box | None = None
    rf_box: Box | None = None
    origin: str = "projection"


@dataclass(frozen=True)
class Described:
    """What :func:`describe_sources` found: the records, and each pick's own nearest cell (for checks)."""

    sources: list[PrototypeSource | None]
    own_locations: dict[int, tuple[int, int]]


@torch.no_grad()
def describe_sources(model: PrototypeModel, dataset: ImageDataset, picks: Sequence[Pick], batch_size: int = 32,
                     image_thumbnail: int = 96, patch_thumbnail: int = 64,
                     progress: Progress | None = None, lock: AbstractContextManager[Any] | None = None) -> Described:
    """One :class:`PrototypeSource` per prototype (None where no pick names it). ``lock`` is held around
    each chunk of source images (a shared model's lock)."""
    rule = push_rule(model)
    sources: list[PrototypeSource | None] = [None] * model.num_prototypes
    own: dict[int, tuple[int, int]] = {}
    images = sorted({p.image_index for p in picks})
    by_image: dict[int, list[Pick]] = {}
    for pick in picks:
        by_image.setdefault(pick.image_index, []).append(pick)
    field = receptive_field(model)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            batch = load_batch(dataset, model.input_spec, chunk)
            x = batch.images.to(model.device)
            rows = [(k, pick) for k, index in enumerate(chunk) for pick in by_image[index]]
            with lock if lock is not None else nullcontext():
                _describe_chunk(model, rule, x, batch.unit, batch.image_ids, batch.labels, rows, field,
                                (image_thumbnail, patch_thumbnail), sources, own)
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images), "source images")
    finally:
        model.train(was_training)
    return Described(sources, own)


def _describe_chunk(model: PrototypeModel, rule: PushRule, x: Tensor, unit: Tensor, image_ids: list[str],
                    labels: Tensor, rows: list[tuple[int, Pick]], field: FieldInfo | None,
                    sizes: tuple[int, int], sources: list[PrototypeSource | None],
                    own: dict[int, tuple[int, int]]) -> None:
    image_of = torch.tensor([k for k, _ in rows], device=x.device)
    proto_of = torch.tensor([p.prototype for _, p in rows], device=x.device)
    distances = rule.distance_maps(model, x)[image_of, proto_of].float()  # (K, h, w)
    activation = rule.activation_maps(model, x)[image_of, proto_of].float()  # (K, h, w)
    height, width = distances.shape[-2:]
    nearest = _nearest_cells(distances, rule.column_major)  # (K, 2)
    boxes = percentile_boxes(upsample_maps(activation, model.input_spec.image_size)).tolist()
    nearest_list = nearest.tolist()
    pictures = [to_uint8_image(unit[k]) for k in range(unit.shape[0])]
    for n, (k, pick) in enumerate(rows):
        cell = (int(nearest_list[n][0]), int(nearest_list[n][1]))
        own[pick.prototype] = cell
        row, col = pick.location if pick.location is not None else cell
        if not (0 <= row < height and 0 <= col < width):
            continue
        box = tuple(int(v) for v in boxes[n])
        y0, y1, x0, x1 = box
        sources[pick.prototype] = PrototypeSource(
            image_id=image_ids[k], box=box,  # type: ignore[arg-type]
            image_thumbnail=thumbnail(pictures[k], sizes[0]),
            patch_thumbnail=thumbnail(pictures[k][y0:y1, x0:x1], sizes[1]),
            map_location=(row, col), class_index=int(labels[k]),
            rf_box=pick.rf_box if pick.rf_box is not None else _rf_box(model, field, row, col, (height, width)),
            push_box=pick.push_box, distance=float(distances[n, row, col]), distance_kind=rule.distance_kind,
            origin=pick.origin)


def _nearest_cells(distances: Tensor, column_major: bool) -> Tensor:
    """(K, h, w) -> (K, 2) (row, col) of each minimum; ties: first row-major (or column-major) cell."""
    height, width = distances.shape[-2:]
    if column_major:
        index = distances.transpose(1, 2).reshape(distances.shape[0], -1).argmin(dim=1)
        return torch.stack([index % height, index // height], dim=1)
    index = distances.reshape(distances.shape[0], -1).argmin(dim=1)
    return torch.stack([index // width, index % width], dim=1)


def _rf_box(model: PrototypeModel, field: FieldInfo | None, row: int, col: int, map_size: tuple[int, int]) -> Box | None:
    if model.family == "pipnet":
        return pipnet_patch_box(row, col, map_size, model.input_spec.image_size[0])
    if field is None:
        return None
    return field.box(row, col, model.input_spec.image_size)


def as_array(boxes: Sequence[Box | None]) -> np.ndarray:
    """Boxes -> (N, 4) int64 with -1 rows for None (for tables and comparisons)."""
    return np.array([b if b is not None else (-1, -1, -1, -1) for b in boxes], dtype=np.int64).reshape(-1, 4)
