"""Heatmap overlays and boxes as ProtoPNet draws them, on numpy arrays (no torch here).

ProtoPNet: ``rescaled = (map - min) / (max - min)``; ``heat = applyColorMap(uint8(255 * rescaled),
COLORMAP_JET)`` converted BGR -> RGB; ``overlay = 0.5 * image + 0.3 * heat`` with both in [0, 1].
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageDraw

from protoviz.errors import ConfigError

Box = tuple[int, int, int, int]
BOX_COLOUR: tuple[int, int, int] = (255, 255, 0)


def normalize_map(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) -> min-max rescaled float32 in [0, 1] (all zeros for a constant map)."""
    values = np.asarray(heatmap, dtype=np.float32)
    if values.ndim != 2:
        raise ConfigError(f"expected one heatmap (H, W), got shape {values.shape}")
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if not high > low:
        return np.zeros_like(values)
    return np.nan_to_num((values - low) / (high - low), nan=0.0)


def jet_colormap(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3) uint8 RGB JET colouring of the min-max normalised map."""
    scaled = (255 * normalize_map(heatmap)).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_JET)[..., ::-1].copy()


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.5,
                    heat_weight: float = 0.3) -> np.ndarray:
    """RGB image (H, W, 3) uint8 and heatmap (H, W) -> ProtoPNet overlay (H, W, 3) uint8."""
    rgb = _check_rgb(image)
    if rgb.shape[:2] != np.asarray(heatmap).shape:
        raise ConfigError(f"heatmap {np.asarray(heatmap).shape} does not match image {rgb.shape[:2]}")
    heat = jet_colormap(heatmap).astype(np.float32) / 255.0
    mixed = image_weight * rgb.astype(np.float32) / 255.0 + heat_weight * heat
    return np.clip(np.round(mixed * 255.0), 0, 255).astype(np.uint8)


def draw_box(image: np.ndarray, box: Box, colour: tuple[int, int, int] = BOX_COLOUR,
             width: int | None = None) -> np.ndarray:
    """Copy of RGB image (H, W, 3) uint8 with the rectangle (y0, y1, x0, x1) (end-exclusive) drawn."""
    rgb = _check_rgb(image)
    y0, y1, x0, x1 = (int(v) for v in box)
    height, width_px = rgb.shape[:2]
    y0, x0 = max(0, min(y0, height - 1)), max(0, min(x0, width_px - 1))
    y1, x1 = max(y0 + 1, min(y1, height)), max(x0 + 1, min(x1, width_px))
    line = width if width is not None else max(1, round(min(height, width_px) / 112))
    canvas = Image.fromarray(rgb.copy())
    ImageDraw.Draw(canvas).rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=line)
    return np.asarray(canvas)


def scale_box(box: Box, from_size: tuple[int, int], to_size: tuple[int, int]) -> Box:
    """Box (y0, y1, x0, x1) in an image of (H, W) ``from_size`` -> the same box in ``to_size``."""
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    y0, y1, x0, x1 = box
    return (int(np.floor(y0 * sy)), int(np.ceil(y1 * sy)), int(np.floor(x0 * sx)), int(np.ceil(x1 * sx)))


def enlarge(image: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscale of a small RGB thumbnail so its shorter side is >= ``min_side``."""
    rgb = _check_rgb(image)
    factor = int(np.ceil(min_side / max(1, min(rgb.shape[:2]))))
    if factor <= 1:
        return rgb
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def png_bytes(image: np.ndarray) -> bytes:
    """RGB (H, W, 3) uint8 -> PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(_check_rgb(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ConfigError(f"expected an RGB image (H, W, 3) uint8, got {array.shape} {array.dtype}")
    return array
