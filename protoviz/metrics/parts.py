"""Where a prototype fires and which annotated parts lie there: the region and part-hit computations
behind consistency, stability and purity (Huang et al.'s reference, batched).

For one similarity map (h, w) and one image's parts (K, 3) (u, v, visible in model-input pixels):
1. upsample the map to the model input (H, W) with OpenCV's bicubic (:func:`upsample_bicubic`);
2. (r, c) = the first maximum in row-major order;
3. region = rows max(0, r - hy) .. min(H, r + hy), columns max(0, c - hx) .. min(W, c + hx), both ends
   inclusive (the upper bound is H, not H - 1, exactly as the reference's min(224, r + 36));
4. hit[k] = part k visible and r_lo <= v <= r_hi and c_lo <= u <= c_hi.
All of it runs on whole batches of maps as tensor ops on the maps' device.

Exact plateaus: an all-equal map peaks at (0, 0) here (each map is shifted by its maximum before the
float32 products, so it becomes exactly zero); OpenCV's own float32 sums can perturb such a plateau by a
rounding unit and move its argmax elsewhere, so on plateaus the two may differ. On maps without exact
ties both agree (tests/metrics/test_parts.py compares with cv2.resize + np.argmax).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from protoviz.errors import ConfigError, ModelError
from protoviz.heatmaps.upsample import cubic_weights
from protoviz.models.base import PrototypeModel

REFERENCE_SIZE = 224
MAX_CHUNK_PIXELS = 1 << 24  # upsampled pixels held at once (64 MB in float32)


def scaled_half_size(half_size: float, input_size: tuple[int, int], reference_size: int = REFERENCE_SIZE
                     ) -> tuple[int, int]:
    """(hy, hx) = floor(half_size * H / 224 + 0.5), floor(half_size * W / 224 + 0.5): a half_size given
    at the reference's 224 px scaled to the model input, rounded half up (36 at 224, 10 at 64, 21 at 128)."""
    if half_size < 0:
        raise ConfigError(f"half_size must be >= 0, got {half_size}")
    height, width = (math.floor(half_size * s / reference_size + 0.5) for s in input_size)
    return height, width


def upsample_bicubic(maps: Tensor, input_size: tuple[int, int]) -> Tensor:
    """(n, h, w) -> (n, H, W): OpenCV INTER_CUBIC as two matrix products ``W_y @ maps @ W_x^T``.

    The weights are OpenCV's (:func:`protoviz.heatmaps.upsample.cubic_weights`); the products run in
    the maps' dtype (float32 like OpenCV, about 2.5x cheaper than float64 on a CPU and fast on any GPU;
    float64 maps stay float64).
    """
    dtype = maps.dtype if maps.dtype in (torch.float32, torch.float64) else torch.float32
    rows = torch.from_numpy(cubic_weights(maps.shape[-2], input_size[0])).to(maps.device, dtype)
    cols = torch.from_numpy(cubic_weights(maps.shape[-1], input_size[1])).to(maps.device, dtype)
    return rows @ maps.to(dtype) @ cols.t()


def first_argmax(maps: Tensor) -> Tensor:
    """(n, H, W) -> (n, 2) int64 (row, col) of the first maximum in row-major order: the first row holding
    the maximum, then the first column of that row (the same as a flat argmax, but cheaper)."""
    row = maps.amax(dim=2).argmax(dim=1)
    col = maps[torch.arange(maps.shape[0], device=maps.device), row].argmax(dim=1)
    return torch.stack([row, col], dim=1)


def peak_locations(maps: Tensor, input_size: tuple[int, int]) -> Tensor:
    """(n, h, w) maps -> (n, 2) int64 (row, col) of the first maximum of each map upsampled to (H, W).

    Each map is shifted by its own maximum first: bicubic weights sum to one, so the argmax is unchanged,
    but the peak values become small (less float32 rounding where it matters) and an all-equal map
    becomes exactly zero (peak (0, 0)). Upsampling runs in chunks so memory stays bounded.
    """
    maps = maps - maps.flatten(1).amax(dim=1)[:, None, None]
    height, width = input_size
    chunk = max(1, MAX_CHUNK_PIXELS // (height * width))
    peaks = torch.empty(maps.shape[0], 2, dtype=torch.long, device=maps.device)
    for start in range(0, maps.shape[0], chunk):
        peaks[start:start + chunk] = first_argmax(upsample_bicubic(maps[start:start + chunk], input_size))
    return peaks


def part_hits(peaks: Tensor, parts: Tensor, half_size: tuple[int, int], input_size: tuple[int, int]) -> Tensor:
    """Which visible parts lie in the inclusive box around each peak.

    peaks: (n, 2) (row, col). parts: (n, K, 3) (u, v, visible). Returns (n, K) bool.
    """
    hy, hx = half_size
    height, width = input_size
    rows, cols = peaks[:, 0:1].to(parts.dtype), peaks[:, 1:2].to(parts.dtype)
    r_lo, r_hi = (rows - hy).clamp(min=0), (rows + hy).clamp(max=height)
    c_lo, c_hi = (cols - hx).clamp(min=0), (cols + hx).clamp(max=width)
    u, v, visible = parts[..., 0], parts[..., 1], parts[..., 2] > 0
    return visible & (v >= r_lo) & (v <= r_hi) & (u >= c_lo) & (u <= c_hi)


def merge_matrix(part_names: Sequence[str]) -> tuple[Tensor, tuple[str, ...]]:
    """(K, M) 0/1 matrix merging 'left X' and 'right X' into 'X', and the M merged names.

    Names without a left/right prefix map to themselves, so a dataset without sides gives the identity.
    """
    merged: list[str] = []
    columns = []
    for name in part_names:
        base = name
        for side in ("left ", "right "):
            if name.lower().startswith(side):
                base = name[len(side):]
        if base not in merged:
            merged.append(base)
        columns.append(merged.index(base))
    matrix = torch.zeros(len(part_names), len(merged))
    matrix[torch.arange(len(part_names)), torch.tensor(columns, dtype=torch.long)] = 1.0
    return matrix, tuple(merged)


def merge_parts(hits: Tensor, matrix: Tensor | None) -> Tensor:
    """(n, K) bool -> (n, M) bool: a merged part is hit (or visible) when any of its members is."""
    if matrix is None:
        return hits
    return (hits.to(matrix.dtype) @ matrix.to(hits.device)) > 0


def prototype_classes(model: PrototypeModel) -> Tensor:
    """(P, C) bool: the classes whose images each prototype is evaluated on.

    A prototype with exactly one class in ``prototype_class_identity`` (class-specific) gets that class;
    one with several or none, or a model without an identity (ProtoPool, PIP-Net), gets every class
    with a positive ``class_weights`` entry.
    """
    weights = model.class_weights.detach().t() > 0  # (P, C)
    try:
        identity = model.prototype_class_identity.detach().to(weights.device) > 0
    except (ModelError, NotImplementedError):
        return weights
    specific = identity.sum(dim=1) == 1
    return torch.where(specific[:, None], identity, weights)


def select_pairs(labels: Tensor, relevance: Tensor) -> tuple[Tensor, Tensor]:
    """The (image, prototype) pairs to evaluate: labels (B,) in model classes, relevance (P, C) bool.

    Returns image indices (n,) and prototype indices (n,), image-major.
    """
    mask = relevance.t()[labels]  # (B, P)
    pairs = mask.nonzero()
    return pairs[:, 0], pairs[:, 1]
