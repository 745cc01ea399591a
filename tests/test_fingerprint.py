"""Dataset fingerprints: stable, independent of where the folder is, changed by any change to an image's
file, label, box or parts, bounded, and safe with symlink loops."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from protoviz.data.datasets import open_dataset
from protoviz.errors import DatasetError
from protoviz.fingerprint import bytes_fingerprint, combine, dataset_fingerprint, folder_fingerprint
from tests.data.test_datasets import make_cub


def test_a_dataset_keeps_its_fingerprint_when_moved_and_loses_it_when_an_image_changes(tmp_path: Path) -> None:
    root = make_cub(tmp_path / "cub", n=6)
    calls: list[tuple[int, int | None, str]] = []
    first = dataset_fingerprint(open_dataset(root), progress=lambda d, t, s="": calls.append((d, t, s)))
    assert len(first) == 64 and calls == [(3, 3, "fingerprint")]
    assert dataset_fingerprint(open_dataset(root)) == first
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved, copy_function=shutil.copy2)  # copy2 keeps mtimes
    assert dataset_fingerprint(open_dataset(moved)) == first
    assert dataset_fingerprint(open_dataset(root, split="train")) != first
    assert dataset_fingerprint(open_dataset(root, crop_to_box=False)) != first
    image = open_dataset(root).records[0].path
    info = image.stat()
    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert dataset_fingerprint(open_dataset(root)) != first


def test_labels_boxes_and_parts_are_part_of_the_fingerprint(tmp_path: Path) -> None:
    root = make_cub(tmp_path / "cub", n=4)
    seen = [dataset_fingerprint(open_dataset(root, split="all"))]
    for name, old, new in (("bounding_boxes.txt", "1 5.7 4.2", "1 5.7 4.3"),
                           ("parts/part_locs.txt", "1 1 10.5 8.0", "1 1 10.5 9.0"),
                           ("image_class_labels.txt", "1 2", "1 1")):
        path = root / name
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new, 1))  # the image files stay as they are
        seen.append(dataset_fingerprint(open_dataset(root, split="all")))
    assert len(set(seen)) == 4


def test_a_missing_image_and_too_many_files_are_refused(tmp_path: Path) -> None:
    root = make_cub(tmp_path / "cub", n=4)
    data = open_dataset(root)
    with pytest.raises(DatasetError, match="more than the 1 a fingerprint reads"):
        dataset_fingerprint(data, max_files=1)
    data.records[0].path.unlink()
    with pytest.raises(DatasetError, match="cannot read the file"):
        dataset_fingerprint(data)


def test_folder_fingerprint_sees_renames_and_skips_hidden_files_and_loops(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "1.png").write_bytes(b"one")
    (root / "b.txt").write_bytes(b"two")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    first = folder_fingerprint(root)
    (root / ".cache").write_bytes(b"ignored")
    assert folder_fingerprint(root) == first
    (root / "b.txt").rename(root / "c.txt")
    assert folder_fingerprint(root) != first
    with pytest.raises(DatasetError, match="more than 1 files"):
        folder_fingerprint(root, max_files=1)
    with pytest.raises(DatasetError, match="no such folder"):
        folder_fingerprint(root / "missing")


def test_bytes_and_combined_fingerprints() -> None:
    assert bytes_fingerprint([("a.png", b"1")]) != bytes_fingerprint([("a.png", b"2")])
    assert bytes_fingerprint([("a.png", b"1")]) != bytes_fingerprint([("b.png", b"1")])
    assert combine(["x", "y"]) == combine(["y", "x"]) != combine(["x"])
