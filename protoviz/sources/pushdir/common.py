"""What every push-folder reader shares: the result record, safe paths, box checks, image matching."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from protoviz.data.images import DEFAULT_LIMITS
from protoviz.errors import CheckpointError, DatasetError, ImageError
from protoviz.sources.describe import Pick
from protoviz.sources.folder import FolderImages

Box = tuple[int, int, int, int]


class MissingEpoch(CheckpointError):
    """The push folder has no results for the epoch asked for."""


@dataclass
class PushFolder:
    """What a reader found in a push folder: one :class:`Pick` per prototype it names, and notes."""

    layout: str
    folders: list[Path]
    epoch: int | None
    picks: list[Pick]
    notes: list[str] = field(default_factory=list)
    # ProtoTree: per prototype, the (h, w) of its nearest-patch picture and of its source image
    patch_sizes: dict[int, tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=dict)


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused when it resolves outside ``folder`` (a symbolic link leading out)."""
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise CheckpointError(f"{path} leads outside the push folder {folder} (a symbolic link?)")
    return path


def numbered(folder: Path, pattern: str) -> dict[int, Path]:
    """Files of ``folder`` whose whole name matches ``pattern`` (one ``(\\d+)`` group) -> by number."""
    regex = re.compile(pattern)
    found: dict[int, Path] = {}
    for entry in folder.iterdir():
        match = regex.fullmatch(entry.name)
        if match and len(match.group(1)) < 10:
            found[int(match.group(1))] = inside(folder, entry.name)
    return found


def checked_box(values: Sequence[int] | np.ndarray, size: tuple[int, int], what: str) -> Box:
    """(y0, y1, x0, x1) within an image of ``size`` (H, W) with y0 < y1, x0 < x1, else CheckpointError."""
    y0, y1, x0, x1 = (int(v) for v in values)
    if not (0 <= y0 < y1 <= size[0] and 0 <= x0 < x1 <= size[1]):
        raise CheckpointError(f"{what}: box (y0, y1, x0, x1) = {(y0, y1, x0, x1)} is not inside the "
                              f"{size[0]}x{size[1]} input")
    return y0, y1, x0, x1


def image_row(listing: FolderImages, index: int, what: str) -> int:
    """A push-loader index checked against the --data listing."""
    if not 0 <= index < len(listing):
        raise CheckpointError(f"{what} names image {index} of the push loader, but {listing.root} holds "
                              f"{len(listing)} images: is --data the folder the push ran on?")
    return index


def decode_raw(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of an image file as PIL decodes it (no EXIF rotation, like the research loaders),
    refusing files over protoviz's size limits."""
    try:
        if not path.is_file():  # a FIFO would block Image.open, a device never end
            raise ImageError(f"{path.name}: not a regular file")
        if path.stat().st_size > DEFAULT_LIMITS.max_bytes:
            raise ImageError(f"{path.name}: file over {DEFAULT_LIMITS.max_bytes / 2**20:.0f} MB")
        with Image.open(path, formats=list(DEFAULT_LIMITS.formats)) as image:
            if image.size[0] * image.size[1] > DEFAULT_LIMITS.max_pixels:
                raise ImageError(f"{path.name}: image over {DEFAULT_LIMITS.max_pixels / 1e6:.0f} megapixels")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ImageError as error:
        raise DatasetError(f"{path}: {error}") from error
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: not a readable image ({error})") from error


def header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from an image file's header without decoding it; None when unreadable."""
    try:
        if not path.is_file():
            return None
        with Image.open(path, formats=list(DEFAULT_LIMITS.formats)) as image:
            return image.size[1], image.size[0]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def match_images(listing: FolderImages, targets: list[np.ndarray], candidates: list[set[int]],
                 render: Callable[[Path], np.ndarray], tolerance: float,
                 same_size_only: bool = False) -> list[tuple[int, float] | None]:
    """For each target picture (H, W, 3) float in [0, 1], the earliest listed image (among the labels in
    ``candidates``) whose ``render`` is within ``tolerance`` mean absolute difference, with that
    difference; None where no image is. ``same_size_only`` skips images whose header size matches no
    target before decoding them."""
    shapes = {t.shape[:2] for t in targets}
    best: list[tuple[int, float] | None] = [None] * len(targets)
    wanted = set().union(*candidates) if candidates else set()
    for index, (relative, label) in enumerate(zip(listing.relative, listing.labels, strict=True)):
        if label not in wanted:
            continue
        path = listing.root / relative
        if same_size_only and header_size(path) not in shapes:
            continue
        picture = render(path)
        for t, target in enumerate(targets):
            if label not in candidates[t] or target.shape != picture.shape:
                continue
            difference = float(np.abs(picture - target).mean())
            if difference <= tolerance and (best[t] is None or difference < best[t][1]):  # type: ignore[index]
                best[t] = (index, difference)
    return best
