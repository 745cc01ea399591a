"""Uploaded files in a private folder per dashboard session, bounded in size and removed when done.

Each session gets its own folder (mode 0700) under one base folder (``PROTOVIZ_UPLOAD_DIR``, default
``<tmp>/protoviz-uploads-<uid>``). Every upload gets a unique name, so a second upload called like the
first never overwrites it; a rejected upload is deleted at once (:meth:`SessionUploads.discard`), and
the whole folder goes when the session object is garbage-collected (the session ended), when the
process exits, or at the next start if the process died (:func:`sweep_stale`). One file may hold at
most ``PROTOVIZ_MAX_UPLOAD_MB`` (default 2048, as ``server.maxUploadSize`` in ``.streamlit/config.toml`` and
the 2 GiB a checkpoint may have, :class:`~protoviz.models.limits.ModelLimits`) and one session at most
``PROTOVIZ_SESSION_DISK_MB`` (default 4096) on disk. Large files are copied in 1 MB blocks
(:meth:`SessionUploads.save_stream`).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from protoviz.errors import UploadError
from protoviz.files import copy_stream

ENV_DIR, ENV_MAX_FILE, ENV_SESSION = "PROTOVIZ_UPLOAD_DIR", "PROTOVIZ_MAX_UPLOAD_MB", "PROTOVIZ_SESSION_DISK_MB"
_PREFIX = "session-"


@dataclass(frozen=True)
class UploadLimits:
    """Bytes one uploaded file, and all of one session's files together, may take on disk."""

    max_file_bytes: int = 2048 * 2**20
    max_session_bytes: int = 4096 * 2**20

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UploadLimits:
        env = environ if environ is not None else os.environ
        default = cls()
        return cls(_megabytes(env.get(ENV_MAX_FILE), default.max_file_bytes),
                   _megabytes(env.get(ENV_SESSION), default.max_session_bytes))


def _megabytes(text: str | None, default: int) -> int:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return int(value * 2**20) if value > 0 else default


def upload_base(environ: Mapping[str, str] | None = None) -> Path:
    """The base folder of all sessions' upload folders, created private (0700) and owned by this user."""
    env = environ if environ is not None else os.environ
    base = Path(env.get(ENV_DIR) or Path(tempfile.gettempdir()) / f"protoviz-uploads-{os.getuid()}")
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(base)
    except OSError as error:
        raise UploadError(f"the upload folder cannot be created ({error.strerror})") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UploadError("the upload folder is not a folder owned by this server's user; set PROTOVIZ_UPLOAD_DIR")
    os.chmod(base, 0o700)
    return base.resolve()


def clean_name(name: str) -> str:
    """A safe file name keeping the upload's name and suffix (path parts and odd characters removed)."""
    base = re.split(r"[\\/]", name)[-1]
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[-100:]
    return clean or "upload"


class SessionUploads:
    """One session's private upload folder (see the module docstring)."""

    def __init__(self, base: Path, limits: UploadLimits = UploadLimits()):
        self.limits = limits
        self.folder = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base))
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.folder), True)

    def used_bytes(self) -> int:
        """Bytes of this session's files on disk."""
        try:
            return sum(entry.stat().st_size for entry in os.scandir(self.folder) if entry.is_file())
        except OSError:
            return 0

    def save(self, name: str, data: bytes) -> Path:
        """Store ``data`` under a unique name ending in the cleaned ``name``; UploadError when over a limit."""
        return self.save_stream(name, io.BytesIO(data), len(data))

    def save_stream(self, name: str, reader: BinaryIO, size: int) -> Path:
        """Copy ``size`` bytes from ``reader`` in 1 MB blocks (no second copy of a large upload in memory) to
        a unique name ending in the cleaned ``name``; UploadError when over a limit (checked before writing
        and again while copying, in case ``reader`` holds more than it said)."""
        limits = self.limits
        if size > limits.max_file_bytes:
            raise UploadError(f"{clean_name(name)} is {size / 2**20:.0f} MB; uploads are limited to "
                              f"{limits.max_file_bytes / 2**20:.0f} MB on this server")
        if self.used_bytes() + size > limits.max_session_bytes:
            raise UploadError(f"this session's uploads would take more than {limits.max_session_bytes / 2**20:.0f} MB "
                              "on disk; remove a model or reload the page")
        path = self.folder / f"{secrets.token_hex(6)}-{clean_name(name)}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as handle:  # size <= limits.max_file_bytes (checked above)
                copy_stream(reader, handle, size,
                            lambda: UploadError(f"{clean_name(name)} holds more than the {size} bytes announced"))
        except OSError as error:
            path.unlink(missing_ok=True)
            raise UploadError(f"{clean_name(name)} could not be stored ({error.strerror})") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is one of this session's uploads."""
        return Path(path).parent == self.folder

    def discard(self, path: Path) -> None:
        """Delete one of this session's uploads (a rejected file); other paths are left alone."""
        if self.owns(path):
            Path(path).unlink(missing_ok=True)

    def close(self) -> None:
        """Delete the folder now (also done automatically when this object is collected)."""
        self._remove()

    @staticmethod
    def original_name(path: Path) -> str:
        """The uploaded file's cleaned name, without the unique prefix."""
        return Path(path).name.split("-", 1)[-1]


def sweep_stale(base: Path, max_age_s: float = 24 * 3600) -> int:
    """Remove session folders untouched for ``max_age_s`` (left by a process that died); returns how many."""
    removed, now = 0, time.time()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.name.startswith(_PREFIX) and entry.is_dir(follow_symlinks=False) \
                    and now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed
