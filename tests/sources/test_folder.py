"""The ImageFolder listing: torchvision's exact order, and refusals for links leading out or looping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from protoviz.errors import DatasetError
from protoviz.sources.folder import imagefolder_images


def _touch_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path, format="PNG")


def test_order_equals_torchvision_imagefolder(tmp_path: Path) -> None:
    root = tmp_path / "push"
    names = ["b/x.png", "b/a-b.PNG", "b/a/z.png", "b/a/y.JPG", "b/A.png", "a_/q.png", "a/2.png", "a/10.png",
             ".hidden/h.png", "c/sub/deeper/k.webp", "c/sub-x/j.bmp", "c/Z.TIFF"]
    for name in names:
        _touch_image(root / name)
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "c" / "sub" / "readme").write_text("no extension")
    listing = imagefolder_images(root)
    reference = ImageFolder(str(root))
    assert list(listing.classes) == reference.classes
    assert [(str(root / r), label) for r, label in zip(listing.relative, listing.labels, strict=True)] == reference.samples


def test_dataset_of_listing_loads_in_order(tmp_path: Path) -> None:
    for name in ["b/1.png", "a/1.png", "a/2.png"]:
        _touch_image(tmp_path / name)
    dataset = imagefolder_images(tmp_path).dataset()
    assert [r.image_id for r in dataset.records] == ["a/1.png", "a/2.png", "b/1.png"]
    assert dataset.labels.tolist() == [0, 0, 1]


def test_link_leading_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    _touch_image(outside)
    _touch_image(tmp_path / "root" / "a" / "ok.png")
    os.symlink(outside, tmp_path / "root" / "a" / "escape.png")
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        imagefolder_images(tmp_path / "root")


def test_link_loop_is_refused(tmp_path: Path) -> None:
    _touch_image(tmp_path / "root" / "a" / "ok.png")
    os.symlink(tmp_path / "root" / "a", tmp_path / "root" / "a" / "loop")
    with pytest.raises(DatasetError, match="reached twice"):
        imagefolder_images(tmp_path / "root")


def test_empty_class_and_no_class_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        imagefolder_images(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    _touch_image(tmp_path / "flat" / "image.png")
    with pytest.raises(DatasetError, match="class folders"):
        imagefolder_images(tmp_path / "flat")
    _touch_image(tmp_path / "root" / "a" / "ok.png")
    (tmp_path / "root" / "b").mkdir()
    with pytest.raises(DatasetError, match="holds no image"):
        imagefolder_images(tmp_path / "root")


def test_listing_stops_at_its_limit(tmp_path: Path) -> None:
    for i in range(5):
        _touch_image(tmp_path / "a" / f"{i}.png")
    with pytest.raises(DatasetError, match="limit"):
        imagefolder_images(tmp_path, max_images=3)
