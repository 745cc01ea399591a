"""The published data path against its stated definition: OpenCV crop, JPEG q95 file, Pillow re-read,
keypoints truncated with int() (EvalProtoPNet / Explaining_Prototypes preprocessing)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from protoviz.data.datasets import load_batch, open_dataset
from protoviz.data.published import PublishedDataset, dataset_for_path, published_dataset, truncate_parts
from protoviz.errors import DatasetError
from protoviz.models.base import InputSpec

BOXES = [(3.7, 5.2, 40.6, 31.9), (0.0, 1.9, 47.5, 36.0), (10.2, 0.4, 25.8, 38.7)]
PARTS = [[(20.9, 14.6, 1), (0.0, 0.0, 0)], [(33.3, 20.99, 1), (7.5, 30.2, 1)], [(12.8, 9.1, 1), (30.0, 18.7, 1)]]


@pytest.fixture(scope="module")
def cub_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-image CUB layout with JPEG files, fractional boxes and keypoints."""
    root = tmp_path_factory.mktemp("cub")
    rng = np.random.default_rng(0)
    (root / "images" / "001.a").mkdir(parents=True)
    (root / "parts").mkdir()
    lines: dict[str, list[str]] = {"images": [], "labels": [], "split": [], "boxes": [], "locs": []}
    for i, (box, parts) in enumerate(zip(BOXES, PARTS), start=1):
        ys, xs = np.mgrid[0:40, 0:52]
        pixels = np.stack([128 + 90 * np.sin(xs / (3 + c) + ys / 5) for c in range(3)], -1) + rng.normal(0, 20, (40, 52, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / "images" / "001.a" / f"a_{i}.jpg",
                                                                          quality=85)
        lines["images"].append(f"{i} 001.a/a_{i}.jpg")
        lines["labels"].append(f"{i} 1")
        lines["split"].append(f"{i} 0")
        lines["boxes"].append(f"{i} " + " ".join(str(v) for v in box))
        lines["locs"].extend(f"{i} {k + 1} {x} {y} {v}" for k, (x, y, v) in enumerate(parts))
    for name, key in (("images.txt", "images"), ("image_class_labels.txt", "labels"),
                      ("train_test_split.txt", "split"), ("bounding_boxes.txt", "boxes"),
                      ("parts/part_locs.txt", "locs")):
        (root / name).write_text("".join(line + "\n" for line in lines[key]))
    (root / "parts" / "parts.txt").write_text("1 beak\n2 tail\n")
    return root


def test_published_samples_are_the_reread_jpeg_crops(cub_jpeg: Path, tmp_path: Path) -> None:
    clean = open_dataset(cub_jpeg, split="test")
    published = published_dataset(clean)
    assert isinstance(published, PublishedDataset) and published_dataset(published) is published
    moved = 0
    for i, (x, y, w, h) in enumerate(BOXES):
        x1, y1 = int(x), int(y)
        crop = cv2.imread(str(clean.records[i].path))[y1:y1 + int(h), x1:x1 + int(w)]
        cv2.imwrite(str(tmp_path / "crop.jpg"), crop)  # OpenCV's default JPEG quality, as crop_cub_data.py
        expected = np.asarray(Image.open(tmp_path / "crop.jpg").convert("RGB"))
        ours = np.asarray(published[i].image)
        assert np.array_equal(ours, expected)
        moved += int(not np.array_equal(np.asarray(clean[i].image), expected))
    assert moved == len(BOXES)  # the clean path keeps the crop as decoded, without re-encoding


def test_published_keypoints_are_truncated_before_mapping(cub_jpeg: Path) -> None:
    published = published_dataset(open_dataset(cub_jpeg, split="test"))
    size = 224
    batch = load_batch(published, InputSpec(image_size=(size, size)), [0, 1, 2])
    assert batch.parts is not None
    for i, (box, parts) in enumerate(zip(BOXES, PARTS)):
        x1, y1, x2, y2 = int(box[0]), int(box[1]), int(box[0]) + int(box[2]), int(box[1]) + int(box[3])
        for k, (x, y, visible) in enumerate(parts):
            expected = ((int(size * ((int(x) - x1) / (x2 - x1))), int(size * ((int(y) - y1) / (y2 - y1))), 1)
                        if visible else (0, 0, 0))
            assert tuple(int(v) for v in batch.parts[i, k].tolist()) == expected


def test_uncropped_published_samples_keep_the_file_and_truncate_keypoints(cub_jpeg: Path) -> None:
    clean = open_dataset(cub_jpeg, split="test", crop_to_box=False)
    published = dataset_for_path(clean, "published")
    sample = published[1]
    assert np.array_equal(np.asarray(sample.image), np.asarray(Image.open(clean.records[1].path).convert("RGB")))
    assert sample.parts is not None and sample.parts[0, :2].tolist() == [33.0, 20.0]
    assert truncate_parts(None) is None


def test_the_path_is_recorded_and_checked(cub_jpeg: Path) -> None:
    clean = open_dataset(cub_jpeg, split="test")
    assert clean.describe()["path"] == "clean" and dataset_for_path(clean, "clean") is clean
    described = dataset_for_path(clean, "published").describe()
    assert described["path"] == "published" and any("quality 95" in s for s in described["published"]["steps"])
    with pytest.raises(DatasetError, match="unknown data path"):
        dataset_for_path(clean, "jpeg")


def test_the_published_path_has_its_own_dataset_fingerprint(cub_jpeg: Path) -> None:
    from protoviz.fingerprint import dataset_fingerprint

    clean = open_dataset(cub_jpeg, split="test")
    assert dataset_fingerprint(clean) == dataset_fingerprint(open_dataset(cub_jpeg, split="test"))
    assert dataset_fingerprint(published_dataset(clean)) != dataset_fingerprint(clean)
