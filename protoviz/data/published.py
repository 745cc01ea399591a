"""The data path of the published evaluation code ("as published"), beside protoviz's clean one.

Both EvalProtoPNet (Huang et al. 2023, ``util/crop_cub_data.py``) and Explaining_Prototypes (Nauta et
al. 2021, ``preprocessing/crop_images.py``) prepare CUB the same way before evaluating anything:

1. read the image with ``cv2.imread`` (OpenCV's decoder, BGR);
2. crop ``img[y1:y2, x1:x2]`` with the box floored: x1 = int(x), y1 = int(y), x2 = x1 + int(w),
   y2 = y1 + int(h) (EvalProtoPNet cuts the decimal string at '.', the other calls int(float(.)));
3. write the crop with ``cv2.imwrite`` to a .jpg (.JPEG) name: JPEG at OpenCV's default quality 95;
4. read it back with torchvision's ``default_loader``: ``Image.open(path).convert('RGB')`` (Pillow's
   decoder, no EXIF rotation).

EvalProtoPNet's ``util/local_parts.py`` then truncates every visible keypoint with ``int(float(x))``
*before* subtracting the box corner, and maps it with ``int(size * ((x - x1) / (x2 - x1)))``.

:func:`published_dataset` wraps an :class:`ImageDataset` so that its samples are exactly those
re-read crops with those truncated keypoints; the metrics and the characteristics then run unchanged.
On the ST-ProtoPNet demo model the re-encoding alone moved stability from 78.5 (clean) to 73.1
(published) (issue 14). The clean path (in memory, no re-encoding, keypoints kept in float) is the
better-founded one: JPEG noise is not part of what the metrics mean to measure. Uncropped datasets
skip steps 1-3 (the file is read as in step 4).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from protoviz.data.datasets import DatasetSample, ImageDataset, crop_bounds
from protoviz.data.images import DEFAULT_LIMITS, ImageLimits, _check_size, _read_bytes
from protoviz.errors import DatasetError, ImageError

PATHS: tuple[str, ...] = ("clean", "published")
CROP_JPEG_QUALITY = 95
"""OpenCV's default ``IMWRITE_JPEG_QUALITY``, which ``cv2.imwrite`` uses for the crops."""


def read_like_opencv(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W, 3) uint8 BGR as ``cv2.imread(path)`` returns it, after protoviz's size checks (the
    header is read with Pillow before any pixel is decoded)."""
    data = _read_bytes(path, path.name, limits)
    try:
        with Image.open(io.BytesIO(data), formats=list(limits.formats)) as header:
            _check_size(header, path.name, limits)
    except ImageError:
        raise
    except Exception as error:
        raise ImageError(f"{path.name}: not an image file ({error})") from error
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ImageError(f"{path.name}: OpenCV could not decode the image")
    return pixels


def read_like_torchvision(data: bytes | Path, label: str, limits: ImageLimits = DEFAULT_LIMITS) -> Image.Image:
    """torchvision's ``default_loader``: ``Image.open(...).convert('RGB')``, after the size checks."""
    raw = _read_bytes(data, label, limits)
    try:
        image = Image.open(io.BytesIO(raw), formats=list(limits.formats))
        _check_size(image, label, limits)
        return image.convert("RGB")
    except ImageError:
        raise
    except Exception as error:
        raise ImageError(f"{label}: not a decodable image ({error})") from error


def published_crop(path: Path, box: tuple[float, float, float, float], quality: int = CROP_JPEG_QUALITY) -> Image.Image:
    """The crop the published preprocessing writes for ``path`` and ``box`` (x, y, w, h), as it reads it
    back: cv2.imread, integer crop, cv2.imwrite JPEG ``quality``, Image.open(...).convert('RGB')."""
    x1, y1, x2, y2 = crop_bounds(box)
    bgr = read_like_opencv(path)
    crop = bgr[y1:y2, x1:x2]
    if crop.size == 0:
        raise DatasetError(f"{path.name}: the box {box} lies outside the {bgr.shape[1]}x{bgr.shape[0]} image")
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(crop), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError(f"{path.name}: OpenCV could not encode the crop")
    return read_like_torchvision(encoded.tobytes(), path.name)


def truncate_parts(parts: np.ndarray | None, offset: tuple[int, int] = (0, 0)) -> np.ndarray | None:
    """(K, 3) (x, y, visible) -> visible keypoints truncated with int() then shifted by -offset, as
    EvalProtoPNet's ``local_parts.py`` (``int(float(x)) - bbox_x1``); invisible ones stay (0, 0, 0)."""
    if parts is None:
        return None
    out = parts.astype(np.float64).copy()
    visible = out[:, 2] > 0
    out[visible, 0] = np.trunc(out[visible, 0]) - offset[0]
    out[visible, 1] = np.trunc(out[visible, 1]) - offset[1]
    return out


class PublishedDataset(ImageDataset):
    """An :class:`ImageDataset` whose samples follow the published data path (see the module doc)."""

    path = "published"

    def __init__(self, base: ImageDataset):
        super().__init__(base.root, base.kind, base.split, base.records, base.class_names, base.part_names,
                         base.crop_to_box, base.parts_reason)

    def __getitem__(self, index: int) -> DatasetSample:
        record = self.records[index]
        try:
            if self.crop_to_box and record.box is not None:
                x1, y1, _, _ = crop_bounds(record.box)
                image = published_crop(record.path, record.box)
                parts = truncate_parts(record.parts, (x1, y1))
            else:
                image = read_like_torchvision(record.path, record.path.name)
                parts = truncate_parts(record.parts)
        except ImageError as error:
            raise DatasetError(f"image {record.image_id} of {self.root}: {error}") from error
        return DatasetSample(image, record.label, record.image_id, record.box, parts)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": "published", "published": describe_published(self.crop_to_box)}


def describe_published(cropped: bool) -> dict[str, Any]:
    """What the published path does, for provenance."""
    steps = ["keypoints truncated with int() before mapping (EvalProtoPNet util/local_parts.py)"]
    if cropped:
        steps.insert(0, f"crop read with OpenCV, written as JPEG quality {CROP_JPEG_QUALITY} (cv2.imwrite default) "
                        "and read back with Pillow (EvalProtoPNet util/crop_cub_data.py, Explaining_Prototypes "
                        "preprocessing/crop_images.py)")
    return {"steps": steps}


def published_dataset(dataset: ImageDataset) -> ImageDataset:
    """``dataset`` on the published data path (the same object if it already is)."""
    return dataset if isinstance(dataset, PublishedDataset) else PublishedDataset(dataset)


def paper_path(dataset: ImageDataset) -> str:
    """The data path a paper's number needs on ``dataset``: ``published`` for a CUB-layout dataset cropped to
    its boxes (the setting both published evaluations ran on), ``clean`` otherwise (there is no published
    number to reproduce, so the better-founded path)."""
    return "published" if dataset.kind == "cub" and dataset.crop_to_box else "clean"


WHY_THEY_DIFFER = ("EvalProtoPNet evaluates crops written as JPEG (quality 95, cv2.imwrite) and read back, with "
                   "keypoints truncated by int(); the clean path crops in memory and keeps keypoints in float")
"""One line saying why the two data paths of an evaluation differ."""


def dataset_for_path(dataset: ImageDataset, path: str) -> ImageDataset:
    """``dataset`` as is for ``clean``, wrapped by :func:`published_dataset` for ``published``: the one-line
    hook for ``--as published|clean``."""
    if path not in PATHS:
        raise DatasetError(f"unknown data path {path!r}; expected one of {PATHS}")
    return published_dataset(dataset) if path == "published" else dataset
