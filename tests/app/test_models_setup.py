"""AppTest of the Models page's set-up of a kept model: class names (server path, upload, table), load
hints, prototype sources (re-projection and push-folder import as background jobs), a model folder, the
upload limit. What is set survives a new session and a cleared process cache (a restart)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from protoviz.models.checkpoint import save_model
from protoviz.sources import project_sources
from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, VIEWS, app_test
from tests.cli.test_sources_cli import _push_run
from tests.conftest import make_tiny_model
from tests.models.legacy import writers as w
from tests.sources.conftest import lively, make_image_folder

PAGE = VIEWS / "models.py"
WAIT_S = 120.0
SOURCES_SIX = "**Prototype sources known:** 6 of 6 (projection, "


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def page() -> AppTest:
    at = app_test(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def add(path: Path, name: str, **selects: str) -> AppTest:
    at = page()
    at.text_input(key="models.add.path").set_value(str(path))
    at.text_input(key="models.add.name").set_value(name)
    for key, value in selects.items():
        at.selectbox(key=f"models.add.{key}").set_value(value)
    at.button(key="models.add.submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return page()


def card_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def kept(name: str):
    found = Workspace(owner=OWNER).models.get(name)
    assert found is not None
    return found


def restart() -> AppTest:
    st.cache_resource.clear()  # what a server restart loses: loaded models, the workspace and job objects
    return page()


def test_class_names_from_classes_txt_upload_and_table(app_env: None, model_dir: Path, tmp_path: Path) -> None:
    at = add(model_dir / "tiny_log.safetensors", "mine")
    (tmp_path / "classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n3 003.Sooty_Albatross\n")
    at.text_input(key="models.mine.classes.path").set_value(str(tmp_path / "classes.txt")).run()
    assert "3 names: Black footed Albatross, Laysan Albatross, Sooty Albatross" in [c.value for c in at.caption]
    at.button(key="models.mine.classes.save").click().run()
    assert not at.exception and not errors(at)
    assert kept("mine").class_names == ("Black footed Albatross", "Laysan Albatross", "Sooty Albatross")
    assert "**Classes (3):** Black footed Albatross" in card_text(restart())

    (tmp_path / "two.txt").write_text("a\nb\n")  # the wrong count: refused, nothing changes
    at = page()
    at.text_input(key="models.mine.classes.path").set_value(str(tmp_path / "two.txt")).run()
    assert any("gives 2 class names, but the model has 3 classes" in e for e in errors(at))

    at.radio(key="models.mine.classes.from").set_value("a text file (upload)").run()
    at.file_uploader(key="models.mine.classes.upload").set_value(("names.txt", b"x\ny\nz\n", "text/plain")).run()
    at.button(key="models.mine.classes.save").click().run()
    assert kept("mine").class_names == ("x", "y", "z")

    at = page()
    at.radio(key="models.mine.classes.from").set_value("edit in a table").run()
    assert not at.exception and not errors(at)  # the table shows the names in use; unchanged: nothing to save
    assert not [b for b in at.button if b.key == "models.mine.classes.save"]
    at.session_state["models.mine.classes.table"] = {"edited_rows": {0: {"name": "y"}}, "added_rows": [],
                                                     "deleted_rows": []}
    at.run()
    assert any("class names 1 and 2 are both 'y'" in e for e in errors(at))
    at.session_state["models.mine.classes.table"] = {"edited_rows": {0: {"name": "Laysan [x](y)"}},
                                                     "added_rows": [], "deleted_rows": []}
    at.run()
    at.button(key="models.mine.classes.save").click().run()
    assert kept("mine").class_names == ("Laysan [x](y)", "y", "z")
    assert "**Classes (3):** Laysan \\[x\\]\\(y\\), y, z" in card_text(page())  # shown as text, never a link
    at = page()
    at.button(key="models.mine.classes.reset").click().run()
    assert kept("mine").class_names is None
    assert "**Classes (3):** class\\_0" in card_text(page())


def test_protopool_slots_hint_is_kept_applied_and_explained(app_env: None, tmp_path: Path) -> None:
    path = w.save(w.protopool_checkpoint(w.protopool()), tmp_path / "best_model.pth", "zip")
    at = add(path, "pool")
    assert "*slots*: soft: 'best\\_model.pth' does not name a pushed model" in card_text(at)
    assert [s.key for s in at.selectbox if s.key and s.key.startswith("models.pool.hints.")] == \
        ["models.pool.hints.slots", "models.pool.hints.activation"]
    at.selectbox(key="models.pool.hints.slots").set_value("hard")
    at.button(key="models.pool.hints.apply").click().run()
    assert not at.exception and not errors(at)
    assert kept("pool").hints == {"slots": "hard"}
    text = card_text(restart())
    assert "*slots*: hard: chosen on the Models page" in text and "results keyed as" in text


def test_hints_chosen_when_adding_and_a_wrong_hint_is_refused(app_env: None, tmp_path: Path) -> None:
    path = w.save(w.ppnet().state_dict(), tmp_path / "state.pth", "zip")
    at = add(path, "plain", family="protopnet", activation="linear")
    assert kept("plain").hints == {"activation": "linear"} and kept("plain").family == "protopnet"
    assert "*activation*: linear: chosen on the Models page" in card_text(at)
    at.selectbox(key="models.plain.hints.family").set_value("tesnet")
    at.button(key="models.plain.hints.apply").click().run()
    assert any("activation" in e for e in errors(at))  # TesNet has no activation hint: refused, nothing kept
    assert kept("plain").family == "protopnet"
    at = page()
    at.selectbox(key="models.plain.hints.activation").set_value("as the file says")
    at.selectbox(key="models.plain.hints.family").set_value("tesnet")
    at.button(key="models.plain.hints.apply").click().run()
    assert not errors(at) and kept("plain").family == "tesnet" and kept("plain").hints == {}
    assert "TesNet" in " ".join(str(d.value) for d in page().dataframe)


def wait_for_run(kind: str = "sources", count: int = 1) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(Workspace(owner=OWNER).list_runs(kind=kind)) < count:
        assert time.monotonic() < deadline, "the sources job did not finish"
        time.sleep(0.2)
    time.sleep(0.5)  # the job's state is written just after its run


def finish(at: AppTest, name: str) -> AppTest:
    """Rerun until the job's result is attached (the job panel reruns the page when it ends)."""
    for _ in range(20):
        at.run()
        assert not at.exception, at.exception
        if (kept(name).sources or {}).get("run_id") is not None:
            return page()
        time.sleep(0.3)
    raise AssertionError(f"sources never attached: {errors(at)}")


def test_reprojection_runs_as_a_job_and_its_sources_stay(app_env: None, tmp_path: Path) -> None:
    model = lively(make_tiny_model(classes=3, per_class=2, seed=2))
    checkpoint = save_model(model, tmp_path / "plain.safetensors")
    data = make_image_folder(tmp_path / "train", per_class=3)
    at = add(checkpoint, "proj")
    assert "**Prototype sources known:** 0 of 6" in card_text(at)
    at.text_input(key="models.proj.sources.data").set_value(str(data)).run()
    at.button(key="models.proj.sources.start").click().run()
    assert not at.exception and not errors(at)
    wait_for_run()
    at = finish(at, "proj")
    assert SOURCES_SIX in card_text(at) and "jo0/train)" in card_text(at)
    [run] = Workspace(owner=OWNER).list_runs(kind="sources")
    assert kept("proj").sources["run_id"] == run.id and kept("proj").sources["found"] == 6
    restarted = restart()
    assert SOURCES_SIX in card_text(restarted)
    assert not [b for b in restarted.button if b.key == "models.proj.sources.attach"]  # already attached

    direct = project_sources(model, data, batch_size=32).sources  # what the library finds (the page's batch size)
    stored = Workspace(owner=OWNER).get_run(run.id)
    assert stored.payload.data["records"] == [s.to_dict() for s in direct]  # type: ignore[union-attr]
    assert all(name in stored.payload.blobs for j in range(6) for name in (f"image/{j}", f"patch/{j}"))

    restarted.button(key="models.proj.sources.detach").click().run()
    assert kept("proj").sources is None
    again = page()
    assert "**Prototype sources known:** 0 of 6" in card_text(again)
    again.text_input(key="models.proj.sources.data").set_value(str(data)).run()
    assert any("Found in the store" in c.value for c in again.caption)  # no second computation
    again.button(key="models.proj.sources.attach").click().run()
    assert kept("proj").sources["run_id"] == run.id


def test_push_folder_import_attaches_the_pushed_sources(app_env: None, tmp_path: Path) -> None:
    checkpoint, run, data, pushed = _push_run(tmp_path)
    at = add(checkpoint, "pushed")
    at.radio(key="models.pushed.sources.how").set_value("import an original push folder").run()
    at.text_input(key="models.pushed.sources.data").set_value(str(data))
    at.text_input(key="models.pushed.sources.push").set_value(str(run)).run()
    at.button(key="models.pushed.sources.start").click().run()
    assert not at.exception and not errors(at)
    wait_for_run()
    at = finish(at, "pushed")
    assert "**Prototype sources known:** 6 of 6 (push-folder, " in card_text(at)
    sources = kept("pushed").sources
    assert sources["epoch"] == 5 and sources["layout"]  # the epoch in the file name 5push0.9100
    stored = Workspace(owner=OWNER).get_run(sources["run_id"])
    boxes = [r["push_box"] for r in stored.payload.data["records"]]
    assert boxes == [list(b) for b in pushed.box]
    assert all(str(tmp_path) not in line for line in sources["summary"])  # server paths shown relative


def test_a_model_folder_lists_its_checkpoints(app_env: None, model_dir: Path) -> None:
    at = page()
    at.text_input(key="models.add.path").set_value(str(model_dir)).run()
    files = at.selectbox(key="models.add.folder_file")
    assert [o.split(" (")[0] for o in files.options] == ["tiny_cosine.safetensors", "tiny_log.safetensors"]
    files.set_value(model_dir / "tiny_cosine.safetensors")
    at.button(key="models.add.submit").click().run()
    assert not errors(at) and kept("tiny_cosine").path.is_file()


def test_upload_limit_is_stated_and_enforced(app_env: None, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page()
    assert any("Uploads up to 2,048 MB" in c.value for c in at.caption)  # .streamlit/config.toml and protoviz agree
    monkeypatch.setenv("PROTOVIZ_MAX_UPLOAD_MB", "0.001")
    at = app_test(PAGE)  # a new session reads the limit
    at.run()
    assert any("Uploads up to 0 MB" in c.value for c in at.caption)
    at.file_uploader(key="models.add.upload").set_value(
        ("big.safetensors", (model_dir / "tiny_log.safetensors").read_bytes(), "application/octet-stream"))
    at.button(key="models.add.submit").click().run()
    assert any("uploads are limited to 0 MB" in e for e in errors(at)), errors(at)
    assert Workspace(owner=OWNER).models.all() == []


def test_uploaded_file_is_dropped_from_the_uploader_after_adding(app_env: None, model_dir: Path) -> None:
    at = page()
    at.file_uploader(key="models.add.upload").set_value(
        ("kept.safetensors", (model_dir / "tiny_log.safetensors").read_bytes(), "application/octet-stream"))
    at.button(key="models.add.submit").click().run()
    assert not errors(at)
    assert [u.key for u in at.get("file_uploader")] == ["models.add.upload.1"]  # a fresh, empty uploader
    assert kept("kept").size_bytes == (model_dir / "tiny_log.safetensors").stat().st_size
    assert any("Added 'kept'" in s.value for s in at.success)
