"""Safe image decoding: size and decompression-bomb limits, EXIF rotation, every mode to 8-bit RGB."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from protoviz.errors import ImageError


@dataclass(frozen=True)
class ImageLimits:
    """Refuse files and images larger than these before decoding their pixels."""

    max_bytes: int = 100 * 1024 * 1024
    max_pixels: int = 64_000_000
    min_side: int = 1


DEFAULT_LIMITS = ImageLimits()


def load_image(source: str | Path | bytes, name: str | None = None, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """Decode a file path or raw bytes into an upright 8-bit RGB PIL image.

    Raises :class:`ImageError` with a message naming the file for anything that is not a decodable
    image within ``limits``.
    """
    label = name or (Path(source).name if isinstance(source, (str, Path)) else "uploaded file")
    data = _read_bytes(source, label, limits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            _check_size(image, label, limits)
            image.load()
            image = ImageOps.exif_transpose(image)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(f"{label}: image is too large to decode safely ({error})") from error
        except UnidentifiedImageError as error:
            raise ImageError(f"{label}: not an image file (or a format Pillow cannot read)") from error
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageError(f"{label}: image data is truncated or corrupt ({error})") from error
    return to_rgb(image)


def _read_bytes(source: str | Path | bytes, label: str, limits: ImageLimits) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{label}: no such file")
        if path.stat().st_size > limits.max_bytes:
            raise ImageError(f"{label}: file is {path.stat().st_size / 2**20:.0f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB")
        data = path.read_bytes()
    if len(data) == 0:
        raise ImageError(f"{label}: the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(f"{label}: file is {len(data) / 2**20:.0f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB")
    return data


def _check_size(image: Image.Image, label: str, limits: ImageLimits) -> None:
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(f"{label}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {limits.max_pixels / 1e6:.0f} megapixels, please downsize it")
    if min(width, height) < limits.min_side:
        raise ImageError(f"{label}: image is {width}x{height}; it must be at least {limits.min_side} pixel(s) on each side")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. 16-bit and float images are rescaled to their own range;
    transparency is composited on white; CMYK and palettes are converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = np.clip((values - low) * scale, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
