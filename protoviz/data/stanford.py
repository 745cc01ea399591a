"""Readers of the Stanford Cars and Stanford Dogs layouts: labels, splits and boxes, no parts.

Stanford Cars (the devkit release):
- ``devkit/cars_meta.mat``: ``class_names`` (196 names, class k is the k-th, 1-based);
- ``devkit/cars_train_annos.mat`` and ``cars_test_annos_withlabels.mat`` (in the root or devkit/):
  ``annotations`` with ``bbox_x1 bbox_y1 bbox_x2 bbox_y2 class fname``;
- images in ``cars_train/`` and ``cars_test/``.
Stanford Dogs:
- ``lists/train_list.mat`` and ``lists/test_list.mat``: ``file_list`` (paths under Images/) and ``labels``
  (1-based); ``Images/<synset>-<breed>/<file>.jpg``;
- ``Annotation/<synset>-<breed>/<file stem>``: XML whose first ``object/bndbox`` is the box.
Boxes (x1, y1, x2, y2) become (x, y, w, h) = (x1, y1, x2 - x1, y2 - y1).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
from scipy.io import loadmat

from protoviz import files
from protoviz.data.matfile import check_mat
from protoviz.data.records import ImageRecord, check_links, inside, parse_box
from protoviz.errors import DatasetError

_MAX_XML_BYTES = 1_000_000
_MAX_MAT_BYTES = 64 * 2**20


def read_stanford(root: Path, kind: str, split: str, need_boxes: bool) -> tuple[list[ImageRecord], list[str]]:
    """Records of ``split`` and the class names of a Stanford Cars (``kind='cars'``) or Dogs folder."""
    check_links(root, ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_test_annos_withlabels.mat",
                       "devkit/cars_test_annos_withlabels.mat", "lists/train_list.mat", "lists/test_list.mat",
                       "Images", "Annotation", "cars_train", "cars_test"))
    if kind == "cars":
        return _read_cars(root, split)
    return _read_dogs(root, split, need_boxes)


def _load_mat(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"{path.parent}: missing {path.name}")
    data = files.read_regular_file(path, _MAX_MAT_BYTES, DatasetError, str(path))
    check_mat(data, str(path))
    try:
        loaded = loadmat(io.BytesIO(data), simplify_cells=True)
    except (ValueError, OSError, TypeError, KeyError, IndexError, zlib.error, struct.error, MemoryError) as error:
        raise DatasetError(f"{path}: not a readable MATLAB file ({type(error).__name__})") from None
    missing = [k for k in keys if k not in loaded]
    if missing:
        found = sorted(k for k in loaded if not k.startswith("__"))
        raise DatasetError(f"{path}: expected the variable(s) {missing}, found {found[:10]}")
    return loaded


def _as_list(value: Any) -> list[Any]:
    """A MATLAB cell/struct array read with simplify_cells -> a Python list (a lone item becomes [item])."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return list(value) if isinstance(value, list) else [value]


def _read_cars(root: Path, split: str) -> tuple[list[ImageRecord], list[str]]:
    names = [str(n) for n in _as_list(_load_mat(root / "devkit" / "cars_meta.mat", ("class_names",))["class_names"])]
    sources = {"train": [("cars_train", root / "devkit" / "cars_train_annos.mat")],
               "test": [("cars_test", _first_file(root, "cars_test_annos_withlabels.mat"))]}
    chosen = sources["train"] + sources["test"] if split == "all" else sources[split]
    records = []
    for folder, path in chosen:
        for n, entry in enumerate(_as_list(_load_mat(path, ("annotations",))["annotations"]), start=1):
            try:
                label = int(entry["class"]) - 1
                x1, y1, x2, y2 = (float(entry[f"bbox_{k}"]) for k in ("x1", "y1", "x2", "y2"))
                box = parse_box([str(x1), str(y1), str(x2 - x1), str(y2 - y1)])
                fname = entry["fname"]
                if not isinstance(fname, str):
                    raise TypeError("fname is not text")
            except (KeyError, TypeError, ValueError, OverflowError) as error:
                raise DatasetError(f"{path}: annotation {n} is malformed ({type(error).__name__}); expected "
                                   "bbox_x1..bbox_y2, class and fname") from None
            if not 0 <= label < len(names):
                raise DatasetError(f"{path}: annotation {n} has class {label + 1}, outside 1..{len(names)}")
            records.append(ImageRecord(_image(root / folder, fname, path, n), label, f"{folder}/{fname}", box))
    return records, names


def _first_file(root: Path, name: str) -> Path:
    for candidate in (root / name, root / "devkit" / name):
        if candidate.is_file():
            return candidate
    return root / name


def _image(folder: Path, relative: str, listed_in: Path, n: int) -> Path:
    path = inside(folder, relative, listed_in, f"entry {n}", within=folder.parent)
    if not path.is_file():
        raise DatasetError(f"{listed_in}: entry {n} names {path.relative_to(folder)}, which does not exist")
    return path


def _read_dogs(root: Path, split: str, need_boxes: bool) -> tuple[list[ImageRecord], list[str]]:
    folders = sorted(d.name for d in (root / "Images").iterdir() if d.is_dir())
    if not folders:
        raise DatasetError(f"{root / 'Images'}: expected one folder per breed, found none")
    names = [f.split("-", 1)[1] if "-" in f else f for f in folders]
    lists = ("train_list.mat", "test_list.mat") if split == "all" else (f"{split}_list.mat",)
    records = []
    for list_name in lists:
        path = root / "lists" / list_name
        data = _load_mat(path, ("file_list", "labels"))
        listed, labels = _as_list(data["file_list"]), _as_list(data["labels"])
        if len(listed) != len(labels):
            raise DatasetError(f"{path}: {len(listed)} files but {len(labels)} labels")
        for n, (relative, label) in enumerate(zip(listed, labels), start=1):
            if not isinstance(relative, str) or isinstance(label, bool) or not isinstance(label, int | np.integer):
                raise DatasetError(f"{path}: entry {n} is not a (file name, class number) pair")
            label = int(label) - 1
            if not 0 <= label < len(folders):
                raise DatasetError(f"{path}: entry {n} has label {label + 1}, outside 1..{len(folders)}")
            image = _image(root / "Images", relative, path, n)
            box = _dog_box(inside(root / "Annotation", str(Path(relative).with_suffix("")), path, f"entry {n}", root),
                           need_boxes)
            records.append(ImageRecord(image, label, relative, box))
    return records, names


def _dog_box(path: Path, need_boxes: bool) -> tuple[float, float, float, float] | None:
    """The first object's box of a Stanford Dogs annotation file, or None when it is absent and not needed."""
    if not path.is_file():
        if need_boxes:
            raise DatasetError(f"missing annotation {path} (needed to crop to boxes; open with crop_to_box=False)")
        return None
    data = files.read_regular_file(path, _MAX_XML_BYTES, DatasetError, str(path))
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise DatasetError(f"{path}: annotation XML with a DOCTYPE or entities is not read")
    try:
        node = ElementTree.fromstring(data).find("object/bndbox")
        if node is None:
            raise ValueError("no object/bndbox element")
        x1, y1, x2, y2 = (float(node.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax"))
        return parse_box([str(x1), str(y1), str(x2 - x1), str(y2 - y1)])
    except (ElementTree.ParseError, ValueError, OverflowError) as error:
        raise DatasetError(f"{path}: expected XML with object/bndbox xmin ymin xmax ymax "
                           f"({type(error).__name__})") from None
