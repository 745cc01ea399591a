"""How far to trust a heatmap method: sanity checks and faithfulness figures, batched.

- :func:`randomisation_check` (Adebayo et al. 2018): Spearman rank correlation between the maps of
  the trained model and of copies whose Conv/Linear layers are re-randomised, cascading from the top
  or one group at a time. A method whose maps do not change when the model's knowledge is destroyed
  fails (mean rho >= ``threshold`` on the most randomised model).
- :func:`perturbation_curves` (Petsiuk et al. 2018, RISE): the prototype's similarity as pixels are
  deleted (replaced by a baseline) or inserted (revealed on a baseline) in heatmap order, in ``steps``
  equal steps, as a fraction of its similarity on the original image; areas under the curves
  (deletion: lower is better; insertion: higher).
- :func:`mask_relevance`: on images with part masks (the synthetic set), the share of heatmap mass
  inside the part the prototype is about and inside the object (pointing-game style "energy" share).

Sharing a model: each check takes an optional ``lock`` (e.g. a :class:`~protoviz.locking.ModelLock`)
and holds it only around each use of the shared model (one heatmap batch, one chunk of perturbed
images, the copy of the model that is then re-randomised), never for a whole check; the re-randomised
copies are private and run without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.errors import ConfigError
from protoviz.heatmaps.methods import HeatmapOptions, compute_heatmaps
from protoviz.heatmaps.methods.randomise import parameterised_layers, randomised_copy
from protoviz.heatmaps.methods.registry import prototype_rows
from protoviz.models.base import PrototypeModel
from protoviz.progress import Progress

MethodLike = str | Callable[[PrototypeModel, Tensor, Tensor], Tensor]
Lock = AbstractContextManager[Any] | None


def guarded(lock: Lock) -> AbstractContextManager[Any]:
    """``lock`` itself, or a context that does nothing when there is none."""
    return lock if lock is not None else nullcontext()


def run_method(method: MethodLike, model: PrototypeModel, images: Tensor, indices: Tensor,
               options: HeatmapOptions | None = None) -> Tensor:
    """A registered method by name, or any callable (model, images, indices (B, K)) -> (B, K, H, W)."""
    if isinstance(method, str):
        return compute_heatmaps(method, model, images, indices, options)
    return method(model, images, indices).detach()


# ----- rank correlation ---------------------------------------------------------------------
def _ranks(values: Tensor) -> Tensor:
    """Average ranks along the last dimension (ties share their mean rank), float64."""
    values = values.double()
    order = values.argsort(dim=-1, stable=True)
    sorted_values = values.gather(-1, order)
    n = values.shape[-1]
    positions = torch.arange(n, dtype=torch.float64, device=values.device).expand_as(values)
    new_group = torch.ones_like(sorted_values, dtype=torch.bool)
    new_group[..., 1:] = sorted_values[..., 1:] != sorted_values[..., :-1]
    group = new_group.long().cumsum(-1) - 1
    sums = torch.zeros_like(positions).scatter_add_(-1, group, positions)
    counts = torch.zeros_like(positions).scatter_add_(-1, group, torch.ones_like(positions))
    mean_rank = (sums / counts.clamp(min=1)).gather(-1, group)
    return torch.empty_like(mean_rank).scatter_(-1, order, mean_rank)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rho between maps a and b (..., H, W) over pixels -> (...).

    A constant map has no ranking: rho is 1 where both maps are equal, 0 otherwise.
    """
    ra, rb = _ranks(a.flatten(-2)), _ranks(b.flatten(-2))
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    denominator = (ra.norm(dim=-1) * rb.norm(dim=-1))
    rho = (ra * rb).sum(-1) / denominator.clamp(min=1e-300)
    equal = (a.flatten(-2) == b.flatten(-2)).all(-1)
    return torch.where(denominator > 0, rho, equal.double())


# ----- model-parameter randomisation ----------------------------------------------------------
@dataclass(frozen=True)
class RandomisationConfig:
    """stages: groups of Conv/Linear layers; mode: 'cascading' (top 1..S groups randomised together)
    or 'independent' (one group at a time); threshold: a method passes if mean rho < threshold."""

    stages: int = 4
    mode: str = "cascading"
    seed: int = 1
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.stages < 1 or self.mode not in ("cascading", "independent") or not -1 <= self.threshold <= 1:
            raise ConfigError(f"RandomisationConfig: expected stages >= 1, mode 'cascading'|'independent', "
                              f"threshold in [-1, 1]; got {self}")


@dataclass(frozen=True)
class RandomisationResult:
    """rho: (S, B, K) per stage; stage_labels; layers: the layer names randomised at each stage."""

    method: str
    config: RandomisationConfig
    stage_labels: list[str]
    layers: list[list[str]]
    rho: np.ndarray

    @property
    def mean_rho(self) -> np.ndarray:
        """(S,) mean rho per stage."""
        return self.rho.reshape(self.rho.shape[0], -1).mean(axis=1)

    @property
    def score(self) -> float:
        """The number compared with the threshold: last stage (cascading) or mean over stages (independent)."""
        return float(self.mean_rho[-1] if self.config.mode == "cascading" else self.mean_rho.mean())

    @property
    def passed(self) -> bool:
        return self.score < self.config.threshold


def randomisation_stages(model: PrototypeModel, config: RandomisationConfig) -> tuple[list[str], list[list[str]]]:
    """Labels and layer names per stage: groups of Conv/Linear layers counted from the output side."""
    names = parameterised_layers(model)
    if not names:
        raise ConfigError(f"the {model.family} model has no Conv/Linear layer to randomise")
    stages = min(config.stages, len(names))
    bounds = [round(i * len(names) / stages) for i in range(stages + 1)]
    top_first = names[::-1]
    groups = [top_first[bounds[i]:bounds[i + 1]] for i in range(stages)]
    layers: list[list[str]]
    if config.mode == "cascading":
        layers = [[name for group in groups[:i + 1] for name in group] for i in range(stages)]
        labels = [f"top {len(ls)}/{len(names)} layers" for ls in layers]
    else:
        layers = groups
        labels = [f"{g[-1]} .. {g[0]}" if len(g) > 1 else g[0] for g in groups]
    return labels, layers


def randomisation_check(method: MethodLike, model: PrototypeModel, images: Tensor, prototype_indices: Tensor,
                        config: RandomisationConfig | None = None, options: HeatmapOptions | None = None,
                        progress: Progress | None = None, *, lock: Lock = None,
                        reference: Tensor | None = None) -> RandomisationResult:
    """Rank correlation of ``method``'s maps on the trained model vs re-randomised copies.

    images: (B, 3, H, W) normalised; prototype_indices: (K,) or (B, K). Returns rho (S, B, K).
    ``reference``: the method's maps (B, K, H, W) on the trained model when already computed.
    ``lock`` is held while the shared model runs or is copied, not while its private copies run.
    """
    config = config or RandomisationConfig()
    indices = prototype_rows(prototype_indices, images.shape[0], model.num_prototypes, model.device)
    if reference is None:
        with guarded(lock):
            reference = run_method(method, model, images, indices, options)
    labels, layers = randomisation_stages(model, config)
    rhos = []
    for i, names in enumerate(layers):
        if progress:
            progress(i, len(layers), f"randomisation: {labels[i]}")
        with guarded(lock):
            clone = randomised_copy(model, names, config.seed)
        maps = run_method(method, clone, images, indices, options)
        del clone
        rhos.append(spearman(reference, maps).cpu().numpy())
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return RandomisationResult(name, config, labels, layers, np.stack(rhos))


# ----- deletion / insertion ---------------------------------------------------------------------
@dataclass(frozen=True)
class PerturbationConfig:
    """steps: curve points after the original; baselines: 'mean' (per-image channel mean) or 'blur'
    (Gaussian, sigma = blur_sigma * image side); score: 'max' (the prototype's max similarity, what the
    head uses) or 'location' (its similarity at the cell where the original image peaked)."""

    steps: int = 16
    deletion_baseline: str = "mean"
    insertion_baseline: str = "blur"
    blur_sigma: float = 0.05
    score: str = "max"

    def __post_init__(self) -> None:
        ok = (self.steps >= 1 and {self.deletion_baseline, self.insertion_baseline} <= {"mean", "blur"}
              and self.score in ("max", "location") and self.blur_sigma > 0)
        if not ok:
            raise ConfigError(f"PerturbationConfig: expected steps >= 1, baselines 'mean'|'blur', score "
                              f"'max'|'location', blur_sigma > 0; got {self}")


@dataclass(frozen=True)
class PerturbationCurves:
    """fractions (T+1,) of pixels changed; deletion / insertion (B, K, T+1) scores as a fraction of the
    original image's score; *_auc (B, K); NaN where the original score is not positive."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    config: PerturbationConfig = field(default_factory=PerturbationConfig)


def baseline_images(images: Tensor, kind: str, blur_sigma: float) -> Tensor:
    """(B, 3, H, W) -> the baseline each pixel is replaced by: channel means or a Gaussian blur."""
    if kind == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    sigma = max(0.5, blur_sigma * max(images.shape[-2:]))
    radius = min(math.ceil(3 * sigma), (min(images.shape[-2:]) - 1) // 2)
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-x * x / (2 * sigma * sigma))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), kernel, groups=3)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), kernel.transpose(2, 3), groups=3)


def _pixel_ranks(maps: Tensor) -> Tensor:
    """(N, H, W) -> (N, H*W) rank of each pixel in descending heatmap order (0 = most relevant)."""
    flat = maps.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def _scores(model: PrototypeModel, rows: Tensor, prototypes: Tensor, cells: Tensor | None) -> Tensor:
    with torch.no_grad():
        maps = model.similarity_maps(rows)[torch.arange(rows.shape[0], device=rows.device), prototypes]
    if cells is None:
        return maps.flatten(1).amax(dim=1)
    return maps.flatten(1).gather(1, cells[:, None]).squeeze(1)


def _curve(model: PrototypeModel, images: Tensor, baseline: Tensor, ranks: Tensor, indices: Tensor,
           cells: Tensor | None, steps: int, insert: bool, batch_rows: int, lock: Lock = None,
           progress: Progress | None = None) -> Tensor:
    """Scores (B*K, T+1) as the top fraction t/T of pixels is replaced (deletion) or revealed (insertion);
    ``lock`` held around each chunk of ``batch_rows`` images, ``progress(rows done, rows, stage)`` after it."""
    b, k = indices.shape
    n_pixels = ranks.shape[1]
    counts = torch.tensor([round(t * n_pixels / steps) for t in range(steps + 1)], device=images.device)
    total = b * k * (steps + 1)
    out = torch.empty(total, device=images.device)
    for start in range(0, total, batch_rows):
        r = torch.arange(start, min(total, start + batch_rows), device=images.device)
        pair, t = r // (steps + 1), r % (steps + 1)
        changed = (ranks[pair] < counts[t][:, None]).view(-1, 1, *images.shape[-2:]).to(images.dtype)
        image, base = images[pair // k], baseline[pair // k]
        keep = changed if insert else 1 - changed
        rows = image * keep + base * (1 - keep)
        with guarded(lock):
            out[r] = _scores(model, rows, indices.reshape(-1)[pair], None if cells is None else cells[pair])
        if progress:
            progress(min(total, start + batch_rows), total, "insertion" if insert else "deletion")
    return out.view(b * k, steps + 1)


def _relative(curve: Tensor, original: Tensor) -> Tensor:
    """Curves (N, T+1) divided by each row's original score (N,); NaN rows where that score is <= 0.

    Relative to the original score rather than rescaled between the curve's end points: many prototypes
    still respond to a blank or blurred image, and rescaling by a small end-point gap would blow up noise.
    """
    ok = original > 1e-12
    relative = curve / torch.where(ok, original, torch.ones_like(original))[:, None]
    return torch.where(ok[:, None], relative, torch.full_like(relative, float("nan")))


def perturbation_curves(model: PrototypeModel, images: Tensor, prototype_indices: Tensor, maps: Tensor,
                        config: PerturbationConfig | None = None, batch_rows: int = 64, *, lock: Lock = None,
                        progress: Progress | None = None) -> PerturbationCurves:
    """Deletion and insertion curves of each prototype's score along ``maps`` (B, K, H, W).

    Scores are fractions of the score on the original image: deletion starts at 1 and insertion ends
    at 1; AUC is the trapezoid area over the fractions [0, 1] of pixels changed. The similarity kinds of
    the prototype families are positive for the prototypes that an image activates; a non-positive
    original score gives NaN. ``lock`` is held around each chunk of ``batch_rows`` perturbed images;
    ``progress`` is called after each chunk (so a stop request ends the work there).
    """
    config = config or PerturbationConfig()
    images = images.to(model.device)
    indices = prototype_rows(prototype_indices, images.shape[0], model.num_prototypes, images.device)
    if maps.shape != (*indices.shape, *images.shape[-2:]):
        raise ConfigError(f"maps must have shape {(*indices.shape, *images.shape[-2:])}, got {tuple(maps.shape)}")
    ranks = _pixel_ranks(maps.to(images.device).flatten(0, 1))
    cells = None
    if config.score == "location":
        with torch.no_grad(), guarded(lock):
            sims = model.similarity_maps(images)
        cells = torch.gather(sims.flatten(2), 1, indices[:, :, None].expand(-1, -1, sims[0, 0].numel())).argmax(-1)
        cells = cells.reshape(-1)
    curves = []
    for kind, insert in ((config.deletion_baseline, False), (config.insertion_baseline, True)):
        base = baseline_images(images, kind, config.blur_sigma)
        curves.append(_curve(model, images, base, ranks, indices, cells, config.steps, insert, batch_rows, lock,
                             progress))
    deletion = _relative(curves[0], curves[0][:, 0])
    insertion = _relative(curves[1], curves[1][:, -1])
    fractions = np.linspace(0.0, 1.0, config.steps + 1)
    shape = (*indices.shape, config.steps + 1)
    del_np, ins_np = deletion.view(shape).cpu().double().numpy(), insertion.view(shape).cpu().double().numpy()
    return PerturbationCurves(fractions, del_np, ins_np, np.trapezoid(del_np, fractions, axis=-1),
                              np.trapezoid(ins_np, fractions, axis=-1), config)


# ----- relevance against ground-truth masks ---------------------------------------------------
def normalise_maps(maps: Tensor, signed: bool = False) -> Tensor:
    """Each map (..., H, W) scaled to [0, 1] as overlays show it: min-max, or for ``signed`` maps
    (relevance, where negative = evidence against) the positive part over its max. A constant map
    (or a signed map with no positive part) becomes uniform 1: it points nowhere in particular."""
    if signed:
        maps = maps.clamp(min=0)
        low = torch.zeros_like(maps.flatten(-2)[..., :1, None])
    else:
        low = maps.flatten(-2).amin(-1)[..., None, None]
    high = maps.flatten(-2).amax(-1)[..., None, None]
    span = high - low
    return torch.where(span > 0, (maps - low) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.ones_like(maps))


@dataclass(frozen=True)
class MaskRelevance:
    """(B, K) arrays: share of normalised heatmap mass inside the prototype's part / the object, and
    the area fraction of that part / the object (what a uniform map would score). NaN where the part
    is unknown or absent from the image."""

    part_share: np.ndarray
    object_share: np.ndarray
    part_area: np.ndarray
    object_area: np.ndarray


def mask_relevance(maps: Tensor, part_masks: Tensor, prototype_parts: Tensor, signed: bool = False) -> MaskRelevance:
    """maps (B, K, H, W), part_masks (B, H, W) int (0 = background, k = part id) at the maps' size,
    prototype_parts (K,) or (B, K) part ids (<= 0: unknown) -> :class:`MaskRelevance`.
    Mass is :func:`normalise_maps` (``signed``: the positive part only)."""
    if part_masks.shape != (maps.shape[0], *maps.shape[-2:]):
        raise ConfigError(f"part masks must have shape {(maps.shape[0], *maps.shape[-2:])}, "
                          f"got {tuple(part_masks.shape)}")
    masks = part_masks.to(maps.device).long()
    parts = torch.as_tensor(prototype_parts, device=maps.device).long()
    parts = parts.expand(maps.shape[0], -1) if parts.dim() == 1 else parts
    mass = normalise_maps(maps.double(), signed)
    total = mass.flatten(2).sum(-1)
    in_part = (masks[:, None] == parts[:, :, None, None]) & (parts[:, :, None, None] > 0)
    in_object = (masks > 0)[:, None].expand_as(in_part)
    part_area = in_part.flatten(2).double().mean(-1)
    part_share = (mass * in_part).flatten(2).sum(-1) / total
    nan = torch.full_like(part_share, float("nan"))
    part_share = torch.where(part_area > 0, part_share, nan)
    object_share = (mass * in_object).flatten(2).sum(-1) / total
    return MaskRelevance(part_share.cpu().numpy(), object_share.cpu().numpy(),
                         torch.where(part_area > 0, part_area, nan).cpu().numpy(),
                         in_object.flatten(2).double().mean(-1).cpu().numpy())


def assign_prototype_parts(model: PrototypeModel, images: Tensor, part_masks: Tensor,
                           prototypes: Tensor | list[int], top_n: int = 5, percentile: float = 95.0,
                           lock: Lock = None) -> Tensor:
    """The part each prototype is about: (K,) part ids (0 = background/none).

    For each prototype, among ``images`` (B, 3, H, W) with ``part_masks`` (B, H, W), its ``top_n``
    most similar images; on each, the 95th-percentile box of its upsampled similarity map; the part id
    covering most box pixels summed over those images. Because the box comes from the upsampled map,
    this choice favours ``upsample`` in :func:`mask_relevance`; pass your own part ids when you know them.
    """
    from protoviz.heatmaps.boxes import percentile_boxes

    prototypes = torch.as_tensor(prototypes, dtype=torch.long, device=model.device)
    images = images.to(model.device)
    masks = part_masks.to(model.device).long()
    with guarded(lock):
        maps = compute_heatmaps("upsample", model, images, prototypes)  # (B, K, H, W)
        with torch.no_grad():
            pooled = model(images).max_similarities[:, prototypes]  # (B, K)
    top = pooled.topk(min(top_n, images.shape[0]), dim=0).indices  # (n, K)
    boxes = percentile_boxes(maps, percentile)  # (B, K, 4) y0, y1, x0, x1
    n_parts = int(masks.max()) + 1
    ys = torch.arange(images.shape[2], device=masks.device)
    xs = torch.arange(images.shape[3], device=masks.device)
    box = boxes[top, torch.arange(len(prototypes), device=top.device)]  # (n, K, 4)
    y, x = ys[None, None, :, None], xs[None, None, None, :]
    inside = ((y >= box[..., 0, None, None]) & (y < box[..., 1, None, None])
              & (x >= box[..., 2, None, None]) & (x < box[..., 3, None, None]))
    slot = masks[top] + n_parts * torch.arange(len(prototypes), device=masks.device)[None, :, None, None]
    votes = torch.zeros(len(prototypes) * n_parts, device=masks.device)
    votes = votes.scatter_add_(0, slot.flatten(), inside.flatten().float()).view(len(prototypes), n_parts)
    votes[:, 0] = 0  # background is not a part
    return torch.where(votes.sum(1) > 0, votes.argmax(1), torch.zeros_like(votes[:, 0], dtype=torch.long))
