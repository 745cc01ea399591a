"""The fast modifications: batched tensor operations on unit images (B, 3, H, W) in [0, 1], after resizing.

They run on whatever device the tensors are on and follow the reference definitions:
- contrast / saturation / brightness: the blends of PIL ``ImageEnhance`` with PIL's luma
  L = 0.299 R + 0.587 G + 0.114 B (contrast blends toward the image's mean luma, rounded to a uint8 level
  as PIL does; saturation toward the per-pixel luma; brightness toward black), clipped to [0, 1];
- hue: RGB -> HSV, H + steps / 256 (mod 1), HSV -> RGB, in float (PIL's uint8 HSV round trip is skipped);
- shape: the reference sine warp with its amplitude scaled by (input size / native size) and its period
  scaled likewise, per image and per axis; indices wrap around (gather with modular indices);
- texture: a small non-local-means filter built like OpenCV's ``fastNlMeansDenoisingColored``: the
  image goes to CIELAB on OpenCV's 8-bit scale (from RGB taken as linear, as its ``LBGR2Lab``), L is
  averaged over the search window with weights exp(-d^2 / h^2) where d^2 is the mean squared L
  difference over the template window, a and b likewise with hColor and the (a, b) difference, weights
  under 0.001 are dropped as OpenCV does, and the result goes back to RGB. It differs from OpenCV in
  three ways: the windows are scaled to the input size and the search window is capped
  (``ExplainConfig.fast_max_search``, 7 px by default) for speed, so far-away similar patches are not
  used; and OpenCV's fixed-point weight table is replaced by the exact exponential. Its uint8
  roundings (Lab before and after filtering, RGB at the end) are reproduced: on the synthetic images
  that lossy Lab round trip alone changes pixels by about 0.9 grey levels on average, about half of
  what the whole texture modification changes, so leaving it out would make the modes disagree.
  On the CPU the same filter runs through OpenCV itself (``texture_backend``: ``auto`` picks ``opencv``
  on the CPU, where the tensor version costs more than the seven forward passes, and ``torch`` on an
  accelerator); both use the same scaled and capped windows.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.errors import ConfigError
from protoviz.explain.params import ModificationParams

TEXTURE_BACKENDS: tuple[str, ...] = ("auto", "torch", "opencv")
_LUMA = (0.299, 0.587, 0.114)
_WEIGHT_THRESHOLD = 0.001  # OpenCV's WEIGHT_THRESHOLD for non-local means


def luma(unit: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W), PIL's ITU-R 601-2 luma."""
    weights = torch.tensor(_LUMA, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    return (unit * weights).sum(dim=1, keepdim=True)


def blend(degenerate: Tensor, unit: Tensor, factor: float) -> Tensor:
    """PIL ``Image.blend(degenerate, image, factor)`` clipped to [0, 1]."""
    return (degenerate + factor * (unit - degenerate)).clamp(0.0, 1.0)


def contrast(unit: Tensor, factor: float) -> Tensor:
    """Blend toward a uniform grey at each image's mean luma (rounded to a uint8 level, as PIL)."""
    mean = torch.floor(luma(unit).mean(dim=(1, 2, 3), keepdim=True) * 255.0 + 0.5) / 255.0
    return blend(mean.expand_as(unit), unit, factor)


def saturation(unit: Tensor, factor: float) -> Tensor:
    """Blend toward each pixel's luma."""
    return blend(luma(unit).expand_as(unit), unit, factor)


def brightness(unit: Tensor, factor: float) -> Tensor:
    """Blend toward black."""
    return (unit * factor).clamp(0.0, 1.0)


def rgb_to_hsv(unit: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV with H in [0, 1)."""
    r, g, b = unit.unbind(dim=1)
    maxc, _ = unit.max(dim=1)
    minc, _ = unit.min(dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, torch.remainder(h / 6.0, 1.0), torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([h, s, maxc], dim=1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """(B, 3, H, W) HSV with H in [0, 1) -> RGB in [0, 1]."""
    h, s, v = hsv.unbind(dim=1)
    channels = []
    for n in (5.0, 3.0, 1.0):  # R, G, B of the standard piecewise-linear form
        k = torch.remainder(n + h * 6.0, 6.0)
        channels.append(v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(channels, dim=1)


def hue(unit: Tensor, steps: int) -> Tensor:
    """Shift the hue by ``steps`` of 256 (25 steps = 35.2 degrees), wrapping around."""
    hsv = rgb_to_hsv(unit)
    shifted = torch.remainder(hsv[:, :1] + steps / 256.0, 1.0)
    return hsv_to_rgb(torch.cat([shifted, hsv[:, 1:]], dim=1)).clamp(0.0, 1.0)


def identity(unit: Tensor) -> Tensor:
    """The noise-floor modification: an RGB -> HSV -> RGB round trip (the hue path with no shift)."""
    return hsv_to_rgb(rgb_to_hsv(unit)).clamp(0.0, 1.0)


def _sine_shifts(length: int, amplitude: Tensor, frequency: Tensor) -> Tensor:
    """Per-image shift(t) = trunc(A sin(pi w t)): amplitude, frequency (B,) -> (B, length) int64, computed
    in float64 on the CPU (some accelerators have no float64) so that truncation matches the reference."""
    amplitude, frequency = amplitude.detach().cpu().double(), frequency.detach().cpu().double()
    t = torch.arange(length, dtype=torch.float64)
    return torch.trunc(amplitude[:, None] * torch.sin(math.pi * frequency[:, None] * t[None, :])).long()


def shape(unit: Tensor, amplitude: float, frequency: float, scale: Tensor) -> Tensor:
    """Sine warp with per-image scale (B, 2) = (input / native) for (y, x); rows first, then columns."""
    batch, channels, height, width = unit.shape
    scale = scale.detach().cpu().double()
    sy, sx = scale[:, 0], scale[:, 1]
    row_shift = _sine_shifts(height, amplitude * sx, frequency / sy).to(unit.device)  # (B, H): shift of row i
    col_shift = _sine_shifts(width, amplitude * sy, frequency / sx).to(unit.device)  # (B, W): shift of column j
    xs = torch.arange(width, device=unit.device)
    ys = torch.arange(height, device=unit.device)
    x_src = torch.remainder(xs[None, None, :] - row_shift[:, :, None], width)  # (B, H, W)
    out = unit.gather(3, x_src[:, None].expand(batch, channels, height, width))
    y_src = torch.remainder(ys[None, :, None] - col_shift[:, None, :], height)  # (B, H, W)
    return out.gather(2, y_src[:, None].expand(batch, channels, height, width))


_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)


def rgb_to_lab8(unit: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1], taken as linear (OpenCV's ``COLOR_LBGR2Lab``, the conversion its
    coloured non-local means uses) -> CIELAB on OpenCV's 8-bit scale (L * 255 / 100, a + 128, b + 128)."""
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=unit.dtype, device=unit.device)
    white = torch.tensor(_WHITE, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, unit) / white
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(dim=1)
    light = torch.where(xyz[:, 1] > 0.008856, 116.0 * fy - 16.0, 903.3 * xyz[:, 1])
    return torch.stack([light * 255.0 / 100.0, 500.0 * (fx - fy) + 128.0, 200.0 * (fy - fz) + 128.0], dim=1)


def lab8_to_rgb(lab: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_lab8`: (B, 3, H, W) 8-bit-scale CIELAB -> linear RGB in [0, 1]."""
    light = lab[:, 0] * 100.0 / 255.0
    fy = (light + 16.0) / 116.0
    fx = fy + (lab[:, 1] - 128.0) / 500.0
    fz = fy - (lab[:, 2] - 128.0) / 200.0
    y = torch.where(light > 8.0, fy ** 3, light / 903.3)
    x = torch.where(fx ** 3 > 0.008856, fx ** 3, (fx - 16.0 / 116.0) / 7.787)
    z = torch.where(fz ** 3 > 0.008856, fz ** 3, (fz - 16.0 / 116.0) / 7.787)
    white = torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    xyz = torch.stack([x, y, z], dim=1) * white
    inverse = torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64)).to(dtype=lab.dtype, device=lab.device)
    return torch.einsum("ij,bjhw->bihw", inverse, xyz).clamp(0.0, 1.0)


def _odd(value: float, cap: int) -> int:
    size = max(1, round(value))
    size = size if size % 2 == 1 else size + 1
    return min(size, cap if cap % 2 == 1 else cap - 1)


def _nlm_weights(shifted: Tensor, centre: Tensor, inv_h2: float, template: int) -> Tensor:
    """exp(-d^2 / h^2) of the template-window mean squared difference, OpenCV's small weights dropped.

    shifted, centre: (B, C, H + t - 1, W + t - 1), the images extended by half the template t on each
    side -> (B, 1, H, W).
    """
    diff = (shifted - centre).square().mean(dim=1, keepdim=True)
    if template > 1:
        diff = F.avg_pool2d(diff, template, stride=1)
    weight = torch.exp(-diff * inv_h2)
    return torch.where(weight < _WEIGHT_THRESHOLD, torch.zeros_like(weight), weight)


def _extend(image: Tensor, pad: int) -> Tensor:
    """OpenCV's BORDER_DEFAULT (reflect without repeating the edge); replicate where the image is too small."""
    if pad == 0:
        return image
    mode = "reflect" if pad < min(image.shape[-2:]) else "replicate"
    return F.pad(image, (pad,) * 4, mode=mode)


def texture(unit: Tensor, h: float, h_color: float, template: int, search: int) -> Tensor:
    """Non-local means in 8-bit CIELAB: L averaged with weights from L (strength ``h``), a and b with
    weights from (a, b) (strength ``h_color``), as OpenCV's coloured variant; windows in input pixels."""
    lab = torch.round(rgb_to_lab8(unit)).clamp(0.0, 255.0)  # OpenCV filters uint8 Lab
    radius, half = search // 2, template // 2
    padded = _extend(lab, radius + half)  # like OpenCV, templates near the border see reflected pixels
    centre = padded[:, :, radius:padded.shape[2] - radius, radius:padded.shape[3] - radius]
    height, width = unit.shape[-2:]
    numerator = torch.zeros_like(lab)
    denominator = torch.zeros_like(lab)
    inv_l, inv_ab = 1.0 / (h * h), 1.0 / (h_color * h_color)
    size_y, size_x = height + 2 * half, width + 2 * half
    for dy in range(search):  # a loop over window offsets; each step is one batched op over all images
        for dx in range(search):
            shifted = padded[:, :, dy:dy + size_y, dx:dx + size_x]
            w_l = _nlm_weights(shifted[:, :1], centre[:, :1], inv_l, template)
            w_ab = _nlm_weights(shifted[:, 1:], centre[:, 1:], inv_ab, template)
            weight = torch.cat([w_l, w_ab.expand(-1, 2, -1, -1)], dim=1)
            numerator += weight * shifted[:, :, half:half + height, half:half + width]
            denominator += weight
    smoothed = torch.round(numerator / denominator)
    return torch.round(lab8_to_rgb(smoothed) * 255.0) / 255.0


def window_sizes(params: ModificationParams, scale: Tensor, max_search: int) -> list[tuple[int, int]]:
    """Per image (template, search) window sizes in input pixels: the reference sizes times the image's
    mean (input / native) scale, rounded to odd sizes, the search window capped at ``max_search``."""
    mean_scale = scale.to(torch.float64).mean(dim=1).tolist()
    return [(_odd(params.texture_template * s, 10**6), _odd(params.texture_search * s, max_search)) for s in mean_scale]


def texture_opencv(unit: Tensor, params: ModificationParams, scale: Tensor, max_search: int) -> Tensor:
    """The same filter through OpenCV's own ``fastNlMeansDenoisingColored`` on the resized uint8 images
    (CPU, one image at a time; far cheaper than the tensor version on a CPU): (B, 3, H, W) on the CPU."""
    pixels = torch.round(unit.detach().cpu().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for rgb, (template, search) in zip(pixels, window_sizes(params, scale, max_search)):
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        smooth = cv2.fastNlMeansDenoisingColored(bgr, None, params.texture_h, params.texture_h_color, template, search)
        out.append(cv2.cvtColor(smooth, cv2.COLOR_BGR2RGB))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def texture_backend(choice: str, device: torch.device) -> str:
    """``auto`` -> ``opencv`` on the CPU, ``torch`` on an accelerator; otherwise the choice itself."""
    if choice not in TEXTURE_BACKENDS:
        raise ConfigError(f"fast texture backend must be one of {TEXTURE_BACKENDS}, got {choice!r}")
    if choice == "auto":
        return "opencv" if torch.device(device).type == "cpu" else "torch"
    return choice


def texture_scaled(unit: Tensor, params: ModificationParams, scale: Tensor, max_search: int) -> Tensor:
    """Texture with windows scaled per image by its mean (input / native) scale; images that share
    window sizes are filtered together."""
    sizes = window_sizes(params, scale, max_search)
    out = torch.empty_like(unit)
    for template, search in sorted(set(sizes)):
        index = torch.tensor([i for i, size in enumerate(sizes) if size == (template, search)], device=unit.device)
        out[index] = texture(unit[index], params.texture_h, params.texture_h_color, template, search)
    return out


def modify_fast(unit: Tensor, names: tuple[str, ...], params: ModificationParams, scale: Tensor | None = None,
                max_search: int = 7, texture_image: Tensor | None = None,
                prepared: dict[str, Tensor] | None = None, backend: str = "torch") -> Tensor:
    """Unit images (B, 3, H, W) -> modified images (B, M, 3, H, W), one per registered name, same device.

    scale: (B, 2) input size / native size per image for (y, x); None means the input is the native size.
    prepared: name -> (B, 3, H, W) a characteristic's CPU pre-computation (e.g. OpenCV's texture filter
    on the loader thread); ``texture_image`` is the same for ``texture`` alone. backend: the texture
    filter's backend when nothing was prepared.
    """
    from protoviz.explain.characteristics import FastContext, get_characteristic

    if unit.dim() != 4 or unit.shape[1] != 3:
        raise ConfigError(f"modify_fast: expected unit images (B, 3, H, W), got {tuple(unit.shape)}")
    if scale is None:
        scale = torch.ones(unit.shape[0], 2, dtype=torch.float64)
    prepared = dict(prepared or {})
    if texture_image is not None:
        prepared.setdefault("texture", texture_image)
    characteristics = [get_characteristic(name) for name in names]
    base = FastContext(params=params, scale=scale, max_search=max_search, backend=backend)
    return torch.stack([c.fast(unit, FastContext(params, scale, max_search, backend, prepared.get(c.name)))
                        if c.name in prepared else c.fast(unit, base) for c in characteristics], dim=1)


def prepare_cpu_modifications(unit: Tensor, names: tuple[str, ...], params: ModificationParams, scale: Tensor,
                              max_search: int, backend: str) -> dict[str, Tensor]:
    """The CPU pre-computations of the characteristics that have one (OpenCV's texture filter on the
    CPU backend): name -> (B, 3, H, W), to run on the loader thread beside the forward pass."""
    from protoviz.explain.characteristics import FastContext, get_characteristic

    context = FastContext(params=params, scale=scale, max_search=max_search, backend=backend)
    out = {}
    for name in names:
        characteristic = get_characteristic(name)
        if characteristic.prepare_function is not None:
            result = characteristic.prepare_function(unit, context)
            if result is not None:
                out[name] = result
    return out
