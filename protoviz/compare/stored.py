"""Keeping dataset-wide results in the workspace: arrays as (chunked) blobs, provenance back from its dict.

The workspace bounds every blob (``PROTOVIZ_WORKSPACE_BLOB_MAX_MB``, 64 MB by default), and a CUB-scale
result can hold more: the top-k crops of 2,000 prototypes x 5 patches at 48 px are 69 MB. So
:func:`put_array` stores an array under ``name`` when it is small, else as ``name[0]``, ``name[1]`` ...
cut along its first axis into pieces of at most :data:`CHUNK_BYTES`, and :func:`get_array` joins them.
Arrays are ``.npy`` bytes (:func:`~protoviz.payload.array_to_bytes`: never pickled).

A result read back from the store rebuilds its provenance with
:meth:`~protoviz.provenance.Provenance.from_dict`, so it has the same key as the result that was stored
(results join only on equal keys). Pure Python + numpy, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from protoviz.errors import WorkspaceError
from protoviz.payload import array_from_bytes, array_to_bytes

CHUNK_BYTES = 16 << 20
_CHUNK = re.compile(r"^(?P<name>.+)\[(?P<index>\d+)\]$")


def put_array(blobs: dict[str, bytes], name: str, array: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> None:
    """Store ``array`` in ``blobs`` under ``name``, cut along axis 0 into ``name[i]`` pieces when it is
    larger than ``chunk_bytes``."""
    array = np.ascontiguousarray(array)
    if array.nbytes <= chunk_bytes or array.ndim == 0 or array.shape[0] <= 1:
        blobs[name] = array_to_bytes(array)
        return
    row_bytes = max(1, array.nbytes // array.shape[0])
    rows = max(1, chunk_bytes // row_bytes)
    for i, start in enumerate(range(0, array.shape[0], rows)):
        blobs[f"{name}[{i}]"] = array_to_bytes(array[start:start + rows])


def get_array(blobs: Mapping[str, bytes], name: str) -> np.ndarray:
    """The array :func:`put_array` stored under ``name``; WorkspaceError when it is missing."""
    if name in blobs:
        return array_from_bytes(blobs[name])
    pieces = sorted((int(m["index"]), key) for key in blobs if (m := _CHUNK.match(key)) and m["name"] == name)
    if not pieces or [i for i, _ in pieces] != list(range(len(pieces))):
        raise WorkspaceError(f"the stored result lacks its array {name!r} (or some of its pieces)")
    return np.concatenate([array_from_bytes(blobs[key]) for _, key in pieces])


def has_array(blobs: Mapping[str, bytes], name: str) -> bool:
    """True when :func:`get_array` would find ``name``."""
    return name in blobs or f"{name}[0]" in blobs
