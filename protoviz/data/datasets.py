"""Dataset readers behind one interface, and batched loading in a model's own preprocessing.

``open_dataset(path)`` reads, validates and returns an :class:`ImageDataset` for
- CUB-200-2011 (``images.txt`` ... see :mod:`protoviz.data.cub`), including the synthetic set that
  :mod:`protoviz.data.synthetic` writes in that layout (its keypoints are the parts, plus part masks);
- Stanford Cars (devkit ``.mat`` files) and Stanford Dogs (``Images/``, ``Annotation/``, ``lists/``):
  boxes, no parts (see :mod:`protoviz.data.stanford`);
- ImageFolder ``root/<class>/<image>`` (or ``root/train|test/<class>/<image>``): no boxes, no parts.

Cropping follows Huang et al.'s reference: the box (x, y, w, h) is floored to x1 = int(x), y1 = int(y),
x2 = x1 + int(w), y2 = y1 + int(h) and the image cropped to [x1, x2) x [y1, y2). A sample's parts are
then relative to the crop (x - x1, y - y1). :func:`iterate_batches` resizes to the model input (H, W)
with bilinear interpolation (aspect ratio not kept) and maps a visible part to model-input pixels as
u = int(W * x / crop_width), v = int(H * y / crop_height) (truncation toward zero), which equals the
reference's u = int(224 * (x - x1) / (x2 - x1)) at 224. Uncropped, the same formula uses the whole image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protoviz.data.cub import find_cub_root, read_cub
from protoviz.data.images import load_image, load_mask
from protoviz.data.records import ImageRecord, list_images
from protoviz.data.transforms import normalize, to_unit_tensor
from protoviz.errors import DatasetError, ImageError
from protoviz.models.base import InputSpec

KINDS: tuple[str, ...] = ("auto", "cub", "imagefolder", "cars", "dogs")
SPLITS: tuple[str, ...] = ("test", "train", "all")


@dataclass(frozen=True)
class DatasetSample:
    """One decoded image, cropped to its box when the dataset crops.

    image: RGB. label: 0-based class. image_id: the dataset's id. box: (x, y, w, h) in the original
    image, or None. parts: (K, 3) float64 (x, y, visible) in ``image``'s pixels (relative to the crop
    when cropped; invisible parts are (0, 0, 0)), or None.
    """

    image: Image.Image
    label: int
    image_id: str
    box: tuple[float, float, float, float] | None
    parts: np.ndarray | None


@dataclass(frozen=True)
class Batch:
    """A batch ready for a model.

    images: (B, 3, H, W) normalised with the model's mean/std. unit: (B, 3, H, W) in [0, 1].
    labels: (B,) int64. parts: (B, K, 3) float32 (u, v, visible) in model-input pixels, integer-valued
    (truncated), or None. indices: positions in the dataset. masks: (B, H, W) uint8 part masks resized
    with nearest neighbour, or None. boxes: (B, 4) float32 (x0, y0, x1, y1) object boxes in model-input
    pixels (x1, y1 exclusive) when the images are not cropped to them, NaN rows for images without one;
    None when the dataset crops (the box is then the whole input) or has no boxes.
    """

    images: Tensor
    unit: Tensor
    labels: Tensor
    image_ids: list[str]
    parts: Tensor | None
    indices: list[int]
    masks: Tensor | None = None
    boxes: Tensor | None = None


class ImageDataset:
    """A validated list of images with labels and, where the layout has them, boxes and parts."""

    def __init__(self, root: Path, kind: str, split: str, records: Sequence[ImageRecord], class_names: Sequence[str],
                 part_names: Sequence[str] | None = None, crop_to_box: bool = False,
                 parts_reason: str | None = None):
        if not records:
            raise DatasetError(f"{root}: no images in split {split!r}")
        self.root, self.kind, self.split = Path(root), kind, split
        self.records = list(records)
        self.class_names = tuple(class_names)
        self.part_names = tuple(part_names) if part_names is not None else None
        self.crop_to_box = crop_to_box
        self.parts_reason = parts_reason if part_names is None else None
        if self.part_names is None and self.parts_reason is None:
            self.parts_reason = f"the {kind} layout has no part annotations"

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> DatasetSample:
        record = self.records[index]
        try:
            image = load_image(record.path)
        except ImageError as error:
            raise DatasetError(f"image {record.image_id} of {self.root}: {error}") from error
        parts = record.parts.copy() if record.parts is not None else None
        if self.crop_to_box and record.box is not None:
            x1, y1, x2, y2 = self._crop(record, image.size)
            image = image.crop((x1, y1, x2, y2))
            if parts is not None:
                visible = parts[:, 2] > 0
                parts[visible, 0] -= x1
                parts[visible, 1] -= y1
        return DatasetSample(image, record.label, record.image_id, record.box, parts)

    @property
    def has_parts(self) -> bool:
        return self.part_names is not None

    @property
    def has_object_boxes(self) -> bool:
        """Boxes exist and images are not cropped to them (so a box is a region inside the input)."""
        return not self.crop_to_box and any(r.box is not None for r in self.records)

    @property
    def has_masks(self) -> bool:
        return all(r.mask_path is not None for r in self.records)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 label of every image, in dataset order."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    def require_parts(self, metric: str) -> None:
        """Raise DatasetError saying why ``metric`` cannot run when the dataset has no parts."""
        if not self.has_parts:
            raise DatasetError(f"{metric} needs part annotations, which are unavailable: {self.parts_reason}")

    def _crop(self, record: ImageRecord, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The record's crop, refused when its box lies outside the (w, h) image (beyond a small margin,
        which PIL pads, as the reference does)."""
        x1, y1, x2, y2 = crop_bounds(record.box)  # type: ignore[arg-type]
        width, height = size
        slack_x, slack_y = max(2, width // 50), max(2, height // 50)
        if x1 < -slack_x or y1 < -slack_y or x2 > width + slack_x or y2 > height + slack_y or x2 <= x1 or y2 <= y1:
            raise DatasetError(f"image {record.image_id} of {self.root}: its box (x={x1}, y={y1}, w={x2 - x1}, "
                               f"h={y2 - y1}) lies outside the {width}x{height} image")
        return x1, y1, x2, y2

    def load_mask(self, index: int) -> np.ndarray | None:
        """(h, w) uint8 part mask of image ``index``, cropped like the image, or None."""
        record = self.records[index]
        if record.mask_path is None:
            return None
        try:
            mask = load_mask(record.mask_path)
        except ImageError as error:
            raise DatasetError(f"the part mask of image {record.image_id} of {self.root}: {error}") from error
        if self.crop_to_box and record.box is not None:
            x1, y1, x2, y2 = self._crop(record, (mask.shape[1], mask.shape[0]))
            mask = np.asarray(Image.fromarray(mask).crop((x1, y1, x2, y2)), dtype=np.uint8)
        return mask

    def describe(self) -> dict[str, Any]:
        """What this dataset is, for result files."""
        return {"root": str(self.root), "kind": self.kind, "split": self.split, "images": len(self),
                "classes": len(self.class_names), "parts": list(self.part_names) if self.part_names else None,
                "parts_unavailable_reason": self.parts_reason, "crop_to_box": self.crop_to_box, "path": "clean"}


def crop_bounds(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """The reference's integer crop (x1, y1, x2, y2) of a box (x, y, w, h); x2, y2 exclusive."""
    x1, y1 = int(box[0]), int(box[1])
    return x1, y1, x1 + int(box[2]), y1 + int(box[3])


def open_dataset(path: str | Path, kind: str = "auto", split: str = "test", crop_to_box: bool = True) -> ImageDataset:
    """Read and validate the dataset at ``path``.

    kind: one of KINDS; 'auto' recognises CUB (images.txt), Stanford Cars (devkit/cars_meta.mat),
    Stanford Dogs (lists/ and Images/), else ImageFolder. split: 'test', 'train' or 'all'.
    crop_to_box: crop each image to its box where the layout has boxes (CUB, Cars, Dogs).
    Raises DatasetError naming the missing or malformed file and line.
    """
    root = Path(path)
    try:
        return _open(root, kind, split, crop_to_box)
    except OSError as error:
        raise DatasetError(f"{root}: a file of the dataset cannot be read ({error.strerror or type(error).__name__})") \
            from None


def _open(root: Path, kind: str, split: str, crop_to_box: bool) -> ImageDataset:
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; expected one of {KINDS}")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    if kind == "auto":
        kind = _detect_kind(root)
    if kind == "cub":
        return _open_cub(root, split, crop_to_box)
    if kind in ("cars", "dogs"):
        from protoviz.data.stanford import read_stanford

        records, names = read_stanford(root, kind, split, crop_to_box)
        reason = f"Stanford {kind.capitalize()} has bounding boxes but no part annotations"
        return ImageDataset(root, kind, split, records, names, None, crop_to_box, reason)
    return _open_imagefolder(root, split)


def _detect_kind(root: Path) -> str:
    if find_cub_root(root) is not None:
        return "cub"
    if (root / "devkit" / "cars_meta.mat").is_file():
        return "cars"
    if (root / "lists").is_dir() and (root / "Images").is_dir():
        return "dogs"
    return "imagefolder"


def _open_cub(root: Path, split: str, crop_to_box: bool) -> ImageDataset:
    found = find_cub_root(root)
    if found is None:
        raise DatasetError(f"{root}: not a CUB-200-2011 folder (missing images.txt)")
    if found != root and root.resolve() not in found.resolve().parents:
        raise DatasetError(f"{root}: its CUB_200_2011 folder is a link that leads out of the folder given")
    notes = read_cub(found, split, need_boxes=crop_to_box)
    keep = np.ones(len(notes.records), dtype=bool)
    if split != "all" and notes.is_train is not None:
        keep = notes.is_train if split == "train" else ~notes.is_train
    records = [r for r, k in zip(notes.records, keep) if k]
    return ImageDataset(found, "cub", split, records, notes.class_names, notes.part_names,
                        crop_to_box and notes.has_boxes, notes.parts_reason)


def _open_imagefolder(root: Path, split: str) -> ImageDataset:
    """``root/<class>/<image>``; with ``root/train`` and ``root/test`` present, those are the splits."""
    bases = [root]
    if (root / "train").is_dir() and (root / "test").is_dir():
        bases = [root / s for s in (("train", "test") if split == "all" else (split,))]
    classes = sorted({d.name for base in bases for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")})
    if not classes:
        raise DatasetError(f"{root}: expected class folders root/<class>/<image> (or images.txt for CUB), found none")
    index = {name: i for i, name in enumerate(classes)}
    records = [ImageRecord(path=p, label=index[p.parent.name], image_id=p.relative_to(root).as_posix())
               for base in bases for name in classes if (base / name).is_dir()
               for p in list_images(base / name, root)]
    if not records:
        raise DatasetError(f"{root}: the class folders hold no image files")
    used_split = split if bases[0] != root else "all"  # a folder without train/test holds one split
    return ImageDataset(root, "imagefolder", used_split, records, classes, None, False,
                        "an ImageFolder has no part annotations")


def iterate_batches(dataset: ImageDataset, spec: InputSpec, batch_size: int, indices: Sequence[int] | None = None,
                    with_masks: bool = False, prefetch: bool = True) -> Iterator[Batch]:
    """Decode, resize (bilinear) and normalise ``dataset`` (or its ``indices``) in batches.

    With ``prefetch`` the next batch is decoded on a worker thread while the caller uses this one.
    """
    if batch_size < 1:
        raise DatasetError(f"batch size must be >= 1, got {batch_size}")
    order = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if not prefetch:
        for chunk in chunks:
            yield load_batch(dataset, spec, chunk, with_masks)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        if not chunks:
            return
        pending: Future[Batch] = pool.submit(load_batch, dataset, spec, chunks[0], with_masks)
        for following in [*chunks[1:], None]:
            batch = pending.result()
            if following is not None:
                pending = pool.submit(load_batch, dataset, spec, following, with_masks)
            yield batch


def _required_mask(dataset: ImageDataset, index: int) -> np.ndarray:
    mask = dataset.load_mask(index)
    if mask is None:
        raise DatasetError(f"image {index} of {dataset.root.name} has no part mask, though the dataset has masks")
    return mask


def load_batch(dataset: ImageDataset, spec: InputSpec, indices: Sequence[int], with_masks: bool = False) -> Batch:
    """One :class:`Batch` of the images at ``indices``."""
    samples = [dataset[i] for i in indices]
    unit = to_unit_tensor([s.image for s in samples], spec)
    labels = torch.tensor([s.label for s in samples], dtype=torch.int64)
    parts = None
    if dataset.has_parts:
        parts = torch.from_numpy(np.stack([map_parts(s.parts, s.image.size, spec.image_size) for s in samples]))
    masks = None
    if with_masks and dataset.has_masks:
        height, width = spec.image_size
        resized = [Image.fromarray(_required_mask(dataset, i)).resize((width, height), Image.Resampling.NEAREST)
                   for i in indices]
        masks = torch.from_numpy(np.stack([np.asarray(m, dtype=np.uint8) for m in resized]))
    boxes = None
    if dataset.has_object_boxes:
        boxes = torch.from_numpy(np.stack([map_box(s.box, s.image.size, spec.image_size) for s in samples]))
    return Batch(normalize(unit, spec), unit, labels, [s.image_id for s in samples], parts, list(indices), masks,
                 boxes)


def map_box(box: tuple[float, float, float, float] | None, image_size: tuple[int, int],
            input_size: tuple[int, int]) -> np.ndarray:
    """The reference's integer box of an uncropped image (PIL size (w, h)) -> (4,) float32 (x0, y0, x1, y1)
    in model-input pixels (scaled, not rounded), NaN when there is no box."""
    if box is None:
        return np.full(4, np.nan, dtype=np.float32)
    x1, y1, x2, y2 = crop_bounds(box)
    sx, sy = input_size[1] / image_size[0], input_size[0] / image_size[1]
    return np.array([x1 * sx, y1 * sy, x2 * sx, y2 * sy], dtype=np.float32)


def map_parts(parts: np.ndarray | None, image_size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """(K, 3) parts in an image of PIL size (w, h) -> (K, 3) float32 (u, v, visible) in model input (H, W).

    u = int(W * (x / w)), v = int(H * (y / h)), truncated toward zero, in the reference code's order
    (EvalProtoPNet: ``ratio_x = loc_x / width; int(img_size * ratio_x)``; ``W * x / w`` differs from it
    in the last bit for about 1 in 15,000 integer positions); invisible parts stay (0, 0, 0).
    """
    if parts is None:
        raise DatasetError("map_parts: this sample has no part annotations")
    width, height = image_size
    out_h, out_w = input_size
    visible = parts[:, 2] > 0
    u = np.trunc(out_w * (parts[:, 0] / width))
    v = np.trunc(out_h * (parts[:, 1] / height))
    return np.stack([np.where(visible, u, 0.0), np.where(visible, v, 0.0), visible.astype(np.float64)], 1).astype(
        np.float32)
