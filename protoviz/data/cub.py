"""Reader of the CUB-200-2011 folder layout (also written by protoviz.data.synthetic).

Files (ids are 1-based integers, one record per line, fields separated by spaces):
- ``images.txt``: ``<image id> <path under images/>``
- ``image_class_labels.txt``: ``<image id> <class id>``
- ``classes.txt``: ``<class id> <class name>`` (optional: names then come from the image folders)
- ``train_test_split.txt``: ``<image id> <1 = train | 0 = test>`` (needed for split 'train'/'test')
- ``bounding_boxes.txt``: ``<image id> <x> <y> <w> <h>`` floats (needed to crop to the boxes)
- ``parts/parts.txt``: ``<part id> <part name>``; ``parts/part_locs.txt``: ``<image id> <part id> <x> <y>
  <visible>`` in original-image pixels (both optional: without them part metrics are unavailable)
- ``masks/<path>`` (synthetic set only): per-pixel part ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protoviz.data.records import (
    ImageRecord,
    check_links,
    count_rows,
    inside,
    parse_box,
    parse_flag,
    read_rows,
    require_file,
)
from protoviz.errors import DatasetError

MAX_PARTS = 256  # CUB has 15 parts, the synthetic set 8
ANNOTATION_FILES = ("images.txt", "image_class_labels.txt", "classes.txt", "train_test_split.txt",
                    "bounding_boxes.txt", "parts/parts.txt", "parts/part_locs.txt")


@dataclass(frozen=True)
class CubAnnotations:
    """Everything read from a CUB-layout folder, before choosing a split."""

    root: Path
    records: list[ImageRecord]
    is_train: np.ndarray | None  # (N,) bool, None without train_test_split.txt
    class_names: tuple[str, ...]
    part_names: tuple[str, ...] | None
    parts_reason: str | None  # why parts are unavailable, None when they are available
    has_boxes: bool


def find_cub_root(path: Path) -> Path | None:
    """``path`` if it holds images.txt, or its ``CUB_200_2011`` subfolder if that does, else None."""
    for candidate in (path, path / "CUB_200_2011"):
        if (candidate / "images.txt").is_file():
            return candidate
    return None


def read_cub(root: Path, split: str, need_boxes: bool) -> CubAnnotations:
    """Read and validate a CUB-layout folder; DatasetError names the file and line of any problem."""
    check_links(root, ANNOTATION_FILES)
    images = _read_images(root)
    ids = list(images)
    labels = _by_image(root, "image_class_labels.txt", "<image id> <class id>", ids, lambda f: int(f[0]))
    class_names, class_index = _read_classes(root, images, labels)
    is_train = None
    if (root / "train_test_split.txt").is_file():
        split_flags = _by_image(root, "train_test_split.txt", "<image id> <1|0>", ids, lambda f: parse_flag(f[0]))
        is_train = np.array([split_flags[i] == 1 for i in ids], dtype=bool)
    elif split != "all":
        raise DatasetError(f"{root}: missing train_test_split.txt (needed for split {split!r}; use split 'all')")
    boxes: dict[int, tuple[float, float, float, float]] | None = None
    if (root / "bounding_boxes.txt").is_file():
        boxes = _by_image(root, "bounding_boxes.txt", "<image id> <x> <y> <w> <h>", ids, parse_box, fields=5)
    elif need_boxes:
        raise DatasetError(f"{root}: missing bounding_boxes.txt (needed to crop images to their boxes; "
                           "open the dataset with crop_to_box=False to use whole images)")
    part_names, parts, reason = _read_parts(root, ids)
    masks = root / "masks"
    records = [
        ImageRecord(
            path=path, label=class_index[labels[i]], image_id=str(i),
            box=boxes[i] if boxes is not None else None,
            parts=parts[row] if parts is not None else None,
            mask_path=_mask(masks, rel),
        )
        for row, (i, (rel, path)) in enumerate(images.items())
    ]
    return CubAnnotations(root, records, is_train, class_names, part_names, reason, boxes is not None)


def _mask(masks: Path, relative: str) -> Path | None:
    """The part mask of an image, if the dataset has one (inside masks/, like the image inside images/)."""
    path = masks / relative
    if not path.is_file():
        return None
    return inside(masks, relative, masks, f"mask {relative[:80]}", within=masks.parent)


def _read_images(root: Path) -> dict[int, tuple[str, Path]]:
    """image id -> (path relative to images/, the image file), every path inside images/."""
    path = require_file(root, "images.txt", "'<image id> <relative path>' per image")
    images: dict[int, tuple[str, Path]] = {}
    missing: list[str] = []
    for number, (image_id, rel) in read_rows(path, 2, lambda f: (int(f[0]), " ".join(f[1:])), "<image id> <path>"):
        if image_id in images:
            raise DatasetError(f"{path}, line {number}: image id {image_id} appears twice")
        file = inside(root / "images", rel, path, f"line {number}", within=root)
        images[image_id] = (rel, file)
        if not file.is_file():
            missing.append(f"images/{rel[:80]} (line {number})")
    if not images:
        raise DatasetError(f"{path}: lists no images")
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DatasetError(f"{root}: image files listed in images.txt do not exist: {', '.join(missing[:3])}{more}")
    return images


def _by_image(root: Path, name: str, layout: str, ids: list[int], parse: Callable[[list[str]], Any],
              fields: int = 2) -> dict[int, Any]:
    """``parse(fields after the id)`` per image id of an ``<image id> ...`` file, every id of images.txt
    present exactly once."""
    path = require_file(root, name, f"'{layout}' per image")
    known = set(ids)
    values: dict[int, Any] = {}
    for number, (image_id, value) in read_rows(path, fields, lambda f: (int(f[0]), parse(f[1:])), layout):
        if image_id not in known:
            raise DatasetError(f"{path}, line {number}: image id {image_id} is not in images.txt")
        if image_id in values:
            raise DatasetError(f"{path}, line {number}: image id {image_id} appears twice")
        values[image_id] = value
    absent = [i for i in ids if i not in values]
    if absent:
        more = f" (and {len(absent) - 5} more)" if len(absent) > 5 else ""
        raise DatasetError(f"{path}: no line for image id(s) {', '.join(map(str, absent[:5]))}{more}")
    return values


def _read_classes(root: Path, images: dict[int, tuple[str, Path]], labels: dict[int, int],
                  ) -> tuple[tuple[str, ...], dict[int, int]]:
    """Class names in class-id order and the map class id -> 0-based label."""
    path = root / "classes.txt"
    names: dict[int, str] = {}
    if path.is_file():
        for number, (class_id, name) in read_rows(path, 2, lambda f: (int(f[0]), " ".join(f[1:])), "<class id> <name>"):
            if class_id in names:
                raise DatasetError(f"{path}, line {number}: class id {class_id} appears twice")
            names[class_id] = name
        unknown = sorted(set(labels.values()) - set(names))
        if unknown:
            raise DatasetError(f"{root / 'image_class_labels.txt'}: class id(s) {unknown[:5]} are not in classes.txt")
    else:  # name each class after the folder of its first image
        for image_id, class_id in labels.items():
            names.setdefault(class_id, Path(images[image_id][0]).parent.name or f"class {class_id}")
    ordered = sorted(names)
    return tuple(names[c] for c in ordered), {c: i for i, c in enumerate(ordered)}


def _read_parts(root: Path, ids: list[int]) -> tuple[tuple[str, ...] | None, np.ndarray | None, str | None]:
    """Part names, (N, K, 3) part locations in images.txt order, or the reason parts are unavailable."""
    names_path, locs_path = root / "parts" / "parts.txt", root / "parts" / "part_locs.txt"
    for path in (names_path, locs_path):
        if not path.is_file():
            return None, None, f"{root} has no part annotations ({path.relative_to(root)} not found)"
    part_ids: dict[int, str] = {}
    for number, (pid, name) in read_rows(names_path, 2, lambda f: (int(f[0]), " ".join(f[1:])), "<part id> <name>"):
        if pid in part_ids:
            raise DatasetError(f"{names_path}, line {number}: part id {pid} appears twice")
        part_ids[pid] = name
    if len(part_ids) > MAX_PARTS:
        raise DatasetError(f"{names_path}: lists {len(part_ids)} parts; protoviz reads at most {MAX_PARTS}")
    order = sorted(part_ids)
    column = {pid: k for k, pid in enumerate(order)}
    row_of = {image_id: row for row, image_id in enumerate(ids)}
    layout = "<image id> <part id> <x> <y> <visible 0|1>"
    parse = lambda f: (int(f[0]), int(f[1]), float(f[2]), float(f[3]), parse_flag(f[4]))
    needed, present = len(ids) * len(order), count_rows(locs_path)
    if present < needed:  # checked before allocating the (N, K, 3) array: it cannot outgrow the file
        for _ in read_rows(locs_path, 5, parse, layout):
            pass  # a malformed line is the better message
        raise DatasetError(f"{locs_path}: no line for part(s) of some images ({present} lines for "
                           f"{len(ids)} images x {len(order)} parts, {needed} needed)")
    locs = np.full((len(ids), len(order), 3), np.nan)
    for number, (image_id, pid, x, y, visible) in read_rows(locs_path, 5, parse, layout):
        if image_id not in row_of:
            raise DatasetError(f"{locs_path}, line {number}: image id {image_id} is not in images.txt")
        if pid not in column:
            raise DatasetError(f"{locs_path}, line {number}: part id {pid} is not in parts/parts.txt")
        cell = locs[row_of[image_id], column[pid]]
        if not np.isnan(cell[0]):
            raise DatasetError(f"{locs_path}, line {number}: part {pid} of image {image_id} appears twice")
        cell[:] = (x, y, 1.0) if visible else (0.0, 0.0, 0.0)
    rows, cols = np.nonzero(np.isnan(locs[:, :, 0]))
    if rows.size:
        raise DatasetError(f"{locs_path}: no line for part {order[cols[0]]} of image id {ids[rows[0]]} "
                           f"({rows.size} (image, part) pairs missing)")
    return tuple(part_ids[p] for p in order), locs, None
