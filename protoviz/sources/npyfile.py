"""Reading the ``.npy`` files a research push wrote, without pickle and with sizes checked first.

The header (shape, dtype) is read and checked against what the caller expects, and the file size
against the bytes the header promises, before any array is allocated; ``np.load`` then runs with
``allow_pickle=False``. Every problem is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protoviz.errors import CheckpointError

MAX_NPY_BYTES = 64 * 1024 * 1024


def read_npy(path: Path, ndim: int, kinds: str, max_bytes: int = MAX_NPY_BYTES) -> np.ndarray:
    """The array in ``path``: ``ndim`` dimensions, dtype kind in ``kinds`` (e.g. ``"iu"``, ``"f"``)."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read it ({error})") from error
    if size > max_bytes:
        raise CheckpointError(f"{path}: {size / 2**20:.0f} MB is more than the {max_bytes / 2**20:.0f} MB "
                              "such a file can hold")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise CheckpointError(f"{path}: unsupported .npy version {version}")
            offset = handle.tell()
    except CheckpointError:
        raise
    except (ValueError, OSError, SyntaxError) as error:
        raise CheckpointError(f"{path}: not a readable .npy file ({error})") from error
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None:
        raise CheckpointError(f"{path}: expected a numeric array of kind {kinds!r}, found dtype {dtype}")
    if len(shape) != ndim:
        raise CheckpointError(f"{path}: expected {ndim} dimensions, found shape {shape}")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise CheckpointError(f"{path}: the header promises {expected} bytes but the file has {size} "
                              "(truncated or corrupt)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable .npy file ({error})") from error
    return np.ascontiguousarray(array)
