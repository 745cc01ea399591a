"""Models that stay: a model added on the Models page is kept in the workspace, so a new session (a
refresh) and a cleared process cache (a server restart) still have it, until it is removed."""

from __future__ import annotations

import shutil
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, TIMEOUT, VIEWS, app_test, with_owner


def script() -> None:
    """Runs inside AppTest: add / remove through app.state, then list and load every model."""
    import streamlit as st

    from app.state import add_user_model, available_models, get_model, remove_user_model
    from app.widgets import show_error
    from protoviz.errors import ProtovizError

    for name, path in st.session_state.get("to_add", []):
        try:
            add_user_model(name, path)
        except ProtovizError as error:
            show_error(error)
    for name in st.session_state.get("to_remove", []):
        remove_user_model(name)
    models = available_models()
    st.markdown("models: " + ",".join(sorted(models)))
    for name, entry in models.items():
        if entry.origin == "added":
            st.markdown(f"{name}: {get_model(name).model.num_prototypes} prototypes, origin {entry.origin}")


def session(**state: object) -> AppTest:
    at = with_owner(AppTest.from_function(script, default_timeout=TIMEOUT))
    for name, value in state.items():
        at.session_state[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def test_an_added_model_survives_a_refresh_and_a_restart_until_removed(app_env: None, model_dir: Path,
                                                                        tmp_path: Path) -> None:
    upload = tmp_path / "uploads" / "mine.safetensors"  # e.g. a session's upload folder, removed later
    upload.parent.mkdir()
    shutil.copy(model_dir / "tiny_log.safetensors", upload)
    first = session(to_add=[("mine", str(upload))])
    assert "models: mine,tiny_cosine,tiny_log" in texts(first)
    shutil.rmtree(upload.parent)
    refreshed = session()  # a new browser session
    assert "models: mine,tiny_cosine,tiny_log" in texts(refreshed)
    assert "mine: 6 prototypes, origin added" in texts(refreshed)
    st.cache_resource.clear()  # what a server restart loses: loaded models, the workspace and job objects
    restarted = session()
    assert "mine: 6 prototypes, origin added" in texts(restarted)
    [kept] = Workspace(owner=OWNER).models.all()
    assert kept.path.is_file() and kept.path.is_relative_to(Workspace(owner=OWNER).home)
    again = session(to_add=[("mine", str(model_dir / "tiny_cosine.safetensors"))])
    assert any("already kept" in e.value for e in again.error)
    removed = session(to_remove=["mine"])
    assert "models: tiny_cosine,tiny_log" in texts(removed)
    assert "models: tiny_cosine,tiny_log" in texts(session()) and not kept.path.exists()


def test_a_bad_file_is_refused_and_nothing_is_kept(app_env: None, tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    at = session(to_add=[("bad", str(broken))])
    assert any(e.value.startswith("broken.safetensors") for e in at.error)
    assert Workspace(owner=OWNER).models.all() == [] and not list((Workspace(owner=OWNER).home / "models").glob("*/*"))


def test_models_page_adds_and_removes_a_kept_model(app_env: None, model_dir: Path) -> None:
    at = app_test(VIEWS / "models.py")
    at.run()
    at.file_uploader(key="models.add.upload").set_value(
        ("kept.safetensors", (model_dir / "tiny_log.safetensors").read_bytes(), "application/octet-stream"))
    at.text_input(key="models.add.name").set_value("kept one")
    at.button(key="models.add.submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    later = app_test(VIEWS / "models.py")
    later.run()
    assert "kept one" in [h.value for h in later.subheader]
    later.button(key="models.remove.kept one").click().run()
    assert not later.exception, later.exception
    assert "kept one" not in [h.value for h in later.subheader] and Workspace(owner=OWNER).models.all() == []


