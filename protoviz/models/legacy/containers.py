"""The container formats of PyTorch checkpoints, read without ``torch.load``.

Every pickle inside goes through :class:`~protoviz.models.legacy.unpickler.RestrictedUnpickler`, and
every storage is taken from bytes present in the file (never allocated from a size the file claims
beyond them):

- **zip** (``torch.save`` since PyTorch 1.6): ``<prefix>/data.pkl`` plus one record
  ``<prefix>/data/<key>`` per storage. Members must be stored, not compressed (``torch.save`` never
  compresses; a DEFLATE member could inflate a small file into gigabytes), and together no larger
  than the archive. TorchScript archives are refused.
- **legacy stream** (``_use_new_zipfile_serialization=False``, PyTorch < 1.6): the pickles of the
  magic number, protocol version and system info, the main pickle (storages as persistent ids), the
  list of storage keys, then each storage as an int64 element count and its bytes.
- **plain pickle** (protocol 2 or later; ProtoTree's ``tree.pkl``): storages are nested legacy
  streams passed to ``torch.storage._load_from_bytes``, read here the same way (one level deep).

All storages of one file together may not exceed the file's own size; the number of elements they
hold is returned with the object, so the model built from it can be checked against it
(:func:`protoviz.models.limits.build_within_budget`).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protoviz import files
from protoviz.errors import CheckpointError
from protoviz.models.legacy.unpickler import RestrictedUnpickler, StorageKind, is_module_class
from protoviz.models.limits import DEFAULT_LIMITS, ModelLimits, safe_name

LOG = logging.getLogger("protoviz.checkpoints")
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's local file header layout (30 bytes)
_MAX_KEY = 64


@dataclass(frozen=True)
class Loaded:
    """A checkpoint's top-level object and the number of tensor elements its storages hold."""

    obj: Any
    elements: int


class _Budget:
    """Storage bytes still allowed (at most the file's size) and the elements read so far."""

    def __init__(self, total_bytes: int, limits: ModelLimits):
        self.left, self.elements, self.limits = total_bytes, 0, limits

    def take(self, nbytes: int, elements: int) -> None:
        if nbytes > self.left:
            raise CheckpointError(f"its storages claim more bytes than the file holds ({nbytes:,} more needed, "
                                  f"{self.left:,} left)")
        self.left -= nbytes
        self.elements += elements


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular checkpoint file of at most ``limit`` bytes (see :mod:`protoviz.files`)."""
    return files.read_regular_file(path, limit, CheckpointError)


def read_checkpoint(data: bytes, label: str, limits: ModelLimits = DEFAULT_LIMITS) -> Loaded:
    """Read checkpoint bytes in zip, legacy-stream or plain-pickle format (see the module docstring)."""
    if len(data) > limits.max_file_bytes:
        raise CheckpointError(f"{label} is larger than {limits.max_file_bytes / 2**30:.1f} GiB")
    budget = _Budget(len(data), limits)
    try:
        if data[:4] == b"PK\x03\x04":
            obj = _read_zip(data, budget)
        elif _is_legacy(data, limits):
            obj = _read_legacy(io.BytesIO(data), budget, nested=False)
        elif data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
            obj = _unpickler(io.BytesIO(data), budget, None, nested=False).load()
        else:
            raise CheckpointError("it is neither a torch.save file (zip or legacy) nor a pickle of protocol 2 "
                                  "or later (protocol 0/1 pickles are not read)")
    except CheckpointError as error:
        raise CheckpointError(f"{label}: {error}") from None
    except MemoryError:
        raise CheckpointError(f"{label} needs more memory than is available to read") from None
    except RecursionError:
        raise CheckpointError(f"{label}: its objects are nested too deeply") from None
    except Exception as error:  # corrupt input raises many kinds; none of their text is shown
        LOG.info("unreadable checkpoint %s", label, exc_info=error)
        raise CheckpointError(f"{label} is corrupt or truncated: it could not be read as a PyTorch or pickle "
                              f"checkpoint ({type(error).__name__})") from None
    return Loaded(obj, budget.elements)


def _unpickler(stream: io.BytesIO, budget: _Budget, persistent: Any, nested: bool) -> RestrictedUnpickler:
    from_bytes = None if nested else (lambda data: _read_nested_storage(data, budget))
    return RestrictedUnpickler(stream, persistent=persistent, load_from_bytes=from_bytes, limits=budget.limits)


def _small_pickle(stream: io.BytesIO, limits: ModelLimits, ops: int = 64) -> Any:
    """One short pickle (magic number, protocol, system info, key list) without persistent ids."""
    small = dataclasses.replace(limits, max_pickle_ops=ops)
    return RestrictedUnpickler(stream, limits=small).load()


def _is_legacy(data: bytes, limits: ModelLimits) -> bool:
    if data[:1] != b"\x80":
        return False
    try:
        first = _small_pickle(io.BytesIO(data[:64]), limits, ops=8)
    except Exception:  # noqa: BLE001 - anything but the magic number means "not a legacy stream"
        return False
    return type(first) is int and first == LEGACY_MAGIC


def _storage(raw: memoryview | None, nbytes: int, dtype: torch.dtype, swap: bool) -> torch.storage.TypedStorage:
    """A CPU storage of ``nbytes`` (copied from ``raw`` when given, else uninitialised until filled)."""
    target = torch.empty(nbytes, dtype=torch.uint8)
    if raw is not None and nbytes:
        target.numpy()[:] = np.frombuffer(raw, dtype=np.uint8, count=nbytes)
    untyped = target.untyped_storage()
    if swap and _element_size(dtype) > 1:
        untyped.byteswap(dtype)
    return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 48:
        raise CheckpointError(f"a storage's {what} is not a valid size")
    return value


def _key(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_KEY or "/" in value:
        raise CheckpointError("a storage key is not a short name")
    return value


def _kind(value: Any) -> StorageKind:
    if not isinstance(value, StorageKind):
        raise CheckpointError("a storage reference does not name a storage type")
    return value


# ----- zip ---------------------------------------------------------------------------------------
def _read_zip(raw: bytes, budget: _Budget) -> Any:
    limits, data = budget.limits, memoryview(raw)
    end = zipfile._EndRecData(io.BytesIO(raw))  # type: ignore[attr-defined]
    if end is None:
        raise CheckpointError("it starts like a zip archive but has no zip directory (truncated?)")
    entries, directory = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > limits.max_zip_entries or directory > limits.max_zip_entries * 512:
        raise CheckpointError(f"its zip archive lists more than {limits.max_zip_entries:,} members")
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        infos = archive.infolist()
    names = {info.filename: info for info in infos}
    if any(n.endswith(("/constants.pkl", "/code/")) or "/code/" in n for n in names):
        raise CheckpointError("it is a TorchScript archive, which protoviz does not run (export the state dict)")
    pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise CheckpointError("it is a zip archive but not a torch.save checkpoint (no single <name>/data.pkl)")
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise CheckpointError(f"its zip member {safe_name(info.filename)} is compressed or encrypted; "
                                  "torch.save stores members uncompressed, so this file was altered")
        total += info.file_size
        if total > len(data):
            raise CheckpointError("its zip members add up to more bytes than the archive holds")
    prefix = pickles[0][: -len("data.pkl")]
    swap = False
    if prefix + "byteorder" in names:
        order = bytes(_member(data, names[prefix + "byteorder"]))
        if order not in (b"little", b"big"):
            raise CheckpointError("its byteorder record is neither 'little' nor 'big'")
        swap = order.decode() != "little"
    storages: dict[str, torch.storage.TypedStorage] = {}

    def persistent(pid: Any) -> torch.storage.TypedStorage:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
            raise CheckpointError("it refers to an external object that is not a storage")
        kind, key, numel = _kind(pid[1]), _key(pid[2]), _count(pid[4], "element count")
        if key in storages:
            if storages[key].dtype != kind.dtype:
                raise CheckpointError(f"storage {safe_name(key)} is referred to with two dtypes")
            return storages[key]
        info = names.get(f"{prefix}data/{key}")
        if info is None:
            raise CheckpointError(f"it refers to storage {safe_name(key)}, which the archive lacks")
        nbytes = numel * _element_size(kind.dtype)
        if nbytes > info.file_size:
            raise CheckpointError(f"storage {safe_name(key)} claims {nbytes:,} bytes but the archive holds "
                                  f"{info.file_size:,}")
        budget.take(nbytes, numel)
        storages[key] = _storage(_member(data, info), nbytes, kind.dtype, swap)
        return storages[key]

    stream = io.BytesIO(bytes(_member(data, names[pickles[0]])))
    return _unpickler(stream, budget, persistent, nested=True).load()


def _member(data: memoryview, info: zipfile.ZipInfo) -> memoryview:
    """The bytes of a stored zip member, located through its local header (bounds-checked)."""
    start = info.header_offset
    header = bytes(data[start:start + _LOCAL_HEADER.size])
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"zip member {safe_name(info.filename)} has no valid local header")
    fields = _LOCAL_HEADER.unpack(header)
    begin = start + _LOCAL_HEADER.size + fields[-2] + fields[-1]
    if begin + info.file_size > len(data):
        raise CheckpointError(f"zip member {safe_name(info.filename)} runs past the end of the file (truncated?)")
    return data[begin:begin + info.file_size]


# ----- legacy stream -----------------------------------------------------------------------------
def _read_nested_storage(data: bytes, budget: _Budget) -> torch.storage.TypedStorage:
    """``torch.storage._load_from_bytes``: a legacy stream holding one storage (plain pickles)."""
    if not _is_legacy(data, budget.limits):
        raise CheckpointError("a pickled storage is not a torch.save stream")
    storage = _read_legacy(io.BytesIO(data), budget, nested=True)
    if not isinstance(storage, torch.storage.TypedStorage):
        raise CheckpointError("a pickled storage stream holds something other than a storage")
    return storage


def _read_legacy(stream: io.BytesIO, budget: _Budget, nested: bool) -> Any:
    limits = budget.limits
    if _small_pickle(stream, limits) != LEGACY_MAGIC or _small_pickle(stream, limits) != LEGACY_PROTOCOL:
        raise CheckpointError("its legacy torch.save header is not the expected magic number and protocol")
    info = _small_pickle(stream, limits)
    if not isinstance(info, dict) or info.get("little_endian") is False:
        raise CheckpointError("it was written on a big-endian machine, which protoviz does not read")
    roots: dict[str, torch.storage.TypedStorage] = {}
    views: dict[str, torch.storage.TypedStorage] = {}

    def persistent(pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointError("it refers to an external object that is not a storage")
        kind_name = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind_name == "module" and len(pid) == 4:
            if not is_module_class(pid[1]):
                raise CheckpointError("it names a module source for a class that is not a module")
            return pid[1]
        if kind_name != "storage" or len(pid) != 6:
            raise CheckpointError("it refers to an external object that is not a storage")
        kind, key, numel, view = _kind(pid[1]), _key(pid[2]), _count(pid[4], "element count"), pid[5]
        size = _element_size(kind.dtype)
        if key not in roots:
            budget.take(numel * size, numel)
            roots[key] = _storage(None, numel * size, kind.dtype, swap=False)
        root = roots[key]
        if root.dtype != kind.dtype:
            raise CheckpointError(f"storage {safe_name(key)} is referred to with two dtypes")
        if view is None:
            return root
        if not isinstance(view, tuple) or len(view) != 3:
            raise CheckpointError("a storage view is malformed")
        view_key, offset, length = _key(view[0]), _count(view[1], "view offset"), _count(view[2], "view size")
        if (offset + length) * size > root._untyped_storage.nbytes():
            raise CheckpointError("a storage view reaches past its storage")
        if view_key not in views:
            views[view_key] = torch.storage.TypedStorage(
                wrap_storage=root._untyped_storage[offset * size:(offset + length) * size], dtype=kind.dtype,
                _internal=True)
        return views[view_key]

    result = _unpickler(stream, budget, persistent, nested).load()
    keys = _small_pickle(stream, limits, ops=4 * len(roots) + 16)
    if not isinstance(keys, list) or len(keys) != len(roots) or {_key(k) for k in keys} != set(roots):
        raise CheckpointError("its list of storages does not match the storages its objects use")
    data = memoryview(stream.getbuffer())
    for key in keys:
        _fill(roots[_key(key)], stream, data)
    return result


def _fill(storage: torch.storage.TypedStorage, stream: io.BytesIO, data: memoryview) -> None:
    """Read one storage's int64 element count and bytes into ``storage`` (already sized)."""
    head = stream.read(8)
    if len(head) != 8:
        raise CheckpointError("its storage data ends early (truncated file?)")
    count = int.from_bytes(head, "little", signed=True)
    nbytes = storage._untyped_storage.nbytes()
    if count * _element_size(storage.dtype) != nbytes:
        raise CheckpointError("a storage's recorded size does not match its data")
    start = stream.tell()
    if start + nbytes > len(data):
        raise CheckpointError("its storage data ends early (truncated file?)")
    if nbytes:
        target = torch.empty(0, dtype=torch.uint8).set_(storage._untyped_storage)
        target.numpy()[:] = np.frombuffer(data[start:start + nbytes], dtype=np.uint8)
    stream.seek(start + nbytes)
