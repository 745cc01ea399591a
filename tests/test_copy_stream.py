"""The one bounded streamed copy: uploads and models copied into the workspace stop as soon as a stream
holds more than it may, and leave no partial file behind."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from protoviz.errors import UploadError
from protoviz.files import copy_stream
from protoviz.uploads import SessionUploads, UploadLimits


def test_copy_stream_copies_hashes_and_counts() -> None:
    data = bytes(range(256)) * 9000  # > 2 blocks of 1 MB
    out, digest = io.BytesIO(), hashlib.sha256()
    assert copy_stream(io.BytesIO(data), out, len(data), lambda: ValueError("too big"), digest) == len(data)
    assert out.getvalue() == data and digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_copy_stream_stops_at_the_first_block_past_the_limit() -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match="too big"):
        copy_stream(io.BytesIO(b"x" * (3 << 20)), out, (1 << 20) + 1, lambda: ValueError("too big"))
    assert len(out.getvalue()) == 1 << 20  # the first block only


def test_an_upload_holding_more_than_announced_is_refused_and_removed(tmp_path: Path) -> None:
    uploads = SessionUploads(tmp_path, UploadLimits(max_file_bytes=10 << 20, max_session_bytes=20 << 20))
    with pytest.raises(UploadError, match="holds more than the 100 bytes announced"):
        uploads.save_stream("model.pth", io.BytesIO(b"y" * 5000), 100)
    assert not uploads.folder.exists() or not any(uploads.folder.iterdir())  # nothing partial is kept
