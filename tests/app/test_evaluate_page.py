"""AppTest of the Evaluate page: runs are background jobs whose results are kept in the visitor's workspace
(shown again after a refresh, "From the store" on the same request), progress and Stop while running,
the data path selector (as published / clean, both side by side), the pointing game, clear errors for
bad folders and datasets without parts or masks, escaped model names."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.metrics import runner
from protoviz.models.checkpoint import save_model
from protoviz.payload import decode
from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, VIEWS, app_test
from tests.conftest import make_tiny_model

PAGE = VIEWS / "evaluate.py"
WAIT = 120.0


@pytest.fixture
def eval_env(app_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models8"
    save_model(make_tiny_model(classes=8, per_class=2, seed=0), models / "tiny8_a.safetensors")
    save_model(make_tiny_model(classes=8, per_class=1, seed=1), models / "tiny8_b.safetensors")
    monkeypatch.setenv("PROTOVIZ_MODEL_DIR", str(models))
    monkeypatch.setenv("PROTOVIZ_CACHE_DIR", str(tmp_path / "cache"))
    config = SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2, seed=1)
    return generate_dataset(tmp_path / "syn", config)


def unescaped(text: str) -> str:
    """Markdown text with its backslash escapes removed (as it reads on the page)."""
    return re.sub(r"\\(.)", r"\1", text)


def _local(at: AppTest, folder: Path) -> AppTest:
    at.run()
    at.radio(key="evaluate.source").set_value("local folder").run()
    at.text_input(key="evaluate.folder").set_value(str(folder)).run()
    return at


def runs(kind: str = "evaluate", count: int = 1) -> list:
    """The visitor's kept runs of ``kind`` once there are ``count`` (the jobs run on worker threads)."""
    ws = Workspace(owner=OWNER)
    deadline = time.monotonic() + WAIT
    while len(found := ws.list_runs(kind=kind)) < count:
        assert time.monotonic() < deadline, f"no {count} {kind} run(s) after {WAIT} s"
        time.sleep(0.1)
    return found


def settled(at: AppTest, count: int = 1) -> AppTest:
    """Wait for ``count`` kept runs, then rerun the page (as its polling does)."""
    runs(count=count)
    time.sleep(0.2)  # the job's state is written just after its run
    at.run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_run_two_models_is_kept_and_served_from_the_store(eval_env: Path) -> None:
    at = _local(app_test(PAGE), eval_env)
    assert not at.exception and not at.error
    assert at.radio(key="evaluate.path.published").value == "published"  # a CUB folder cropped to boxes
    at.multiselect(key="evaluate.models").set_value(["tiny8_a", "tiny8_b"]).run()
    metrics = ["accuracy", "consistency", "stability", "pointing_game"]
    at.multiselect(key="evaluate.metrics").set_value(metrics).run()
    at.button(key="evaluate.run").click().run()
    settled(at, 2)
    assert not at.exception and not at.error
    scores = at.dataframe[0].value
    assert list(scores["model"]) == ["tiny8_a", "tiny8_b"]
    assert {"consistency (%)", "stability (%)", "accuracy (%)", "pointing_game (%)"} <= set(scores.columns)
    table = at.dataframe[1].value
    assert len(table) == 16 and "dominant_part" in table.columns and "pointing_game" in table.columns
    assert not any(k.startswith("protoviz.results.evaluate") for k in at.session_state)  # nothing in the session
    stored = runs(count=2)
    assert {r.model_name for r in stored} == {"tiny8_a", "tiny8_b"}
    assert all(r.dataset_name.endswith("as published") for r in stored)
    record = Workspace(owner=OWNER).get_run(stored[0].id)
    result = decode(record.payload)
    assert result.provenance.key == record.key and result.provenance.dataset.description["path"] == "published"

    fresh = app_test(PAGE)  # a refresh: a new session of the same visitor, same inputs
    _local(fresh, eval_env)
    fresh.multiselect(key="evaluate.models").set_value(["tiny8_a", "tiny8_b"]).run()
    fresh.multiselect(key="evaluate.metrics").set_value(metrics).run()
    assert not fresh.exception and not fresh.get("progress")
    assert sum("From the store" in c for c in captions(fresh)) == 2
    assert fresh.dataframe[0].value["consistency (%)"].tolist() == scores["consistency (%)"].tolist()
    fresh.button(key="evaluate.run").click().run()  # the same request again: answered from the store
    assert sum("From the store" in c for c in captions(fresh)) == 2 and len(runs(count=2)) == 2
    fresh.selectbox(key="evaluate.table_model").set_value("tiny8_b").run()
    assert len(fresh.dataframe[1].value) == 8 and not fresh.exception


def test_both_data_paths_side_by_side(eval_env: Path) -> None:
    at = _local(app_test(PAGE), eval_env)
    at.multiselect(key="evaluate.metrics").set_value(["consistency", "stability"]).run()
    at.checkbox(key="evaluate.both").check().run()
    at.button(key="evaluate.run").click().run()
    settled(at, 2)
    both = next(d.value for d in at.dataframe if "difference (published − clean)" in d.value.columns)
    assert set(both["score"]) >= {"consistency", "stability"} and set(both["unit"]) == {"%"}
    row = both[both["score"] == "stability"].iloc[0]
    assert row["difference (published − clean)"] == pytest.approx(row["as published (EvalProtoPNet)"] - row["clean"])
    assert any(c.startswith("Why they differ: EvalProtoPNet evaluates crops written as JPEG") for c in captions(at))
    kept = runs(count=2)
    assert {r.dataset_name.rsplit(" · ", 1)[1] for r in kept} == {"as published", "clean"}
    assert len({r.key.dataset_fingerprint for r in kept}) == 2  # the data path is part of the dataset's identity
    at.radio(key="evaluate.path.published").set_value("clean").run()
    assert at.dataframe[0].value.shape[0] == 1 and "Scores (clean)" in [h.value for h in at.subheader]


def test_a_running_job_shows_progress_can_be_stopped_and_comes_back(
        eval_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, started = threading.Event(), threading.Event()
    original = runner.evaluate

    def slow(model, dataset, config, progress=None, **kwargs):  # type: ignore[no-untyped-def]
        progress(1, 16, "forward passes")
        started.set()
        gate.wait(WAIT)
        progress(2, 16, "forward passes")  # a stopped job ends here
        return original(model, dataset, config, progress, **kwargs)

    monkeypatch.setattr(runner, "evaluate", slow)
    at = app_test(PAGE)
    at.run()
    at.number_input(key="evaluate.limit").set_value(8).run()
    at.button(key="evaluate.run").click().run()
    assert started.wait(WAIT)
    at.run()
    [bar] = at.get("progress")
    assert "Evaluate tiny8_a on synthetic set · test · cropped to boxes · clean — forward passes: 1/16" \
        in unescaped(bar.proto.text)  # the job panel may escape the label's markdown
    assert not any("press Run" in i.value for i in at.info)
    again = app_test(PAGE)  # a refresh while it runs: the same job's panel, not a second job
    again.run()
    again.number_input(key="evaluate.limit").set_value(8).run()
    assert len(again.get("progress")) == 1
    [stop] = [b for b in at.button if (b.key or "").startswith("jobs.stop.")]
    stop.click().run()
    gate.set()
    deadline = time.monotonic() + WAIT
    while not any("stopped on request" in w.value for w in at.warning):
        assert time.monotonic() < deadline
        time.sleep(0.2)
        at.run()
    assert Workspace(owner=OWNER).list_runs(kind="evaluate") == []


def test_bad_folder_and_dataset_without_parts(eval_env: Path, tmp_path: Path) -> None:
    at = _local(app_test(PAGE), tmp_path / "missing")
    assert not at.exception and "no such folder" in at.error[0].value
    for cls in ("a", "b"):
        (tmp_path / "folder" / cls).mkdir(parents=True)
        Image.new("RGB", (20, 20)).save(tmp_path / "folder" / cls / "x.png")
    at.text_input(key="evaluate.folder").set_value(str(tmp_path / "folder")).run()
    assert any("Part metrics" in i.value for i in at.info)
    assert any("Pointing game needs object masks" in c for c in captions(at))
    assert at.multiselect(key="evaluate.metrics").value == ["accuracy", "region_stability"]
    assert at.radio(key="evaluate.path.clean").value == "clean"  # no published number to reproduce here
    at.multiselect(key="evaluate.metrics").set_value(["pointing_game"]).run()
    at.button(key="evaluate.run").click().run()
    deadline = time.monotonic() + WAIT
    while not at.error:
        assert time.monotonic() < deadline
        time.sleep(0.2)
        at.run()
    assert "pointing_game needs per-pixel object masks" in unescaped(at.error[0].value) and not at.exception


def test_bundled_synthetic_set_with_the_pointing_game(eval_env: Path) -> None:
    at = app_test(PAGE)
    at.run()
    assert at.radio(key="evaluate.path.clean").value == "clean"  # the synthetic set has no paper's number
    at.number_input(key="evaluate.limit").set_value(8).run()
    at.multiselect(key="evaluate.metrics").set_value(["consistency", "pointing_game"]).run()
    at.number_input(key="evaluate.pointing_area").set_value(0.2).run()
    at.button(key="evaluate.run").click().run()
    settled(at)
    assert not at.exception and not at.error
    scores = at.dataframe[0].value
    assert scores["images"].tolist() == [8] and 0.0 <= scores["pointing_game (%)"][0] <= 100.0
    [run] = runs()
    assert run.key.settings_dict["pointing_area"] == 0.2 and run.key.settings_dict["split"] == "test"


def test_model_names_are_escaped_in_markdown(eval_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "odd"
    model = make_tiny_model(classes=8, per_class=1, seed=3)
    model.metadata.update({"test_accuracy": 0.9, "test_accuracy_cropped_to_box": 0.5})
    save_model(model, models / "a_[link](x).safetensors")
    monkeypatch.setenv("PROTOVIZ_MODEL_DIR", str(models))
    at = app_test(PAGE)
    at.run()
    [hint] = [c for c in captions(at) if "trained on whole images" in c]
    assert hint.startswith(r"a\_\[link\]\(x\) was trained")
