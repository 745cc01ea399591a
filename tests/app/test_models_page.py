"""AppTest of the Models page's "Add a model": research uploads, local folders, refused files."""

from __future__ import annotations

import io
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.conftest import VIEWS, app_test
from tests.models.legacy import malicious as mal
from tests.models.legacy import writers as w

PAGE = VIEWS / "models.py"


def _bytes(obj: object, fmt: str, classes: list[type] = ()) -> bytes:
    buffer = io.BytesIO()
    with w.importable(list(classes)):
        import torch

        torch.save(obj, buffer, _use_new_zipfile_serialization=fmt == "zip")
    return buffer.getvalue()


def _page() -> AppTest:
    at = app_test(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def _submit(at: AppTest) -> AppTest:
    at.button(key="models.add.submit").click().run()
    assert not at.exception, at.exception
    return at


def test_upload_a_research_checkpoint_names_it_and_lists_it(app_env: None) -> None:
    at = _page()
    net = w.ppnet()
    at.file_uploader(key="models.add.upload").set_value(
        ("10_18push0.7822.pth", _bytes(net, "legacy", w.research_classes(net)), "application/octet-stream"))
    at.text_input(key="models.add.name").set_value("my protopnet")
    _submit(at)
    assert not at.error, [e.value for e in at.error]
    assert any("my protopnet" in s.value and "protopnet" in s.value for s in at.success)
    assert "my protopnet" in [h.value for h in at.subheader]


def test_a_malicious_upload_is_refused_with_the_reason(app_env: None, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    at = _page()
    at.file_uploader(key="models.add.upload").set_value(
        ("evil.pth", _bytes(mal.payloads(sentinel)["posix.system"](), "zip"), "application/octet-stream"))
    _submit(at)
    assert any("posix.system" in e.value for e in at.error), [e.value for e in at.error]
    assert not sentinel.exists()
    assert "evil" not in [h.value for h in at.subheader]


def test_a_local_prototree_folder_is_added(app_env: None, tmp_path: Path) -> None:
    folder = w.save_prototree_folder(w.prototree(), tmp_path / "run")
    at = _page()
    at.text_input(key="models.add.path").set_value(str(folder))
    _submit(at)
    assert not at.error, [e.value for e in at.error]
    assert any("prototree" in s.value for s in at.success)
    assert "run" in [h.value for h in at.subheader]


def test_ambiguous_state_dict_needs_the_family(app_env: None, tmp_path: Path) -> None:
    path = w.save(w.ppnet().state_dict(), tmp_path / "state.pth", "zip")
    at = _page()
    at.text_input(key="models.add.path").set_value(str(path))
    _submit(at)
    assert any("family hint" in e.value for e in at.error)
    at.selectbox(key="models.add.family").set_value("tesnet")
    _submit(at)
    assert any("tesnet" in s.value for s in at.success)
