"""Safe image decoding: an explicit format allow-list, size limits before any pixel is decoded, EXIF
rotation, and every mode converted to 8-bit RGB without large intermediate copies.

Only PNG, JPEG (with its multi-picture variant MPO), WebP, TIFF, BMP and GIF are decoded, through
Pillow's ``formats=`` (so no other decoder, such as the EPS plugin that starts Ghostscript, ever sees
the bytes); animated or multi-page files give their first frame. The pixel count and the decoded
size are checked from the header before decoding. 16-bit, 32-bit and float images are rescaled to
8 bits through a lookup table or in row chunks, never through a float64 copy of the whole image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from protoviz import files
from protoviz.errors import ImageError

FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
                    "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2,
                    "I;16N": 2}
_CHUNK_PIXELS = 1 << 20


@dataclass(frozen=True)
class ImageLimits:
    """Refuse files and images larger than these before decoding their pixels.

    max_bytes: the encoded file. max_pixels: width x height. max_decoded_bytes: width x height x the
    bytes per pixel of the stored mode (a 64-megapixel RGBA image is 256 MB). formats: Pillow format
    names that may be decoded.
    """

    max_bytes: int = 100 * 1024 * 1024
    max_pixels: int = 64_000_000
    min_side: int = 1
    max_decoded_bytes: int = 256_000_000
    formats: tuple[str, ...] = FORMATS


DEFAULT_LIMITS = ImageLimits()


def load_image(source: str | Path | bytes, name: str | None = None, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """Decode a file path or raw bytes into an upright 8-bit RGB PIL image.

    Raises :class:`ImageError` with a message naming the file for anything that is not a decodable
    image of an allowed format within ``limits``.
    """
    label = name or (Path(source).name if isinstance(source, str | Path) else "uploaded file")
    image = decode(source, label, limits)
    try:
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageError(f"{label}: image data is truncated or corrupt ({type(error).__name__})") from error


def load_mask(path: str | Path, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """A per-pixel part mask (H, W) uint8 (modes L, P or 1 read as their stored values) from ``path``."""
    image = decode(path, Path(path).name, limits)
    if image.mode not in ("L", "P", "1"):
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def decode(source: str | Path | bytes, label: str, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """Open and fully decode (first frame) an image of an allowed format, checking its size first."""
    data = _read_bytes(source, label, limits)
    try:
        image = Image.open(io.BytesIO(data), formats=list(limits.formats))
        _check_size(image, label, limits)
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(f"{label}: image is too large to decode safely ({_megapixels(error)})") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{label}: not an image file of an accepted format "
                         f"({', '.join(limits.formats)})") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{label}: image data is truncated or corrupt ({type(error).__name__})") from error
    return image


def _megapixels(error: Exception) -> str:
    text = str(error)
    return text.split(" exceeds")[0] if "exceeds" in text else "over the pixel limit"


def _read_bytes(source: str | Path | bytes, label: str, limits: ImageLimits) -> bytes:
    if isinstance(source, bytes):
        data = source
        if len(data) > limits.max_bytes:
            raise ImageError(f"{label}: file is {len(data) / 2**20:.0f} MB; the limit is "
                             f"{limits.max_bytes / 2**20:.0f} MB")
    else:
        data = files.read_regular_file(Path(source), limits.max_bytes, ImageError, label)
    if len(data) == 0:
        raise ImageError(f"{label}: the file is empty")
    return data


def _check_size(image: Image.Image, label: str, limits: ImageLimits) -> None:
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(f"{label}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                         f"the limit is {limits.max_pixels / 1e6:.0f} megapixels, please downsize it")
    if min(width, height) < limits.min_side:
        raise ImageError(f"{label}: image is {width}x{height}; it must be at least {limits.min_side} pixel(s) on each side")
    decoded = width * height * _BYTES_PER_PIXEL.get(image.mode, 8)
    if decoded > limits.max_decoded_bytes:
        raise ImageError(f"{label}: image is {width}x{height} in mode {image.mode} ({decoded / 1e6:.0f} MB decoded); "
                         f"the limit is {limits.max_decoded_bytes / 1e6:.0f} MB, please downsize it")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. 16-bit, 32-bit and float images are rescaled to their own range;
    transparency is composited on white; CMYK and palettes are converted."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16"):
        return Image.fromarray(_rescale_uint16(np.asarray(image)), mode="L").convert("RGB")
    if image.mode in ("I", "F"):
        return Image.fromarray(_rescale_chunked(np.asarray(image)), mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scale(low: float, high: float) -> float:
    return 255.0 / (high - low) if high > low else 0.0


def _rescale_uint16(values: np.ndarray) -> np.ndarray:
    """(H, W) 16-bit -> uint8 by a 65536-entry lookup table: round((v - min) * 255 / (max - min))."""
    low, high = int(values.min()), int(values.max())
    table = np.clip((np.arange(65536, dtype=np.float64) - low) * _scale(low, high), 0, 255).round().astype(np.uint8)
    return table[values]


def _rescale_chunked(values: np.ndarray) -> np.ndarray:
    """(H, W) int32/float32 -> uint8, min-max rescaled a million pixels at a time (NaN counts as the minimum)."""
    flat = values.reshape(-1)
    finite = [chunk[np.isfinite(chunk)] for chunk in _chunks(flat)]
    finite = [c for c in finite if c.size]
    low = float(min(c.min() for c in finite)) if finite else 0.0
    high = float(max(c.max() for c in finite)) if finite else 0.0
    scale = _scale(low, high)
    out = np.empty(flat.shape, dtype=np.uint8)
    for start in range(0, flat.size, _CHUNK_PIXELS):
        chunk = np.nan_to_num(flat[start:start + _CHUNK_PIXELS].astype(np.float64), nan=low, posinf=high, neginf=low)
        out[start:start + _CHUNK_PIXELS] = np.clip((chunk - low) * scale, 0, 255).round()
    return out.reshape(values.shape)


def _chunks(flat: np.ndarray) -> list[np.ndarray]:
    return [flat[start:start + _CHUNK_PIXELS] for start in range(0, flat.size, _CHUNK_PIXELS)]
