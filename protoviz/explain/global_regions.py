"""Dataset-wide explanations with the modification placed per prototype (regions other than ``whole``).

With ``region`` ``inside`` / ``outside`` (the prototype's high-activation box), ``focus`` / ``dual``
(weighted by its heatmap of ``config.heatmap_method``), each prototype sees its own modified images:
for image x, prototype j and modification m the model sees ``w_j * x_m + (1 - w_j) * x`` with w_j the
region's weights on x, exactly as a local region explanation (:func:`protoviz.explain.local.explain_units`).
Delta and the global weighted mean are then the same formulas as for whole images. Each image costs
1 + K * M forwards for K prototypes and M modifications (whole images: 1 + M), so a run names the
prototypes it explains, and the batch is cut so that the similarity maps of one batch's modified images
stay within :data:`MAX_MAP_BYTES`; a run whose single image would not fit is refused with the numbers.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from protoviz.data.transforms import normalize
from protoviz.errors import ConfigError
from protoviz.explain.characteristics import RegionContext, get_region
from protoviz.explain.global_ import GlobalAccumulator
from protoviz.explain.local import to_device, values_at
from protoviz.explain.params import ExplainConfig
from protoviz.models.base import PrototypeModel
from protoviz.passes import Needs, PassBatch, PassStep

MAX_MAP_BYTES = 256 << 20
"""Bound on the similarity maps one batch of a region run holds (its K * M modified images per image)."""
MAX_CHUNK_IMAGES = 64
"""Modified images per forward of a region run."""


def region_prototypes(model: PrototypeModel, prototypes: Sequence[int] | None) -> tuple[int, ...]:
    """The prototypes a region run explains: ``prototypes`` (checked, sorted, unique) or all of them."""
    total = model.num_prototypes
    if prototypes is None:
        return tuple(range(total))
    chosen = sorted({int(j) for j in prototypes})
    if not chosen or not all(0 <= j < total for j in chosen):
        raise ConfigError(f"a region run needs prototype indices within [0, {total}), got {list(prototypes)}")
    return tuple(chosen)


def region_batch_size(model: PrototypeModel, config: ExplainConfig, prototypes: Sequence[int], asked: int,
                      map_shape: tuple[int, int]) -> int:
    """The batch size (at most ``asked``) whose modified images' similarity maps fit :data:`MAX_MAP_BYTES`;
    ConfigError when one image alone does not fit (with how many prototypes would)."""
    per_variant = model.num_prototypes * map_shape[0] * map_shape[1] * 4  # float32 maps of every prototype
    variants = len(prototypes) * len(config.characteristics)
    per_image = per_variant * variants
    if per_image > MAX_MAP_BYTES:
        fits = max(1, MAX_MAP_BYTES // (per_variant * len(config.characteristics)))
        raise ConfigError(f"a dataset-wide '{config.region}' run perturbs each prototype's own region: "
                          f"{len(prototypes)} prototypes x {len(config.characteristics)} modifications = {variants} "
                          f"forwards per image, whose similarity maps take {per_image / (1 << 20):.0f} MB, over the "
                          f"{MAX_MAP_BYTES >> 20} MB a batch may hold. Choose at most {fits} prototypes")
    return max(1, min(asked, MAX_MAP_BYTES // per_image))


@dataclass(frozen=True)
class RegionView:
    """Each batch image's K x M region-modified versions, (B * K * M, 3, H, W) ordered image, prototype,
    modification, normalised, in chunks of at most :data:`MAX_CHUNK_IMAGES`. The weights come from the
    originals' own similarity maps (one extra forward per batch), as in a local region explanation."""

    config: ExplainConfig
    prototypes: tuple[int, ...]
    includes_clean = False

    @property
    def key(self) -> Hashable:
        return ("characteristics-region", self.config, self.prototypes)

    def images(self, batch: PassBatch, model: PrototypeModel) -> Iterator[Tensor]:
        unit, modified = to_device(model, batch.payload, self.config)  # (B, 3, H, W), (B, M, 3, H, W)
        selected = torch.tensor(self.prototypes, device=unit.device)
        maps = model(normalize(unit, model.input_spec)).similarity_maps[:, selected]  # (B, K, h, w)
        region = get_region(self.config.region)
        if region.weights is None:
            raise ConfigError(f"region {self.config.region!r} has no per-prototype weights")
        weights = region.weights(RegionContext(model, unit, maps, selected, self.config)).to(unit.dtype)
        count = modified.shape[1]
        step = max(1, MAX_CHUNK_IMAGES // count)  # prototypes per chunk
        for b in range(unit.shape[0]):
            for start in range(0, selected.numel(), step):
                w = weights[b, start:start + step, None]  # (k, 1, 1, H, W)
                blended = w * modified[b][None] + (1.0 - w) * unit[b][None, None]  # (k, M, 3, H, W)
                yield normalize(blended.flatten(0, 1), model.input_spec)


@dataclass
class RegionAccumulator(GlobalAccumulator):
    """The global sums of a region run: s_j(x) and l*_j from the pass's clean maps, s_j of prototype j's own
    modified images at l*_j (only the rows of the explained prototypes are filled)."""

    region_view: RegionView | None = None

    @property
    def needs(self) -> Needs:
        return Needs(views=(self.region_view,) if self.region_view is not None else ())

    def update(self, step: PassStep) -> None:
        if self.region_view is None:
            raise ConfigError("a region accumulator fed by a pass needs its RegionView")
        prototypes = self.region_view.prototypes
        selected = torch.tensor(prototypes, device=step.maps.device)
        original = step.maps[:, selected]  # (B, K, h, w)
        batch, k, count = original.shape[0], selected.numel(), len(self.characteristics)
        changed = torch.cat(step.view(self.region_view))  # (B * K * M, P, h, w)
        changed = changed.view(batch, k, count, *changed.shape[1:])  # (B, K, M, P, h, w)
        own = changed.gather(3, selected.view(1, k, 1, 1, 1, 1).expand(batch, k, count, 1, *changed.shape[-2:]))
        own = own.squeeze(3).permute(0, 2, 1, 3, 4)  # (B, M, K, h, w)
        index = original.flatten(-2).argmax(dim=-1)  # (B, K): the first maximum
        similarities = values_at(original, index).float().cpu()
        self._add_rows(prototypes, similarities, similarities[:, None, :] - values_at(own, index).float().cpu())


def map_shape(model: PrototypeModel) -> tuple[int, int]:
    """(h, w) of the model's similarity maps at its input size (one forward of a blank image)."""
    height, width = model.input_spec.image_size
    with torch.no_grad():
        maps = model.similarity_maps(torch.zeros(1, 3, height, width, device=model.device))
    return int(maps.shape[-2]), int(maps.shape[-1])
