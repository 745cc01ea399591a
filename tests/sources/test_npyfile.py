"""Push-folder .npy files: read without pickle, header checked before any allocation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protoviz.errors import CheckpointError
from protoviz.sources.npyfile import read_npy


def test_reads_push_box_rows(tmp_path: Path) -> None:
    rows = np.full((4, 6), -1)  # what ProtoPNet's push allocates: int64
    rows[1] = (3, 0, 10, 2, 12, 1)
    np.save(tmp_path / "bb10.npy", rows)
    assert np.array_equal(read_npy(tmp_path / "bb10.npy", 2, "iu"), rows)


@pytest.mark.parametrize("array, kinds, ndim, message", [
    (np.array([{"a": 1}], dtype=object), "iu", 1, "numeric array"),
    (np.zeros((2, 6), dtype=np.float32), "iu", 2, "numeric array"),
    (np.zeros((2, 3, 6), dtype=np.int64), "iu", 2, "dimensions"),
    (np.zeros(2, dtype=[("a", "i4")]), "V", 1, "numeric array"),
])
def test_refuses_other_arrays(tmp_path: Path, array: np.ndarray, kinds: str, ndim: int, message: str) -> None:
    np.save(tmp_path / "x.npy", array, allow_pickle=True)
    with pytest.raises(CheckpointError, match=message):
        read_npy(tmp_path / "x.npy", ndim, kinds)


def test_refuses_truncated_and_padded_files(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((100, 6), dtype=np.int64))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-8])
    (tmp_path / "long.npy").write_bytes(data + b"\0" * 8)
    for name in ("cut.npy", "long.npy"):
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            read_npy(tmp_path / name, 2, "iu")


def test_refuses_huge_promise_before_allocating(tmp_path: Path) -> None:
    with open(tmp_path / "huge.npy", "wb") as handle:  # a header promising 48 TB, then 16 bytes
        np.lib.format.write_array_header_1_0(handle, {"descr": "<i8", "fortran_order": False,
                                                      "shape": (10**12, 6)})
        handle.write(b"\0" * 16)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_npy(tmp_path / "huge.npy", 2, "iu")
    (tmp_path / "big.npy").write_bytes(b"\x93NUMPY" + b"\0" * 2048)
    with pytest.raises(CheckpointError, match="MB"):
        read_npy(tmp_path / "big.npy", 2, "iu", max_bytes=1024)


def test_refuses_non_npy(tmp_path: Path) -> None:
    (tmp_path / "x.npy").write_bytes(b"PK\x03\x04 a zip, not an npy")
    with pytest.raises(CheckpointError, match="not a readable"):
        read_npy(tmp_path / "x.npy", 2, "iu")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_npy(tmp_path / "missing.npy", 2, "iu")
