"""The top-k most activating patches of every prototype over a dataset, in one batched pass.

A running merge keeps, per prototype, the k best (similarity, image, map cell) candidates seen so far:
each batch's candidates (P, B) or (P, B*h*w) are concatenated to the running (P, k) and cut back with
one ``torch.topk`` — memory is constant in the number of images. The latents (D,) at the winning
cells and small crops of the winning patches are carried along, so nothing needs a second pass.

Candidates per image (``per_image``):
- ``"best"``: only each image's most similar cell per prototype, so the k patches come from k
  different images (the usual gallery reading);
- ``"all"``: every cell of every image, so one image can give several patches.

A patch's box is its map cell's share of the image, (H/h, W/w) pixels, enlarged ``box_scale`` times
around the cell's centre and clipped to the image: (y0, y1, x0, x1) in model-input pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import roi_align

from protoviz.errors import ConfigError
from protoviz.models.base import PrototypeModel
from protoviz.passes import Needs, PassStep, run_pass
from protoviz.progress import Progress

PER_IMAGE = ("best", "all")


@dataclass(frozen=True)
class TopKConfig:
    """k patches per prototype; ``per_image`` 'best' or 'all'; crops of ``thumbnail_size`` pixels
    (0 = none); ``box_scale`` times the map cell; ``keep_latents`` for the latent-space view."""

    k: int = 5
    per_image: str = "best"
    thumbnail_size: int = 48
    box_scale: float = 2.0
    keep_latents: bool = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"top-k needs k >= 1, got {self.k}")
        if self.per_image not in PER_IMAGE:
            raise ConfigError(f"per_image must be one of {PER_IMAGE}, got {self.per_image!r}")
        if self.thumbnail_size < 0 or self.box_scale <= 0:
            raise ConfigError("thumbnail_size must be >= 0 and box_scale > 0, "
                              f"got {self.thumbnail_size} and {self.box_scale}")


@dataclass(frozen=True)
class TopKPatches:
    """Per prototype p and rank r (best first); unfilled slots have image -1 and value -inf.

    values: (P, k) similarities; images: (P, k) dataset indices; cells: (P, k, 2) (row, col) in the map;
    boxes: (P, k, 4) (y0, y1, x0, x1) in model-input pixels; latents: (P, k, D) or None;
    thumbnails: (P, k, t, t, 3) uint8 or None.
    """

    values: Tensor
    images: Tensor
    cells: Tensor
    boxes: Tensor
    latents: Tensor | None
    thumbnails: np.ndarray | None
    num_images: int
    config: TopKConfig

    def filled(self) -> Tensor:
        """(P, k) True where a slot holds a patch."""
        return self.images >= 0

    def store(self, blobs: dict[str, bytes], prefix: str = "topk") -> dict[str, Any]:
        """Put the arrays into ``blobs`` (``prefix/values`` ...; crops chunked, see
        :func:`~protoviz.compare.stored.put_array`); returns the JSON part (config and image count)."""
        from protoviz.compare.stored import put_array

        for name in ("values", "images", "cells", "boxes"):
            put_array(blobs, f"{prefix}/{name}", getattr(self, name).numpy())
        if self.latents is not None:
            put_array(blobs, f"{prefix}/latents", self.latents.numpy())
        if self.thumbnails is not None:
            put_array(blobs, f"{prefix}/thumbnails", self.thumbnails)
        return {"config": asdict(self.config), "num_images": self.num_images}

    @classmethod
    def restore(cls, data: dict[str, Any], blobs: Mapping[str, bytes], prefix: str = "topk") -> TopKPatches:
        """The patches :meth:`store` kept (``data`` is what it returned)."""
        from protoviz.compare.stored import get_array, has_array

        def tensor(name: str) -> Tensor:
            return torch.from_numpy(get_array(blobs, f"{prefix}/{name}"))

        return cls(values=tensor("values"), images=tensor("images"), cells=tensor("cells"), boxes=tensor("boxes"),
                   latents=tensor("latents") if has_array(blobs, f"{prefix}/latents") else None,
                   thumbnails=get_array(blobs, f"{prefix}/thumbnails")
                   if has_array(blobs, f"{prefix}/thumbnails") else None,
                   num_images=int(data["num_images"]), config=TopKConfig(**data["config"]))

    def rows(self) -> list[dict[str, Any]]:
        """One row per filled slot: prototype, rank (1 = best), dataset index, similarity, map cell, box."""
        filled = self.filled()
        out = []
        for p, r in filled.nonzero().tolist():  # the P * k slots at most
            y0, y1, x0, x1 = self.boxes[p, r].tolist()
            out.append({"prototype": p, "rank": r + 1, "dataset_index": int(self.images[p, r]),
                        "similarity": float(self.values[p, r]), "row": int(self.cells[p, r, 0]),
                        "col": int(self.cells[p, r, 1]), "y0": y0, "y1": y1, "x0": x0, "x1": x1})
        return out


class TopKAccumulator:
    """Running per-prototype top-k merge, a consumer of :func:`protoviz.passes.run_pass`; shards of a
    pass merge by the same cut (ties between equal similarities may then pick other patches)."""

    def __init__(self, config: TopKConfig = TopKConfig()):
        self.config = config
        self._state: dict[str, Tensor] | None = None
        self.count = 0

    @property
    def needs(self) -> Needs:
        return Needs(latent=self.config.keep_latents, unit=self.config.thumbnail_size > 0)

    def _init_state(self, step: PassStep) -> dict[str, Tensor]:
        num, k, device = step.maps.shape[1], self.config.k, step.maps.device
        state = {
            "values": torch.full((num, k), float("-inf"), device=device, dtype=step.maps.dtype),
            "images": torch.full((num, k), -1, device=device, dtype=torch.long),
            "cells": torch.zeros(num, k, 2, device=device, dtype=torch.long),
            "boxes": torch.zeros(num, k, 4, device=device, dtype=torch.long),
        }
        if step.latent is not None and self.config.keep_latents:
            state["latents"] = torch.zeros(num, k, step.latent.shape[1], device=device, dtype=step.latent.dtype)
        t = self.config.thumbnail_size
        if t:  # crops stay where they were written; "slots" (P, k) says where each rank's crop is
            state["thumbnails"] = torch.zeros(num, k, 3, t, t, device=device, dtype=torch.uint8)
            state["slots"] = torch.arange(k, device=device).expand(num, k).clone()
        return state

    def update(self, step: PassStep) -> None:
        """Merge one batch's candidates into the running top-k."""
        if self._state is None:
            self._state = self._init_state(step)
        state, k = self._state, self.config.k
        batch, num, h, w = step.maps.shape
        flat = step.maps.permute(1, 0, 2, 3).reshape(num, batch, h * w)  # (P, B, hw)
        if self.config.per_image == "best":
            cand_values, cand_pos = flat.max(dim=2)  # (P, B)
        else:
            cand_values, cand_pos = flat.reshape(num, batch * h * w), None
        merged = torch.cat([state["values"], cand_values], dim=1)
        values, order = merged.topk(k, dim=1)  # (P, k)
        is_new = order >= k
        cand = (order - k).clamp(min=0)
        if cand_pos is None:
            image_in_batch, pos = cand // (h * w), cand % (h * w)
        else:
            image_in_batch, pos = cand, cand_pos.gather(1, cand)
        old = order.clamp(max=k - 1)
        cells = torch.stack([pos // w, pos % w], dim=-1)
        size = (int(step.images.shape[-2]), int(step.images.shape[-1]))
        boxes = cell_boxes(cells, (h, w), size, self.config.box_scale)
        new_state = {
            "values": values,
            "images": torch.where(is_new, step.indices[image_in_batch], state["images"].gather(1, old)),
            "cells": _pick(is_new, cells, state["cells"], old),
            "boxes": _pick(is_new, boxes, state["boxes"], old),
        }
        rows = is_new.nonzero(as_tuple=True)  # only the newly winning slots need this batch's data
        if "latents" in state and step.latent is not None:
            latents = _reorder(state["latents"], old)
            latents[rows] = step.latent.permute(0, 2, 3, 1)[image_in_batch[rows], cells[rows][:, 0], cells[rows][:, 1]]
            new_state["latents"] = latents
        if "thumbnails" in state and step.unit is not None:
            slots = _moved_slots(state["slots"], old, is_new)
            self._crop_into(state["thumbnails"], slots, rows, image_in_batch, boxes, step.unit)
            new_state["thumbnails"], new_state["slots"] = state["thumbnails"], slots
        self._state = new_state
        self.count += batch

    def _crop_into(self, thumbs: Tensor, slots: Tensor, rows: tuple[Tensor, ...], image_in_batch: Tensor,
                   boxes: Tensor, unit: Tensor) -> None:
        """Crop only the newly winning patches (``rows``; one roi_align call) into their free slots of
        ``thumbs`` (P, k, 3, t, t), in place: the kept crops are never copied (at P = 2,000 and k = 5 the crops
        are 69 MB, a copy per batch costs about a fifth of a tiny backbone's forward)."""
        if rows[0].numel():
            b = boxes[rows].to(unit.dtype)  # (N, 4) y0, y1, x0, x1
            rois = torch.stack([image_in_batch[rows].to(unit.dtype), b[:, 2], b[:, 0], b[:, 3], b[:, 1]], dim=1)
            size = self.config.thumbnail_size
            crops = roi_align(unit, rois, output_size=(size, size), aligned=True)
            thumbs[rows[0], slots[rows]] = crops.clamp_(0, 1).mul_(255).round_().to(torch.uint8)

    def _in_rank_order(self) -> dict[str, Tensor]:
        """The state with the crops in rank order (as every other array is), without the slot map."""
        assert self._state is not None
        state = {name: value for name, value in self._state.items() if name != "slots"}
        if "slots" in self._state:
            state["thumbnails"] = _reorder(self._state["thumbnails"], self._state["slots"])
        return state

    def merge(self, other: TopKAccumulator) -> None:
        """Keep the best k of both accumulators' patches per prototype."""
        self.count += other.count
        if other._state is None:
            return
        if self._state is None:
            self._state = dict(other._state)
            return
        mine = self._in_rank_order()
        device = mine["values"].device
        theirs = {name: value.to(device) for name, value in other._in_rank_order().items()}
        values, order = torch.cat([mine["values"], theirs["values"]], dim=1).topk(self.config.k, dim=1)
        rows = torch.arange(order.shape[0], device=device).unsqueeze(1)
        self._state = {name: torch.cat([value, theirs[name]], dim=1)[rows, order]
                       for name, value in mine.items() if name in theirs}
        self._state["values"] = values
        if "thumbnails" in self._state:
            self._state["slots"] = torch.arange(self.config.k, device=device).expand_as(order).clone()

    def result(self) -> TopKPatches:
        """The top-k so far, on the CPU."""
        if self._state is None:
            raise ConfigError("no batch was scanned: the top-k is empty")
        state = {name: value.cpu() for name, value in self._in_rank_order().items()}
        thumbs = state.get("thumbnails")
        return TopKPatches(
            values=state["values"], images=state["images"], cells=state["cells"], boxes=state["boxes"],
            latents=state.get("latents"),
            thumbnails=None if thumbs is None else thumbs.permute(0, 1, 3, 4, 2).contiguous().numpy(),
            num_images=self.count, config=self.config,
        )


def _reorder(previous: Tensor, old: Tensor) -> Tensor:
    """previous (P, k, ...) with each row's slots reordered by ``old`` (P, k): one indexed copy (a gather
    with an expanded index would read an int64 index per element, slow for (P, k, 3, t, t) crops)."""
    rows = torch.arange(old.shape[0], device=old.device).unsqueeze(1)
    return previous[rows, old]


def _moved_slots(slots: Tensor, old: Tensor, is_new: Tensor) -> Tensor:
    """Where each rank's crop lies after a merge: a kept patch keeps its slot (``slots`` gathered at ``old``),
    the new winners of a row take the slots its dropped patches freed, in ascending order. All (P, k)."""
    kept = slots.gather(1, old)
    taken = torch.zeros_like(slots).scatter_add_(1, kept, (~is_new).long()) > 0  # (P, k) physical slots in use
    free_first = (~taken).to(torch.uint8).argsort(dim=1, descending=True, stable=True)
    nth_new = (is_new.long().cumsum(dim=1) - 1).clamp(min=0)
    return torch.where(is_new, free_first.gather(1, nth_new), kept)


def _pick(is_new: Tensor, new: Tensor, previous: Tensor, old: Tensor) -> Tensor:
    """Per (P, k) slot: ``new`` where ``is_new`` else ``previous`` gathered at ``old``; trailing dims kept."""
    extra = previous.shape[2:]
    index = old.view(*old.shape, *([1] * len(extra))).expand(*old.shape, *extra)
    kept = previous.gather(1, index)
    mask = is_new.view(*is_new.shape, *([1] * len(extra)))
    return torch.where(mask, new, kept)


def cell_boxes(cells: Tensor, map_size: tuple[int, int], image_size: tuple[int, int], scale: float) -> Tensor:
    """Map cells (..., 2) (row, col) -> pixel boxes (..., 4) (y0, y1, x0, x1), see the module docstring."""
    (h, w), (height, width) = map_size, image_size
    cell_h, cell_w = height / h, width / w
    cy = (cells[..., 0].double() + 0.5) * cell_h
    cx = (cells[..., 1].double() + 0.5) * cell_w
    half_h, half_w = scale * cell_h / 2, scale * cell_w / 2
    y0 = (cy - half_h).floor().clamp(0, height - 1)
    y1 = (cy + half_h).ceil().clamp(1, height)
    x0 = (cx - half_w).floor().clamp(0, width - 1)
    x1 = (cx + half_w).ceil().clamp(1, width)
    return torch.stack([y0, y1, x0, x1], dim=-1).long()


def topk_patches(model: PrototypeModel, batches: Iterable[Any], config: TopKConfig = TopKConfig(),
                 total: int | None = None, progress: Progress | None = None) -> TopKPatches:
    """Top-k most activating patches of each of the model's P prototypes over ``batches``."""
    accumulator = TopKAccumulator(config)
    run_pass(model, batches, [accumulator], progress, total=total, stage="top-k patches")
    return accumulator.result()
