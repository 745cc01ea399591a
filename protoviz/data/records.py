"""Small helpers shared by the dataset readers: annotation records and line-by-line parsing with
error messages that name the file and the line."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np

from protoviz import files
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


MAX_ANNOTATION_BYTES = 128 * 2**20  # an annotation text file (CUB's largest, part_locs.txt, is 6 MB)
MAX_ROWS = 4_000_000  # lines of one annotation file (ImageNet-sized image lists fit)


def require_file(root: Path, relative: str, what: str) -> Path:
    """``root / relative`` if it is a file, else DatasetError naming what it should hold."""
    path = root / relative
    if not path.is_file():
        raise DatasetError(f"{root}: missing {relative} ({what})")
    return path


def inside(root: Path, relative: str, listed_in: Path | str, where: str, within: Path | None = None) -> Path:
    """``root / relative`` for a path read from a dataset file, refused unless it stays inside the dataset.

    ``within`` is the dataset folder (default ``root``; e.g. ``root`` is its ``images/``). Absolute
    paths, ``..`` components and symbolic links that lead out of ``within`` (a linked ``images/``
    folder included) are refused with a DatasetError naming ``listed_in`` and ``where`` (``line 12``).
    """
    pure = PurePosixPath(relative.replace("\\", "/"))
    if not relative or not pure.parts or pure.is_absolute() or ".." in pure.parts or "\x00" in relative:
        raise DatasetError(f"{listed_in}, {where}: the path is absolute or leaves the dataset folder (..)")
    path = root.joinpath(*pure.parts)
    try:
        resolved = path.resolve()
        base = (within or root).resolve()
    except (OSError, RuntimeError) as error:
        raise DatasetError(f"{listed_in}, {where}: the path cannot be resolved ({type(error).__name__})") from None
    if resolved != base and base not in resolved.parents:
        raise DatasetError(f"{listed_in}, {where}: the path leads out of the dataset folder (a symbolic link?)")
    return path


def check_links(root: Path, relatives: tuple[str, ...]) -> None:
    """Refuse annotation files (``images.txt``, ``devkit/cars_meta.mat`` ...) that are links out of ``root``."""
    for relative in relatives:
        if (root / relative).exists():
            inside(root, relative, root / relative, "the file itself")


def read_text(path: Path) -> str:
    """A UTF-8 annotation file of at most MAX_ANNOTATION_BYTES; DatasetError naming it otherwise."""
    data = files.read_regular_file(path, MAX_ANNOTATION_BYTES, DatasetError, str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text (byte {error.start})") from None


def read_rows(path: Path, min_fields: int, parse: Callable[[list[str]], T], layout: str) -> Iterator[tuple[int, T]]:
    """Yield (1-based line number, parse(fields)) for every non-blank line of a text file.

    ``layout`` describes a line (e.g. ``"<image id> <x> <y> <w> <h>"``) for the error message, which
    names the file and line (never its contents) when a line has fewer than ``min_fields`` fields or
    ``parse`` fails.
    """
    rows = 0
    for number, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):  # lazily, one line at a time
        fields = line.split()
        if not fields:
            continue
        rows += 1
        if rows > MAX_ROWS:
            raise DatasetError(f"{path}: more than {MAX_ROWS:,} lines; protoviz reads at most that many")
        if len(fields) < min_fields:
            raise DatasetError(f"{path}, line {number}: expected '{layout}', found {len(fields)} field(s)")
        try:
            yield number, parse(fields)
        except (ValueError, IndexError, OverflowError) as error:
            raise DatasetError(f"{path}, line {number}: expected '{layout}' ({_reason(error)})") from None


def count_rows(path: Path) -> int:
    """Non-blank lines of a text file (to size arrays before reading them)."""
    return sum(1 for line in io.StringIO(read_text(path), newline=None) if line.strip())


def _reason(error: Exception) -> str:
    """Why a field failed, without quoting the file: our own ValueError messages, or the kind of value."""
    text = str(error)
    if isinstance(error, ValueError) and ("invalid literal" in text or "could not convert" in text):
        return "a field is not a number"
    if isinstance(error, OverflowError):
        return "a number is out of range"
    return text if len(text) < 120 and "'" not in text else type(error).__name__


def parse_flag(text: str) -> int:
    """'0' or '1' -> int; anything else raises ValueError."""
    if text not in ("0", "1"):
        raise ValueError("a flag is not 0 or 1")
    return int(text)


def parse_box(fields: list[str]) -> tuple[float, float, float, float]:
    """(x, y, w, h) floats with w, h >= 1 (a box under one pixel has no crop)."""
    x, y, w, h = (float(v) for v in fields[:4])
    if not all(np.isfinite((x, y, w, h))):
        raise ValueError("box values must be finite")
    if int(w) < 1 or int(h) < 1:
        raise ValueError(f"box width and height must be at least 1 pixel, got w={w}, h={h}")
    return x, y, w, h


def list_images(folder: Path, root: Path | None = None) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; with ``root``, only those whose real
    location (after symbolic links) is inside ``root``."""
    base = root.resolve() if root is not None else None
    found = []
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if base is not None and base not in path.resolve().parents:
            raise DatasetError(f"{folder}: {path.name} is a link that leads out of the dataset folder")
        found.append(path)
    return sorted(found)
