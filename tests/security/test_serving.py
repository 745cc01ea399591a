"""Typed server paths, per-session uploads and the byte-bounded image cache (no child process needed:
these read no file contents and allocate nothing large)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
from PIL import Image

from protoviz.errors import PathNotAllowedError, UploadError
from protoviz.lru import ByteBoundedCache
from protoviz.paths import ENV_ROOTS, PathPolicy
from protoviz.uploads import SessionUploads, UploadLimits, sweep_stale, upload_base


def test_typed_paths_are_off_unless_the_operator_lists_roots(tmp_path: Path) -> None:
    policy = PathPolicy.from_env({})
    assert not policy.enabled
    with pytest.raises(PathNotAllowedError, match="turned off"):
        policy.resolve(str(tmp_path))
    assert not PathPolicy.from_env({ENV_ROOTS: str(tmp_path / "missing")}).enabled


def _policy(tmp_path: Path) -> tuple[PathPolicy, Path, Path]:
    root, outside = tmp_path / "data", tmp_path / "private"
    (root / "cub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    (root / "escape").symlink_to(outside)
    uploads = root / "uploads"
    uploads.mkdir()
    return PathPolicy.from_env({ENV_ROOTS: f"{root}{os.pathsep}{tmp_path / 'nowhere'}"}, denied=(uploads,)), root, outside


def test_paths_inside_roots_resolve_and_are_shown_relative(tmp_path: Path) -> None:
    policy, root, _ = _policy(tmp_path)
    assert policy.roots == (root.resolve(),)
    assert policy.resolve(str(root / "cub")) == (root / "cub").resolve()
    assert policy.resolve("cub") == (root / "cub").resolve()  # relative to the first root
    assert policy.resolve(str(root / "cub" / "not-yet")) == (root / "cub" / "not-yet").resolve()
    assert policy.display(root / "cub" / "images.txt") == "data/cub/images.txt"


@pytest.mark.parametrize("typed", ["{outside}/secret.txt", "{outside}/missing.txt", "{root}/../private/secret.txt",
                                   "{root}/escape/secret.txt", "{root}/uploads/session-x/model.pth", "/etc/passwd",
                                   "/nonexistent/at/all", "x" * 5000, "{root}/cub\x00/x", ""])
def test_the_same_refusal_whether_or_not_the_path_exists(tmp_path: Path, typed: str) -> None:
    policy, root, outside = _policy(tmp_path)
    text = typed.format(root=root, outside=outside)
    with pytest.raises(PathNotAllowedError) as refused:
        policy.resolve(text)
    typed_part, _, rest = str(refused.value).rpartition(" is not inside ")
    assert rest == "the folders this server allows (data)"  # nothing about the path but the text typed
    assert typed_part in ("''", repr(text.strip()), repr(text.strip()[:80] + "..."))


def test_uploads_are_private_unique_bounded_and_removed(tmp_path: Path) -> None:
    base = upload_base({"PROTOVIZ_UPLOAD_DIR": str(tmp_path / "up")})
    assert oct(base.stat().st_mode & 0o777) == "0o700"
    one = SessionUploads(base, UploadLimits(max_file_bytes=100, max_session_bytes=150))
    other = SessionUploads(base, UploadLimits(max_file_bytes=100, max_session_bytes=150))
    assert one.folder != other.folder and oct(one.folder.stat().st_mode & 0o777) == "0o700"
    first = one.save("../../etc/model.pth", b"a" * 60)
    second = one.save("model.pth", b"b" * 60)
    assert first != second and first.parent == second.parent == one.folder  # same name: two files
    assert first.read_bytes() == b"a" * 60 and one.original_name(second) == "model.pth"
    with pytest.raises(UploadError, match="limited to"):
        one.save("big.pth", b"c" * 101)
    with pytest.raises(UploadError, match="more than"):
        one.save("third.pth", b"d" * 60)  # 180 > 150 for the session
    one.discard(first)
    assert not first.exists() and second.exists()
    other.discard(second)  # another session's file is left alone
    assert second.exists()
    folder = one.folder
    del one
    gc.collect()
    assert not folder.exists()  # the session ended: its folder went with it
    assert other.folder.exists()
    other.close()
    assert not other.folder.exists()


def test_stale_session_folders_are_swept(tmp_path: Path) -> None:
    base = upload_base({"PROTOVIZ_UPLOAD_DIR": str(tmp_path / "up")})
    old = base / "session-dead"
    old.mkdir()
    os.utime(old, (0, 0))
    fresh = SessionUploads(base)
    assert sweep_stale(base) == 1 and not old.exists() and fresh.folder.exists()


def test_upload_limits_come_from_the_environment() -> None:
    limits = UploadLimits.from_env({"PROTOVIZ_MAX_UPLOAD_MB": "5", "PROTOVIZ_SESSION_DISK_MB": "nonsense"})
    assert limits.max_file_bytes == 5 * 2**20 and limits.max_session_bytes == UploadLimits().max_session_bytes


def test_the_image_cache_is_bounded_by_bytes() -> None:
    cache: ByteBoundedCache[Image.Image] = ByteBoundedCache(1000, lambda im: im.width * im.height * 3)
    images = [Image.new("RGB", (10, 10), (i, 0, 0)) for i in range(5)]  # 300 bytes each
    for i, image in enumerate(images):
        cache.put(i, image)
    assert len(cache) == 3 and cache.total_bytes == 900 and cache.get(0) is None and cache.get(4) is images[4]
    cache.get(2)
    cache.put(5, Image.new("RGB", (10, 10)))
    assert cache.get(3) is None and cache.get(2) is images[2]  # least recently used went first
    cache.put(6, Image.new("RGB", (100, 100)))  # larger than the whole budget: not kept
    assert cache.get(6) is None and cache.total_bytes <= 1000
