"""Reading user-named files safely: regular files only, never more than a limit, never blocking.

``/dev/zero`` grows without end and a FIFO blocks ``open()`` forever; both are refused here before
a byte is read. Files are opened non-blocking, checked with ``fstat`` on the open descriptor (so the
check and the read concern the same file), and read to at most ``limit + 1`` bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from protoviz.errors import ProtovizError

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 24
_COPY_BLOCK = 1 << 20


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


@contextmanager
def open_regular(path: Path, error: type[ProtovizError], label: str | None = None) -> Iterator[tuple[int, int]]:
    """Yield (file descriptor, size) of a regular file; ``error`` for anything else (missing, folder,
    device, pipe, unreadable, name too long)."""
    label = label or Path(path).name
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise error(f"{label}: no such file") from None
    except OSError as failure:
        raise error(f"{label} cannot be opened ({_reason(failure)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{label} is not a regular file (a folder, device or pipe); only ordinary files are read")
        yield fd, info.st_size
    finally:
        os.close(fd)


def read_regular_file(path: Path, limit: int, error: type[ProtovizError], label: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else ``error`` saying why."""
    label = label or Path(path).name
    with open_regular(path, error, label) as (fd, size):
        if size > limit:
            raise error(f"{label} is {_size(size)}; the limit is {_size(limit)}")
        chunks: list[bytes] = []
        total = 0
        want = size + 1  # a regular file comes back in one read (one buffer, no join) unless it grew
        try:
            while total <= limit:
                chunk = os.read(fd, min(want if not chunks else _CHUNK, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError as failure:
            raise error(f"{label} cannot be read ({_reason(failure)})") from None
    if total > limit:
        raise error(f"{label} is larger than {_size(limit)} (it grew while being read)")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def copy_stream(reader: BinaryIO, writer: BinaryIO, limit: int, too_large: Callable[[], Exception],
                digest: Any = None) -> int:
    """Copy ``reader`` to ``writer`` in 1 MB blocks (never the whole stream in memory), feeding ``digest``
    (a hashlib object) if given; raise ``too_large()`` as soon as more than ``limit`` bytes came. Returns
    the bytes copied. The caller removes a partly written file."""
    copied = 0
    for block in iter(lambda: reader.read(_COPY_BLOCK), b""):
        copied += len(block)
        if copied > limit:
            raise too_large()
        if digest is not None:
            digest.update(block)
        writer.write(block)
    return copied


def read_head(path: Path, count: int, error: type[ProtovizError], label: str | None = None) -> tuple[bytes, int]:
    """The first ``count`` bytes of a regular file and its size."""
    with open_regular(path, error, label) as (fd, size):
        try:
            return os.read(fd, count), size
        except OSError as failure:
            raise error(f"{label or Path(path).name} cannot be read ({_reason(failure)})") from None


def read_range(path: Path, start: int, count: int, error: type[ProtovizError], label: str | None = None) -> bytes:
    """``count`` bytes of a regular file from ``start`` (fewer at the end of the file)."""
    with open_regular(path, error, label) as (fd, _):
        try:
            return os.pread(fd, count, start)
        except OSError as failure:
            raise error(f"{label or Path(path).name} cannot be read ({_reason(failure)})") from None


def _size(count: int) -> str:
    if count >= 1 << 30:
        return f"{count / 2**30:.1f} GiB"
    return f"{count / 2**20:.0f} MB" if count >= 1 << 20 else f"{count} bytes"
