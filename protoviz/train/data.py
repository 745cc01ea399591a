"""Training images held in memory as one uint8 tensor, and batched augmentation that keeps class rules.

Images are read with :func:`protoviz.data.datasets.open_dataset` (full images, not cropped to their
boxes) and kept resized to the model's input size, so an epoch is a few tensor slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.data.datasets import open_dataset
from protoviz.data.transforms import normalize, resize_image
from protoviz.models.base import InputSpec, PrototypeModel


@dataclass(frozen=True)
class ImageTensors:
    """A labelled image set in memory.

    images: (N, 3, H, W) uint8 at the model's input size; labels: (N,) int64 0-based class indices;
    image_ids: N dataset image ids; class_names: C names; boxes: (N, 4) float object boxes (x0, y0, x1, y1)
    in model-input pixels, or None where the dataset has no boxes.
    """

    images: Tensor
    labels: Tensor
    image_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    boxes: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: Tensor) -> ImageTensors:
        """The images at ``indices`` (K,), same class names."""
        index = indices.cpu()
        boxes = self.boxes[index] if self.boxes is not None else None
        return ImageTensors(self.images[index], self.labels[index],
                            tuple(self.image_ids[int(i)] for i in index), self.class_names, boxes)


def load_split(root: str | Path, split: str, spec: InputSpec, kind: str = "auto",
               crop_to_box: bool = False) -> ImageTensors:
    """Read split ``train`` / ``test`` / ``all`` of a dataset folder (CUB layout or ImageFolder), resized to
    ``spec.image_size`` (full images unless ``crop_to_box``). Raises DatasetError for a bad dataset."""
    dataset = open_dataset(root, kind=kind, split=split, crop_to_box=crop_to_box)
    height, width = spec.image_size
    arrays, labels, ids, boxes = [], [], [], []
    for index in range(len(dataset)):
        sample = dataset[index]
        arrays.append(np.asarray(resize_image(sample.image, spec), dtype=np.uint8))
        labels.append(sample.label)
        ids.append(sample.image_id)
        if sample.box is not None and not crop_to_box:
            sx, sy = width / sample.image.size[0], height / sample.image.size[1]
            x, y, w, h = sample.box
            boxes.append((x * sx, y * sy, (x + w) * sx, (y + h) * sy))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    box_tensor = torch.tensor(boxes, dtype=torch.float32) if len(boxes) == len(arrays) else None
    return ImageTensors(images, torch.tensor(labels, dtype=torch.long), tuple(ids), tuple(dataset.class_names),
                        box_tensor)


def to_unit(images: Tensor, model: PrototypeModel) -> Tensor:
    """uint8 (B, 3, H, W) -> floats in [0, 1] (B, 3, H, W) on the model's device, in its dtype."""
    dtype = next(model.parameters()).dtype
    return images.to(model.device).to(dtype) / 255.0


def to_model_input(images: Tensor, model: PrototypeModel) -> Tensor:
    """uint8 (B, 3, H, W) -> the model's normalised input (B, 3, H, W) on its device, in its dtype."""
    return normalize(to_unit(images, model), model.input_spec)


def augment(unit: Tensor, boxes: Tensor | None, generator: torch.Generator, crop_probability: float = 0.5) -> Tensor:
    """Random horizontal flip and, with ``crop_probability``, a random crop that contains the whole object
    box, resized back: (B, 3, H, W).

    ``boxes``: (B, 4) (x0, y0, x1, y1) in pixels, or None (then only flips). Each crop edge is drawn
    uniformly between the box edge and the image edge, so no part of the object is ever cut away; no
    colour is changed (hue defines classes). One batched ``grid_sample``.
    """
    b, _, h, w = unit.shape
    flips = torch.rand(b, generator=generator) < 0.5
    cropped = torch.rand(b, generator=generator) < crop_probability
    if boxes is None:
        window = torch.tensor([0.0, 0.0, w, h]).expand(b, 4)
    else:
        t = torch.rand(b, 4, generator=generator) * cropped[:, None]  # 0: image edge, 1: box edge
        box = boxes.cpu().float()
        window = torch.stack([box[:, 0] * t[:, 0], box[:, 1] * t[:, 1],
                              w - (w - box[:, 2]) * t[:, 2], h - (h - box[:, 3]) * t[:, 3]], dim=1)
    theta = torch.zeros(b, 2, 3)
    scale_x = (window[:, 2] - window[:, 0]) / w
    theta[:, 0, 0] = torch.where(flips, -scale_x, scale_x)
    theta[:, 1, 1] = (window[:, 3] - window[:, 1]) / h
    theta[:, 0, 2] = (window[:, 0] + window[:, 2]) / w - 1  # window centre in [-1, 1]
    theta[:, 1, 2] = (window[:, 1] + window[:, 3]) / h - 1
    grid = F.affine_grid(theta.to(unit.device, unit.dtype), [b, 3, h, w], align_corners=False)
    return F.grid_sample(unit, grid, mode="bilinear", padding_mode="border", align_corners=False)
