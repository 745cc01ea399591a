"""Tests of the dataset readers: CUB layout (crop and part mapping as the reference), validation
messages, ImageFolder, the synthetic set, Stanford Cars / Dogs layouts, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from protoviz.data.datasets import crop_bounds, iterate_batches, map_parts, open_dataset
from protoviz.data.synthetic import PART_NAMES, SyntheticConfig, generate_dataset
from protoviz.data.transforms import normalize
from protoviz.errors import DatasetError
from protoviz.models.base import InputSpec

SPEC = InputSpec(image_size=(32, 32))


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def make_cub(root: Path, n: int = 4, size: tuple[int, int] = (40, 30)) -> Path:
    """A CUB folder of n gradient images, 2 classes, 2 parts; image i is test when i is even."""
    rows = {k: [] for k in ("images", "labels", "split", "boxes", "locs")}
    for i in range(1, n + 1):
        rel = f"00{1 + i % 2}.cls/img_{i}.png"
        path = root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ramp = np.add.outer(np.arange(size[1]), np.arange(size[0])).astype(np.uint8)
        Image.fromarray(np.stack([ramp, ramp * 0 + i, ramp], 2)).save(path)
        rows["images"].append(f"{i} {rel}")
        rows["labels"].append(f"{i} {1 + i % 2}")
        rows["split"].append(f"{i} {int(i % 2 == 1)}")
        rows["boxes"].append(f"{i} 5.7 4.2 20.9 15.5")
        rows["locs"] += [f"{i} 1 10.5 8.0 1", f"{i} 2 0.0 0.0 0"]
    _write(root / "images.txt", rows["images"])
    _write(root / "image_class_labels.txt", rows["labels"])
    _write(root / "train_test_split.txt", rows["split"])
    _write(root / "bounding_boxes.txt", rows["boxes"])
    _write(root / "classes.txt", ["1 001.first", "2 002.second"])
    _write(root / "parts" / "parts.txt", ["1 left eye", "2 beak"])
    _write(root / "parts" / "part_locs.txt", rows["locs"])
    return root


def test_cub_split_labels_names_and_crop_as_reference(tmp_path: Path) -> None:
    data = open_dataset(make_cub(tmp_path), split="test")
    assert len(data) == 2 and data.kind == "cub" and data.has_parts
    assert data.class_names == ("001.first", "002.second") and data.part_names == ("left eye", "beak")
    sample = data[0]  # image 2, class id 1 -> label 0
    assert (sample.image_id, sample.label) == ("2", 0)
    x1, y1, x2, y2 = crop_bounds(sample.box)
    assert (x1, y1, x2, y2) == (5, 4, 25, 19)  # int(5.7), int(4.2), 5 + int(20.9), 4 + int(15.5)
    assert sample.image.size == (20, 15)
    full = np.asarray(Image.open(tmp_path / "images" / "001.cls" / "img_2.png"))
    assert np.array_equal(np.asarray(sample.image), full[4:19, 5:25])
    np.testing.assert_allclose(sample.parts, [[5.5, 4.0, 1.0], [0.0, 0.0, 0.0]])
    assert len(open_dataset(tmp_path, split="all")) == 4 and len(open_dataset(tmp_path, split="train")) == 2


def test_parts_map_into_model_input_like_the_reference(tmp_path: Path) -> None:
    data = open_dataset(make_cub(tmp_path))
    batch = next(iterate_batches(data, InputSpec(image_size=(224, 224)), 2))
    # u = int(224 * (10.5 - 5) / 20), v = int(224 * (8.0 - 4) / 15)
    expected_u, expected_v = int(224 * (10.5 - 5) / (25 - 5)), int(224 * (8.0 - 4) / (19 - 4))
    assert batch.parts.shape == (2, 2, 3)
    assert batch.parts[0, 0].tolist() == [expected_u, expected_v, 1.0]
    assert batch.parts[0, 1].tolist() == [0.0, 0.0, 0.0]
    uncropped = open_dataset(tmp_path, crop_to_box=False)
    assert uncropped[0].image.size == (40, 30) and uncropped.has_object_boxes and not data.has_object_boxes
    boxes = next(iterate_batches(uncropped, InputSpec(image_size=(60, 80)), 1)).boxes
    assert boxes[0].tolist() == [5 * 2.0, 4 * 2.0, 25 * 2.0, 19 * 2.0]  # (5, 4, 25, 19) scaled by 80/40, 60/30
    assert batch.boxes is None
    parts = next(iterate_batches(uncropped, InputSpec(image_size=(60, 80)), 1)).parts
    assert parts[0, 0].tolist() == [int(80 * 10.5 / 40), int(60 * 8.0 / 30), 1.0]


def test_map_parts_truncates_toward_zero_and_keeps_edges() -> None:
    parts = np.array([[-0.05, 19.999, 1.0], [20.0, 0.0, 1.0], [3.0, 3.0, 0.0]])
    out = map_parts(parts, (20, 20), (224, 224))
    assert out.tolist() == [[0.0, 223.0, 1.0], [224.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_batches_are_normalised_with_the_model_spec(tmp_path: Path) -> None:
    data = open_dataset(make_cub(tmp_path), split="all")
    spec = InputSpec(image_size=(16, 24), mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
    batches = list(iterate_batches(data, spec, 3))
    assert [b.indices for b in batches] == [[0, 1, 2], [3]]
    assert batches[0].images.shape == (3, 3, 16, 24) and batches[0].unit.dtype == torch.float32
    assert torch.allclose(batches[0].images, normalize(batches[0].unit, spec))
    assert batches[0].labels.tolist() == [1, 0, 1]
    same = list(iterate_batches(data, spec, 3, indices=[3], prefetch=False))
    assert torch.equal(same[0].images, batches[1].images)


@pytest.mark.parametrize("edit, message", [
    (lambda r: (r / "image_class_labels.txt").unlink(), "missing image_class_labels.txt"),
    (lambda r: _write(r / "bounding_boxes.txt", ["1 1 1 5 5", "2 1 1 oops 5", "3 1 1 5 5", "4 1 1 5 5"]),
     "bounding_boxes.txt, line 2"),
    (lambda r: _write(r / "image_class_labels.txt", ["1 2", "2 1", "3 2"]), "no line for image id(s) 4"),
    (lambda r: _write(r / "image_class_labels.txt", ["1 2", "2 1", "3 2", "4 7"]), "class id(s) [7]"),
    (lambda r: _write(r / "train_test_split.txt", ["1 1", "2 0", "3 2", "4 0"]), "train_test_split.txt, line 3"),
    (lambda r: _write(r / "images.txt", ["1 001.cls/img_1.png", "1 001.cls/img_3.png"]), "image id 1 appears twice"),
    (lambda r: (r / "images" / "002.cls" / "img_1.png").unlink(), "images/002.cls/img_1.png (line 1)"),
    (lambda r: _write(r / "parts" / "part_locs.txt", ["1 1 3 3 1"]), "no line for part"),
    (lambda r: _write(r / "parts" / "part_locs.txt", ["1 1 3 3 yes"]), "part_locs.txt, line 1"),
    (lambda r: _write(r / "bounding_boxes.txt", ["1 1 1 0.5 5", "2 1 1 5 5", "3 1 1 5 5", "4 1 1 5 5"]),
     "at least 1 pixel"),
    (lambda r: _write(r / "image_class_labels.txt", ["1 2", "2 1", "3 2", "4 1", "9 1"]), "image id 9 is not"),
])
def test_cub_validation_names_file_and_line(tmp_path: Path, edit, message: str) -> None:
    edit(make_cub(tmp_path))
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        open_dataset(tmp_path, split="all")


def test_missing_boxes_or_parts_are_reported_when_needed(tmp_path: Path) -> None:
    root = make_cub(tmp_path)
    (root / "parts" / "part_locs.txt").unlink()
    data = open_dataset(root)
    assert not data.has_parts and "part_locs.txt not found" in data.parts_reason
    with pytest.raises(DatasetError, match="consistency needs part annotations.*part_locs.txt not found"):
        data.require_parts("consistency")
    assert next(iterate_batches(data, SPEC, 2)).parts is None
    (root / "bounding_boxes.txt").unlink()
    with pytest.raises(DatasetError, match="missing bounding_boxes.txt"):
        open_dataset(root)
    assert open_dataset(root, crop_to_box=False)[0].box is None
    (root / "train_test_split.txt").unlink()
    with pytest.raises(DatasetError, match="train_test_split.txt"):
        open_dataset(root, crop_to_box=False, split="test")


def test_imagefolder_with_and_without_splits(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for cls in ("b_cls", "a_cls"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (9, 7), (10, 20, 30)).save(tmp_path / split / cls / "x.png")
    data = open_dataset(tmp_path, split="test")
    assert data.kind == "imagefolder" and data.class_names == ("a_cls", "b_cls") and len(data) == 2
    assert len(open_dataset(tmp_path, split="all")) == 4
    assert data[1].label == 1 and data[1].box is None and data[1].parts is None
    assert "ImageFolder has no part annotations" in data.parts_reason
    flat = open_dataset(tmp_path / "train")
    assert flat.split == "all" and len(flat) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="expected class folders"):
        open_dataset(tmp_path / "empty")


def test_synthetic_set_reads_as_cub_with_masks(tmp_path: Path) -> None:
    config = SyntheticConfig(image_size=48, n_train_per_class=1, n_test_per_class=1, seed=2)
    root = generate_dataset(tmp_path / "syn", config)
    data = open_dataset(root, split="test")
    assert len(data) == 8 and data.part_names == PART_NAMES and data.has_masks
    batch = next(iterate_batches(data, InputSpec(image_size=(48, 48)), 8, with_masks=True))
    assert batch.masks.shape == (8, 48, 48)
    # every visible keypoint lies on its own part in the (cropped, resized) mask, up to resampling
    hits = []
    for b in range(8):
        for k in range(len(PART_NAMES)):
            u, v, vis = batch.parts[b, k].tolist()
            if vis:
                window = batch.masks[b, max(0, int(v) - 1):int(v) + 2, max(0, int(u) - 1):int(u) + 2]
                hits.append(bool((window == k + 1).any()))
    assert np.mean(hits) > 0.95


def test_stanford_cars_and_dogs_layouts(tmp_path: Path) -> None:
    cars = tmp_path / "cars"
    for folder, name in (("cars_train", "00001.jpg"), ("cars_test", "00001.jpg")):
        (cars / folder).mkdir(parents=True)
        Image.new("RGB", (30, 20)).save(cars / folder / name)
    (cars / "devkit").mkdir()
    savemat(cars / "devkit" / "cars_meta.mat", {"class_names": np.array(["Audi", "BMW"], dtype=object)})
    annos = {"annotations": np.array([(2.0, 3.0, 12.0, 13.0, 2, "00001.jpg")], dtype=[
        ("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")])}
    savemat(cars / "devkit" / "cars_train_annos.mat", annos)
    savemat(cars / "cars_test_annos_withlabels.mat", annos)
    data = open_dataset(cars, split="all")
    assert data.kind == "cars" and len(data) == 2 and data.class_names == ("Audi", "BMW")
    assert data[0].label == 1 and data[0].image.size == (10, 10) and not data.has_parts
    assert "no part annotations" in data.parts_reason

    dogs = tmp_path / "dogs"
    (dogs / "Images" / "n01-Pug").mkdir(parents=True)
    (dogs / "Annotation" / "n01-Pug").mkdir(parents=True)
    Image.new("RGB", (30, 20)).save(dogs / "Images" / "n01-Pug" / "a.jpg")
    (dogs / "Annotation" / "n01-Pug" / "a").write_text(
        "<annotation><object><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>12</ymax></bndbox></object>"
        "</annotation>")
    (dogs / "lists").mkdir()
    savemat(dogs / "lists" / "test_list.mat", {"file_list": np.array(["n01-Pug/a.jpg"], dtype=object),
                                               "labels": np.array([1])})
    data = open_dataset(dogs)
    assert data.kind == "dogs" and data.class_names == ("Pug",) and data[0].image.size == (8, 10)
    with pytest.raises(DatasetError, match="train_list.mat"):
        open_dataset(dogs, split="train")
