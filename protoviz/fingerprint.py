"""Fingerprints that key stored results: which dataset (and split) a result was computed on.

A fingerprint is a hex SHA-256 over what identifies the data without reading it: each file's path
relative to the dataset root, its size and its modification time (ns), plus, for an opened dataset,
its kind, split, cropping, class and part names and every image's label, box and parts. Moving the
dataset folder keeps its fingerprint; touching, adding, removing or renaming an image changes it.
Files are visited one at a time in a fixed order and never read, and a bound on their number keeps
the cost known (``max_files``). Pure Python + numpy, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from protoviz.errors import DatasetError
from protoviz.progress import Progress, no_progress

VERSION = "protoviz-fingerprint/1"
MAX_FILES = 5_000_000
PROGRESS_EVERY = 1000


class RecordLike(Protocol):
    """What a fingerprint reads of one image (:class:`protoviz.data.records.ImageRecord` has it)."""

    path: Path
    label: int
    image_id: str
    box: tuple[float, float, float, float] | None
    parts: np.ndarray | None
    mask_path: Path | None


class DatasetLike(Protocol):
    """What a fingerprint reads of a dataset (:class:`protoviz.data.datasets.ImageDataset` has it)."""

    root: Path
    kind: str
    split: str
    crop_to_box: bool
    class_names: tuple[str, ...]
    part_names: tuple[str, ...] | None
    records: Sequence[RecordLike]


def dataset_fingerprint(dataset: DatasetLike, progress: Progress = no_progress, max_files: int = MAX_FILES) -> str:
    """Fingerprint of an opened dataset: layout, split, names, and per image its file, label, box, parts.

    Raises DatasetError when an image or mask file is missing or there are more than ``max_files``.
    """
    records = dataset.records
    if len(records) > max_files:
        raise DatasetError(f"{dataset.root}: {len(records)} images is more than the {max_files} a fingerprint reads")
    root = Path(dataset.root)
    digest = hashlib.sha256()
    path = getattr(dataset, "path", "clean")  # the published data path gives other pixels and keypoints
    _line(digest, [VERSION, "dataset", dataset.kind, dataset.split, bool(dataset.crop_to_box),
                   list(dataset.class_names), list(dataset.part_names) if dataset.part_names is not None else None,
                   *([path] if path != "clean" else [])])
    total = len(records)
    for done, record in enumerate(records, start=1):
        parts = None
        if record.parts is not None:
            parts = hashlib.sha256(np.ascontiguousarray(record.parts, dtype=np.float64).tobytes()).hexdigest()
        mask = _file_entry(root, record.mask_path) if record.mask_path is not None else None
        _line(digest, [_file_entry(root, record.path), int(record.label), str(record.image_id),
                       list(record.box) if record.box is not None else None, parts, mask])
        if done % PROGRESS_EVERY == 0 or done == total:
            progress(done, total, "fingerprint")
    return digest.hexdigest()


def folder_fingerprint(root: str | Path, progress: Progress = no_progress, max_files: int = MAX_FILES) -> str:
    """Fingerprint of every file under ``root`` (hidden files and folders skipped; symlinks followed once)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    digest = hashlib.sha256()
    _line(digest, [VERSION, "folder"])
    count = 0
    for path, info in _walk(root):
        count += 1
        if count > max_files:
            raise DatasetError(f"{root}: more than {max_files} files to fingerprint")
        _line(digest, [path.relative_to(root).as_posix(), info.st_size, info.st_mtime_ns])
        if count % PROGRESS_EVERY == 0:
            progress(count, None, "fingerprint")
    progress(count, count, "fingerprint")
    return digest.hexdigest()


def bytes_fingerprint(items: Iterable[tuple[str, bytes]]) -> str:
    """Fingerprint of named in-memory files (e.g. uploaded images): names and full contents, in order."""
    digest = hashlib.sha256()
    _line(digest, [VERSION, "bytes"])
    for name, data in items:
        _line(digest, [name, len(data), hashlib.sha256(data).hexdigest()])
    return digest.hexdigest()


def combine(parts: Iterable[str]) -> str:
    """One key for several (e.g. the sha256 of every model a comparison runs on), order-independent."""
    digest = hashlib.sha256()
    _line(digest, [VERSION, "combine", sorted(parts)])
    return digest.hexdigest()


def _line(digest: Any, fields: list[Any]) -> None:
    digest.update(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    digest.update(b"\n")


def _file_entry(root: Path, path: Path) -> list[Any]:
    """[path relative to root (or absolute outside it), size, mtime_ns]."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the file ({error.strerror})") from error
    try:
        name = Path(path).relative_to(root).as_posix()
    except ValueError:
        name = Path(path).as_posix()
    return [name, info.st_size, info.st_mtime_ns]


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under ``root`` in sorted order, depth first; each real folder is entered once."""
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as scan:
                entries = sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as error:
            raise DatasetError(f"{folder}: cannot list the folder ({error.strerror})") from error
        folders = []
        for entry in entries:
            try:
                info = entry.stat()  # follows symlinks
            except OSError:
                continue  # a dangling link: not a file of the dataset
            if stat.S_ISDIR(info.st_mode):
                folders.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                yield Path(entry.path), info
        stack.extend(reversed(folders))
