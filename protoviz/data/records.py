"""Small helpers shared by the dataset readers: annotation records and line-by-line parsing with
error messages that name the file and the line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from protoviz.errors import DatasetError

T = TypeVar("T")

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset as its annotation files describe it.

    path: the image file. label: 0-based class index. image_id: the dataset's own id (CUB: the
    number in images.txt; other layouts: the path relative to the root).
    box: (x, y, w, h) in original-image pixels, or None. parts: (K, 3) float64 (x, y, visible) in
    original-image pixels (invisible parts (0, 0, 0)), or None. mask_path: a per-pixel part mask
    (uint8, 0 = background, k = part k) of the same size as the image, or None.
    """

    path: Path
    label: int
    image_id: str
    box: tuple[float, float, float, float] | None = None
    parts: np.ndarray | None = None
    mask_path: Path | None = None


def require_file(root: Path, relative: str, what: str) -> Path:
    """``root / relative`` if it is a file, else DatasetError naming what it should hold."""
    path = root / relative
    if not path.is_file():
        raise DatasetError(f"{root}: missing {relative} ({what})")
    return path


def read_rows(path: Path, min_fields: int, parse: Callable[[list[str]], T], layout: str) -> Iterator[tuple[int, T]]:
    """Yield (1-based line number, parse(fields)) for every non-blank line of a text file.

    ``layout`` describes a line (e.g. ``"<image id> <x> <y> <w> <h>"``) for the error message, which
    names the file and line when a line has fewer than ``min_fields`` fields or ``parse`` fails.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from error
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < min_fields:
            raise DatasetError(f"{path}, line {number}: expected '{layout}', got {line.strip()!r}")
        try:
            yield number, parse(fields)
        except (ValueError, IndexError) as error:
            raise DatasetError(f"{path}, line {number}: expected '{layout}', got {line.strip()!r} ({error})") from error


def parse_flag(text: str) -> int:
    """'0' or '1' -> int; anything else raises ValueError."""
    if text not in ("0", "1"):
        raise ValueError(f"{text!r} is not 0 or 1")
    return int(text)


def parse_box(fields: list[str]) -> tuple[float, float, float, float]:
    """(x, y, w, h) floats with w, h >= 1 (a box under one pixel has no crop)."""
    x, y, w, h = (float(v) for v in fields[:4])
    if not all(np.isfinite((x, y, w, h))):
        raise ValueError("box values must be finite")
    if int(w) < 1 or int(h) < 1:
        raise ValueError(f"box width and height must be at least 1 pixel, got w={w}, h={h}")
    return x, y, w, h


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
