"""The image order of torchvision's ``ImageFolder``, which the original pushes index into.

The research repositories push with ``DataLoader(ImageFolder(push_dir), shuffle=False)``, so column 0 of
``bb{N}.npy`` (and ProtoTree's ``input_image_ix``) is a position in ``ImageFolder(push_dir).samples``.
:func:`imagefolder_images` lists the same files in the same order without torchvision: classes are the
sorted names of the folders under the root (hidden ones included); each class contributes the files
of ``sorted(os.walk(class_dir, followlinks=True))``, each folder's file names sorted, kept when their
lower-cased name ends with one of torchvision's ``IMG_EXTENSIONS``. A class without such a file is an
error, as in torchvision.

Unlike torchvision, a file or folder that resolves outside the root (a symbolic link leading out) or a
folder reached twice (a link loop) is refused with :class:`DatasetError`, and listing stops at
``max_images``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from protoviz.data.datasets import ImageDataset
from protoviz.data.records import ImageRecord
from protoviz.errors import DatasetError

IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MAX_IMAGES = 2_000_000


@dataclass(frozen=True)
class FolderImages:
    """An ImageFolder listing: class folder names (label order) and (relative path, label) per image."""

    root: Path
    classes: tuple[str, ...]
    relative: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.relative)

    def dataset(self, class_names: tuple[str, ...] | None = None) -> ImageDataset:
        """The listing as an :class:`ImageDataset` (image ids = relative paths), for batched loading."""
        records = [ImageRecord(path=self.root / rel, label=label, image_id=rel)
                   for rel, label in zip(self.relative, self.labels, strict=True)]
        names = class_names if class_names is not None else self.classes
        return ImageDataset(self.root, "imagefolder", "all", records, names, None, False,
                            "an ImageFolder has no part annotations")


def imagefolder_images(root: str | Path, max_images: int = MAX_IMAGES) -> FolderImages:
    """List ``root`` exactly as ``torchvision.datasets.ImageFolder(root).samples`` orders it."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"{base}: no such folder")
    real_root = base.resolve()
    classes = sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
    if not classes:
        raise DatasetError(f"{base}: expected class folders root/<class>/<image> (ImageFolder), found none")
    relative: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = _class_files(base, real_root, name, max_images - len(relative))
        if not found:
            raise DatasetError(f"{base}: class folder {name!r} holds no image file "
                               f"({', '.join(IMG_EXTENSIONS)}), as torchvision's ImageFolder requires")
        relative += found
        labels += [label] * len(found)
    return FolderImages(base, tuple(classes), tuple(relative), tuple(labels))


def _class_files(base: Path, real_root: Path, name: str, budget: int) -> list[str]:
    """Files of one class folder, in ``sorted(os.walk(..., followlinks=True))`` order, relative to ``base``."""
    top = os.path.join(str(base), name)
    walked: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    pending = [top]
    while pending:  # same folders as os.walk(top, followlinks=True); order fixed by the sort below
        folder = pending.pop()
        real = _inside(real_root, folder)
        if real in seen:
            raise DatasetError(f"{folder}: reached twice through symbolic links (a loop?); refusing to list it")
        seen.add(real)
        files = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    pending.append(os.path.join(folder, entry.name))
                else:
                    files.append(entry.name)
        walked.append((folder, files))
    found: list[str] = []
    for folder, files in sorted(walked):
        for file in sorted(files):
            if not file.lower().endswith(IMG_EXTENSIONS):
                continue
            path = os.path.join(folder, file)
            _inside(real_root, path)
            found.append(Path(path).relative_to(base).as_posix())
            if len(found) > budget:
                raise DatasetError(f"{base}: more images than the limit of this listing; refusing to list them all")
    return found


def _inside(real_root: Path, path: str) -> str:
    """The resolved ``path``, or DatasetError when it lies outside the dataset root."""
    real = Path(path).resolve()
    if not real.is_relative_to(real_root):
        raise DatasetError(f"{path} leads outside the dataset folder {real_root} (a symbolic link?); "
                           "copy the images into the folder instead")
    return str(real)
