"""Local characteristic importance: how much each modification lowers a prototype's similarity.

For image x, prototype j and modification m (Nauta et al.):
    l*_j = argmax of j's similarity map on x (the first maximum in row-major order),
    s_j(x) = that maximum, s_j(x_m) = j's similarity on the modified image at the *same* l*_j,
    Delta_{j,m}(x) = s_j(x) - s_j(x_m)   (no absolute value, no normalisation).
The modifications are the registered characteristics (:mod:`protoviz.explain.characteristics`).
With ``region='whole'`` the original and all its modified versions of a batch go through ONE batched
forward shared by all prototypes. With another registered region (``inside`` / ``outside`` the
prototype's high-activation box, ``focus`` / ``dual`` weighted by its heatmap) the modification is
blended in per prototype, so the images differ per prototype: a first forward of the originals finds
the maps, a second forward runs the per-prototype images (B * K * M of them) — meant for a few
prototypes at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protoviz.data.transforms import normalize, to_uint8_image, to_unit_tensor
from protoviz.errors import ConfigError
from protoviz.explain.characteristics import RegionContext, get_region
from protoviz.explain.modifications_fast import modify_fast, prepare_cpu_modifications, texture_backend
from protoviz.explain.modifications_reference import modify_reference
from protoviz.explain.params import ExplainConfig
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeModel


@dataclass(frozen=True)
class LocalExplanation:
    """Characteristic importance for a batch of B images and K prototypes, on the CPU.

    characteristics: the M modification names, in the order of dimension 1 of ``modified``.
    prototypes: (K,) prototype indices the last dimension refers to (all P unless a subset was asked).
    similarities: (B, K) s_j(x), the maximum of each map. modified: (B, M, K) s_j(x_m) at l*_j.
    locations: (B, K, 2) (row, col) of l*_j in the similarity map. logits: (B, C) of the originals.
    boxes: (B, K, 4) (y0, y1, x0, x1) high-activation box in input pixels, or None (whole images).
    unit: (B, 1 + M, 3, H, W) original then modified images in [0, 1] when kept (whole images only).
    maps: (B, K, h, w) the originals' similarity maps when kept (whole images only).
    weights: (B, K, H, W) the share of the modified image in each pixel per prototype (regions other
        than ``whole``), or None.
    """

    characteristics: tuple[str, ...]
    prototypes: Tensor
    similarities: Tensor
    modified: Tensor
    locations: Tensor
    logits: Tensor
    config: ExplainConfig
    boxes: Tensor | None = None
    unit: Tensor | None = None
    maps: Tensor | None = None
    weights: Tensor | None = None

    @property
    def deltas(self) -> Tensor:
        """(B, M, K) Delta = s_j(x) - s_j(x_m)."""
        return self.similarities[:, None, :] - self.modified


def native_scale(images: Sequence[Image.Image], size: tuple[int, int]) -> Tensor:
    """(B, 2) input size / native size for (y, x) of each PIL image."""
    return torch.tensor([[size[0] / im.height, size[1] / im.width] for im in images], dtype=torch.float64)


@dataclass(frozen=True)
class PreparedBatch:
    """Images decoded and resized on the CPU, ready for the device.

    unit: (B, 3, H, W) in [0, 1]. modified: (B, M, 3, H, W) already modified (reference mode) or None
    (fast mode modifies on the device). scale: (B, 2) input size / native size for (y, x).
    prepared: name -> (B, 3, H, W) CPU pre-computations of fast characteristics (OpenCV's texture
    filter on the CPU backend).
    """

    unit: Tensor
    modified: Tensor | None
    scale: Tensor
    prepared: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.unit.shape[0])

    def slice(self, start: int, stop: int) -> PreparedBatch:
        part = None if self.modified is None else self.modified[start:stop]
        prepared = {name: value[start:stop] for name, value in self.prepared.items()}
        return PreparedBatch(self.unit[start:stop], part, self.scale[start:stop], prepared)


def prepare_cpu(model: PrototypeModel, images: Sequence[Image.Image], config: ExplainConfig) -> PreparedBatch:
    """The CPU half of :func:`prepare_units` (safe to run on a worker thread while the device computes)."""
    if not images:
        raise ConfigError("explain: expected at least one image, got none")
    spec = model.input_spec
    rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    scale = native_scale(rgb, spec.image_size)
    if config.mode == "reference":
        names, published = config.characteristics, config.path == "published"
        both = torch.stack([to_unit_tensor([im, *modify_reference(im, names, config.params, published)], spec)
                            for im in rgb])
        return PreparedBatch(both[:, 0], both[:, 1:], scale)
    unit = to_unit_tensor(rgb, spec)
    backend = texture_backend(config.fast_texture, model.device)
    prepared = prepare_cpu_modifications(unit, config.characteristics, config.params, scale, config.fast_max_search,
                                         backend)
    return PreparedBatch(unit, None, scale, prepared)


def to_device(model: PrototypeModel, prepared: PreparedBatch, config: ExplainConfig) -> tuple[Tensor, Tensor]:
    """The device half: originals (B, 3, H, W) and modified (B, M, 3, H, W) on the model's device."""
    unit = prepared.unit.to(model.device, non_blocking=True)
    if prepared.modified is not None:
        return unit, prepared.modified.to(model.device, non_blocking=True)
    backend = texture_backend(config.fast_texture, model.device)
    return unit, modify_fast(unit, config.characteristics, config.params, prepared.scale, config.fast_max_search,
                             prepared=prepared.prepared, backend=backend)


def prepare_units(model: PrototypeModel, images: Sequence[Image.Image], config: ExplainConfig) -> tuple[Tensor, Tensor]:
    """RGB images -> originals (B, 3, H, W) and modified (B, M, 3, H, W) in [0, 1] on the model's device.

    reference: PIL / OpenCV on each whole image at native size, then the model's resize.
    fast: the model's resize first, then batched tensor modifications on the device.
    """
    return to_device(model, prepare_cpu(model, images, config), config)


def values_at(maps: Tensor, index: Tensor) -> Tensor:
    """maps (..., P, h, w) and flat indices (B, P) broadcast over the middle dims -> (..., P)."""
    flat = maps.flatten(-2)
    shape = (index.shape[0],) + (1,) * (flat.dim() - 3) + (index.shape[1], 1)
    return flat.gather(-1, index.view(shape).expand(*flat.shape[:-1], 1)).squeeze(-1)


@torch.no_grad()
def explain_units(model: PrototypeModel, unit: Tensor, modified: Tensor, config: ExplainConfig,
                  prototypes: Sequence[int] | None = None, keep_images: bool = False,
                  names: tuple[str, ...] | None = None) -> LocalExplanation:
    """Local explanation from prepared images: unit (B, 3, H, W), modified (B, M, 3, H, W) in [0, 1].

    names: the M modification names when they are not ``config.characteristics``.
    """
    batch, count = unit.shape[0], modified.shape[1]
    names = names or config.characteristics
    if len(names) != count:
        raise ConfigError(f"explain: {count} modified images per image but {len(names)} names {names}")
    if config.region != "whole":
        return _explain_region(model, unit, modified, config, prototypes, names)
    stacked = torch.cat([unit[:, None], modified], dim=1).flatten(0, 1)
    similarity, logits = _forward_chunks(model, _normalize_copy(stacked, model, keep_images), batch)
    maps = similarity.view(batch, 1 + count, *similarity.shape[1:])
    selected = _selection(model, prototypes, maps.device)
    maps = maps[:, :, selected]
    original, changed = maps[:, 0], maps[:, 1:]
    index = original.flatten(-2).argmax(dim=-1)  # (B, K): torch returns the first maximum
    width = original.shape[-1]
    return LocalExplanation(
        characteristics=names, prototypes=selected.cpu(),
        similarities=values_at(original, index).float().cpu(), modified=values_at(changed, index).float().cpu(),
        locations=torch.stack([index // width, index % width], dim=-1).cpu(),
        logits=logits.view(batch, 1 + count, -1)[:, 0].float().cpu(), config=config,
        unit=stacked.view(batch, 1 + count, *unit.shape[1:]).cpu() if keep_images else None,
        maps=original.float().cpu() if keep_images else None)


def _forward_chunks(model: PrototypeModel, images: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """Similarity maps (N, P, h, w) and logits (N, C) of normalised images (N, 3, H, W). On the CPU the
    forward runs ``chunk`` images at a time (the caller's batch: a CPU forward of 7 B images costs more
    per image than 7 forwards of B, measured 2.9 vs 1.9 ms per 128 px image on the tiny demo model); on
    an accelerator in one call."""
    if images.device.type != "cpu" or images.shape[0] <= chunk:
        output = model(images)
        return output.similarity_maps, output.logits
    outputs = [model(part) for part in images.split(max(1, chunk))]
    return torch.cat([o.similarity_maps for o in outputs]), torch.cat([o.logits for o in outputs])


def _normalize_copy(stacked: Tensor, model: PrototypeModel, keep: bool) -> Tensor:
    """The model's normalisation, in place unless the unit images are kept for display."""
    if keep:
        return normalize(stacked, model.input_spec)
    spec = model.input_spec
    mean = torch.tensor(spec.mean, dtype=stacked.dtype, device=stacked.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=stacked.dtype, device=stacked.device).view(1, 3, 1, 1)
    return stacked.sub_(mean).div_(std)


def explain_images(model: PrototypeModel, images: Sequence[Image.Image], config: ExplainConfig | None = None,
                   prototypes: Sequence[int] | None = None, keep_images: bool = False) -> LocalExplanation:
    """Local explanation of RGB images for all prototypes (or ``prototypes``), see the module doc."""
    config = config or ExplainConfig()
    unit, modified = prepare_units(model, images, config)
    return explain_units(model, unit, modified, config, prototypes, keep_images)


def _selection(model: PrototypeModel, prototypes: Sequence[int] | None, device: torch.device) -> Tensor:
    total = model.num_prototypes
    if prototypes is None:
        return torch.arange(total, device=device)
    chosen = [int(j) for j in prototypes]
    bad = [j for j in chosen if not 0 <= j < total]
    if bad or not chosen:
        raise ConfigError(f"explain: prototype indices must be within [0, {total}), got {chosen}")
    return torch.tensor(chosen, device=device)


def high_activation_masks(maps: Tensor, size: tuple[int, int], percentile: float) -> tuple[Tensor, Tensor]:
    """Similarity maps (B, K, h, w) -> boxes (B, K, 4) of the upsampled maps' ``percentile`` region, and
    the boxes as masks (B, K, 1, H, W) bool."""
    boxes = percentile_boxes(upsample_maps(maps.float(), size), percentile)
    ys = torch.arange(size[0], device=maps.device).view(1, 1, -1, 1)
    xs = torch.arange(size[1], device=maps.device).view(1, 1, 1, -1)
    inside = ((ys >= boxes[..., 0, None, None]) & (ys < boxes[..., 1, None, None])
              & (xs >= boxes[..., 2, None, None]) & (xs < boxes[..., 3, None, None]))
    return boxes, inside[:, :, None]


def _explain_region(model: PrototypeModel, unit: Tensor, modified: Tensor, config: ExplainConfig,
                    prototypes: Sequence[int] | None, names: tuple[str, ...]) -> LocalExplanation:
    """Per-prototype perturbation: originals first (maps, boxes, the region's weights), then (B, K, M)
    blended images ``w * modified + (1 - w) * original``."""
    batch, count = modified.shape[:2]
    selected = _selection(model, prototypes, unit.device)
    first = model(normalize(unit, model.input_spec))
    original = first.similarity_maps[:, selected]  # (B, K, h, w)
    boxes, _ = high_activation_masks(original, (int(unit.shape[-2]), int(unit.shape[-1])), config.percentile)
    region = get_region(config.region)
    if region.weights is None:
        raise ConfigError(f"region {config.region!r} has no per-prototype weights")
    weights = region.weights(RegionContext(model, unit, original, selected, config)).to(unit.dtype)  # (B, K, 1, H, W)
    w = weights[:, :, None]  # (B, K, 1, 1, H, W)
    blended = w * modified[:, None] + (1.0 - w) * unit[:, None, None]  # (B, K, M, 3, H, W)
    k = selected.numel()
    maps = model(normalize(blended.flatten(0, 2), model.input_spec)).similarity_maps
    maps = maps.view(batch, k, count, *maps.shape[1:])  # (B, K, M, P, h, w)
    own = maps.gather(3, selected.view(1, k, 1, 1, 1, 1).expand(batch, k, count, 1, *maps.shape[-2:])).squeeze(3)
    index = original.flatten(-2).argmax(dim=-1)  # (B, K)
    changed = own.permute(0, 2, 1, 3, 4)  # (B, M, K, h, w)
    width = original.shape[-1]
    return LocalExplanation(
        characteristics=names, prototypes=selected.cpu(),
        similarities=values_at(original, index).float().cpu(), modified=values_at(changed, index).float().cpu(),
        locations=torch.stack([index // width, index % width], dim=-1).cpu(), logits=first.logits.float().cpu(),
        config=config, boxes=boxes.cpu(), weights=weights[:, :, 0].float().cpu())


def top_prototype(model: PrototypeModel, similarities: Tensor, class_index: int) -> int:
    """The prototype contributing most to class ``class_index``: argmax over j of s_j(x) * w_{c,j} among
    the prototypes of that class (all prototypes if none belongs to it). similarities: (P,)."""
    if not 0 <= class_index < model.num_classes:
        raise ConfigError(f"class index must be within [0, {model.num_classes}), got {class_index}")
    weights = model.class_weights[class_index].detach().float().cpu()
    contribution = similarities.float().cpu() * weights
    own = model.prototype_class_identity[:, class_index].detach().cpu() > 0
    if bool(own.any()):
        contribution = torch.where(own, contribution, torch.full_like(contribution, -float("inf")))
    return int(contribution.argmax())


def prototype_box(local: LocalExplanation, image: int, column: int, percentile: float | None = None) -> tuple[int, ...]:
    """(y0, y1, x0, x1) high-activation box of prototype column ``column`` on image ``image``, in input
    pixels: the stored box (region mode) or the percentile box of the kept similarity map."""
    if local.boxes is not None:
        return tuple(int(v) for v in local.boxes[image, column].tolist())
    if local.maps is None or local.unit is None:
        raise ConfigError("prototype_box needs an explanation computed with keep_images=True")
    size = (int(local.unit.shape[-2]), int(local.unit.shape[-1]))
    boxes, _ = high_activation_masks(local.maps[image, column][None, None], size,
                                     local.config.percentile if percentile is None else percentile)
    return tuple(int(v) for v in boxes[0, 0].tolist())


def modified_pictures(local: LocalExplanation, image: int, box: tuple[int, ...] | None = None,
                      region: str = "whole", weights: Tensor | None = None) -> list[np.ndarray]:
    """The original and its M modified images as (H, W, 3) uint8; with ``region`` inside / outside the
    modification is shown only inside / outside ``box``, as a region-only run applies it; with
    ``weights`` (H, W) in [0, 1] (a focus / dual run's ``LocalExplanation.weights[b, k]``) it is blended
    in with those weights."""
    if local.unit is None:
        raise ConfigError("modified_pictures needs an explanation computed with keep_images=True")
    stack = local.unit[image]  # (1 + M, 3, H, W)
    if weights is not None:
        w = weights.to(stack.dtype)[None, None]
        stack = torch.cat([stack[:1], w * stack[1:] + (1.0 - w) * stack[:1]])
    elif region != "whole" and box is not None:
        y0, y1, x0, x1 = box
        inside = torch.zeros(stack.shape[-2:], dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        keep = inside if region == "inside" else ~inside
        stack = torch.cat([stack[:1], torch.where(keep, stack[1:], stack[:1])])
    return [to_uint8_image(picture) for picture in stack]
