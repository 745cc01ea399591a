"""Colour scales drawn beside heatmap pictures, so that every heatmap says what its colours mean (no torch).

A JET overlay is min-max normalised per map (ProtoPNet), so its scale runs from that map's lowest to
its highest similarity; a signed map (PRP) runs from -max|v| (blue) through 0 (white) to +max|v| (red).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from protoviz.errors import ConfigError
from protoviz.viz.overlay import jet_colormap
from protoviz.viz.trust import signed_colormap

GAP = 4


def colour_bar(height: int, signed: bool = False, width: int | None = None) -> np.ndarray:
    """(height, width, 3) uint8 vertical bar, high values at the top: JET, or blue-white-red if ``signed``."""
    if height < 2:
        raise ConfigError(f"a colour bar needs a height of at least 2 pixels, got {height}")
    bar_width = width if width is not None else max(6, height // 14)
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(bar_width, axis=1)
    return signed_colormap(2 * ramp - 1) if signed else jet_colormap(ramp)


def scale_labels(low: float, high: float) -> tuple[str, str]:
    """The two ends of a scale as text, with enough digits that different values read differently."""
    span = abs(high - low)
    size = max(abs(low), abs(high), 1e-12)
    digits = 3 if span <= 0 else max(3, min(8, 2 + int(np.ceil(np.log10(size / span)))))
    return f"{low:.{digits}g}", f"{high:.{digits}g}"


def with_colour_scale(picture: np.ndarray, low: float, high: float, signed: bool = False) -> np.ndarray:
    """``picture`` (H, W, 3) uint8 with its colour bar and end values drawn on the right: (H, W + s, 3) uint8.

    ``low`` / ``high``: the values at the bottom / top of the scale (for ``signed``, +-max|v| is used).
    """
    rgb = np.asarray(picture)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConfigError(f"expected an RGB picture (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    height = rgb.shape[0]
    if signed:
        limit = max(abs(low), abs(high))
        low, high = -limit, limit
    font = ImageFont.load_default(size=max(9, height // 11))
    bottom, top = scale_labels(low, high)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = int(max(probe.textlength(top, font=font), probe.textlength(bottom, font=font))) + 2
    bar = colour_bar(height, signed)
    width = rgb.shape[1] + GAP + bar.shape[1] + GAP + text_width
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(rgb), (0, 0))
    x_bar = rgb.shape[1] + GAP
    canvas.paste(Image.fromarray(bar), (x_bar, 0))
    draw = ImageDraw.Draw(canvas)
    x_text = x_bar + bar.shape[1] + GAP
    draw.text((x_text, 0), top, fill=(40, 40, 40), font=font, anchor="la")
    draw.text((x_text, height - 1), bottom, fill=(40, 40, 40), font=font, anchor="ld")
    return np.asarray(canvas)
