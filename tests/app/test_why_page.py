"""AppTest of the Why page: local bars/sentence/pictures for a sample with each characteristic against its
noise floor, blur and combinations, regions (box, focus and dual with a heatmap method), the data path
(as published / clean, both side by side), and dataset-wide runs as background jobs kept in the
workspace (progress, Stop, the result after a refresh "From the store"), region runs over a dataset."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import protoviz.explain.global_ as global_module
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.payload import decode
from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, VIEWS, app_test

PAGE = VIEWS / "why.py"
WAIT = 120.0


def started(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def headline(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### "))


def frame(at: AppTest, column: str):  # type: ignore[no-untyped-def]
    return next(d.value for d in at.dataframe if column in d.value.columns)


def with_sample(at: AppTest, name: str = "sample_a.png") -> AppTest:
    at.selectbox(key="why.model").set_value("tiny_log")
    at.multiselect(key="why.images.samples").set_value([name])
    return started(at)


def runs(count: int = 1) -> list:
    ws = Workspace(owner=OWNER)
    deadline = time.monotonic() + WAIT
    while len(found := ws.list_runs(kind="why")) < count:
        assert time.monotonic() < deadline, f"no {count} why run(s) after {WAIT} s"
        time.sleep(0.1)
    time.sleep(0.2)
    return found


@pytest.fixture
def data(app_env: None, tmp_path: Path) -> Path:
    return generate_dataset(tmp_path / "synthetic", SyntheticConfig(image_size=64, n_train_per_class=0,
                                                                    n_test_per_class=1))


def on_folder(at: AppTest, folder: Path) -> AppTest:
    at.radio(key="why.dataset").set_value("Local folder")
    started(at)
    at.text_input(key="why.folder").set_value(str(folder))
    return started(at)


def test_local_explanation_of_a_sample(app_env: None) -> None:
    at = started(app_test(PAGE))
    assert "Upload an image" in at.info[0].value
    with_sample(at)
    text = headline(at)
    assert text.startswith("#### Prototype ") and ("relies mostly on" in text or "no characteristic" in text)
    assert any(m.value.startswith(r"Predicted class: **class\_") for m in at.markdown)  # escaped: from a file
    chosen = next(s for s in at.selectbox if s.label == "Prototype")
    assert chosen.value in range(6)
    assert len(at.get("plotly_chart")) == 1 and len(at.get("image")) == 1
    summary = frame(at, "above its floor")
    assert list(summary["rank"]) == list(range(1, 7)) and set(summary["floor from"]) == {"identity"}
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels >= {"Deltas (CSV)", "Deltas (JSON)", "Modified images (PNG)"}
    chosen.set_value(5)
    started(at)
    assert headline(at).startswith(r"#### Prototype 5 (class class\_2)")


def test_blur_combinations_and_a_floor_per_characteristic(app_env: None) -> None:
    at = with_sample(started(app_test(PAGE)))
    at.multiselect(key="why.characteristics").set_value(["hue", "blur"])
    at.text_input(key="why.combinations").set_value("hue + shape, contrast+blur")
    at.checkbox(key="why.floors").check()
    started(at)
    summary = frame(at, "above its floor")
    assert set(summary["characteristic"]) == {"hue", "blur", "hue+shape", "contrast+blur"}
    assert dict(zip(summary["characteristic"], summary["floor from"]))["blur"] == "floor:blur"
    assert "blur" in at.get("plotly_chart")[0].proto.spec and "floor:" not in at.get("plotly_chart")[0].proto.spec
    at.text_input(key="why.combinations").set_value("hue+nothing")
    started(at)
    assert any("unknown characteristic 'nothing'" in e.value for e in at.error)


@pytest.mark.parametrize("region", ["inside", "outside"])
def test_region_only_and_reference_mode(app_env: None, region: str) -> None:
    at = started(app_test(PAGE))
    at.multiselect(key="why.images.samples").set_value(["sample_b.png"])
    at.radio(key="why.mode").set_value("reference")
    at.selectbox(key="why.region").set_value(region)
    started(at)
    assert at.radio(key="why.path.reference").value == "published"  # the paper's path in reference mode
    assert headline(at).startswith("#### Prototype ")
    assert f"only {region} the prototype" in str(at.get("image")[0].proto)


@pytest.mark.parametrize("region", ["focus", "dual"])
def test_focus_and_dual_with_a_heatmap_method(app_env: None, region: str) -> None:
    at = with_sample(started(app_test(PAGE)))
    assert at.selectbox(key="why.heatmap_method").disabled
    at.selectbox(key="why.region").set_value(region)
    started(at)
    methods = at.selectbox(key="why.heatmap_method").options
    at.selectbox(key="why.heatmap_method").set_value(methods[-1])
    started(at)
    assert not at.selectbox(key="why.heatmap_method").disabled
    assert f"({region})" in str(at.get("image")[0].proto) and headline(at).startswith("#### Prototype ")


def test_both_data_paths_for_one_image(app_env: None) -> None:
    at = with_sample(started(app_test(PAGE)))
    assert at.radio(key="why.path.fast").disabled and at.checkbox(key="why.both").disabled
    at.radio(key="why.mode").set_value("reference")
    started(at)
    at.checkbox(key="why.both").check()
    started(at)
    table = frame(at, "difference (published − clean)")
    assert len(table) == 6 and set(table.columns) >= {"as published (Explaining_Prototypes)", "clean"}
    assert any("Why they differ: Explaining_Prototypes writes each modified image to disk" in c.value
               for c in at.caption)


def test_global_run_is_a_job_kept_in_the_workspace(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = global_module.explain_dataset

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(global_module, "explain_dataset", counting)
    at = on_folder(started(app_test(PAGE)), data)
    at.checkbox(key="why.floors").check()
    started(at)
    at.button(key="why.run").click()
    started(at)
    [run] = runs()
    started(at)
    assert calls == [1]
    assert any("8 images of" in c.value for c in at.caption)
    assert any(m.value.startswith("#### Prototype 0") for m in at.markdown)
    assert "floor:hue" in set(frame(at, "above its floor")["floor from"])
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels >= {"Global importance (CSV)", "Global importance (JSON)"}
    assert not any(k.startswith("protoviz.results.why") for k in at.session_state)
    result = decode(Workspace(owner=OWNER).get_run(run.id).payload)
    assert result.run.key == run.key and result.num_images == 8

    fresh = on_folder(started(app_test(PAGE)), data)  # a refresh: the same visitor comes back
    fresh.checkbox(key="why.floors").check()
    started(fresh)
    assert any("From the store" in c.value for c in fresh.caption) and calls == [1]
    assert any(m.value.startswith("#### Prototype 0") for m in fresh.markdown)


def test_a_global_job_can_be_stopped(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, begun = threading.Event(), threading.Event()

    def slow(model, dataset, config, batch_size=16, limit=None, progress=None, provenance=None, **kwargs):  # type: ignore[no-untyped-def]
        progress(1, 8, "characteristics")
        begun.set()
        gate.wait(WAIT)
        progress(2, 8, "characteristics")
        raise AssertionError("a stopped job goes no further")
    monkeypatch.setattr(global_module, "explain_dataset", slow)
    at = on_folder(started(app_test(PAGE)), data)
    at.button(key="why.run").click()
    started(at)
    assert begun.wait(WAIT)
    started(at)
    [bar] = at.get("progress")
    assert "characteristics: 1/8" in bar.proto.text
    [stop] = [b for b in at.button if (b.key or "").startswith("jobs.stop.")]
    stop.click()
    started(at)
    gate.set()
    deadline = time.monotonic() + WAIT
    while not any("stopped on request" in w.value for w in at.warning):
        assert time.monotonic() < deadline
        time.sleep(0.2)
        started(at)
    assert Workspace(owner=OWNER).list_runs(kind="why") == []


def test_region_run_over_a_dataset(data: Path) -> None:
    at = on_folder(started(app_test(PAGE)), data)
    at.selectbox(key="why.model").set_value("tiny_log")
    at.selectbox(key="why.region").set_value("inside")
    at.number_input(key="why.limit").set_value(3)
    started(at)
    at.multiselect(key="why.global.prototypes.tiny_log").set_value([1, 4])
    started(at)
    assert any("3 images × (1 + 2 prototypes × 7 modifications) = 45 forwards" in c.value for c in at.caption)
    at.button(key="why.run").click()
    started(at)
    [run] = runs()
    started(at)
    assert run.key.settings_dict["prototypes"] == [1, 4] and run.key.settings_dict["explain"]["region"] == "inside"
    assert next(s for s in at.selectbox if s.label == "Prototype").options == ["1 (class class_0)", "4 (class class_2)"]
    assert any("only inside the prototype's box" in c.value for c in at.caption)


def test_both_data_paths_over_a_dataset(data: Path) -> None:
    at = on_folder(started(app_test(PAGE)), data)
    at.radio(key="why.mode").set_value("reference")
    started(at)
    at.checkbox(key="why.both").check()
    at.number_input(key="why.limit").set_value(3)
    started(at)
    at.button(key="why.run").click()
    started(at)
    kept = runs(2)
    started(at)
    assert {r.key.settings_dict["explain"]["path"] for r in kept} == {"published", "clean"}
    assert len(frame(at, "difference (published − clean)")) == 6
    assert "rank agreement over prototypes (Spearman)" in frame(at, "rank agreement over prototypes (Spearman)")
    assert any("Why they differ: Explaining_Prototypes writes each crop to disk (JPEG quality 95" in c.value
               for c in at.caption)


def test_bad_folder_shows_an_error_not_a_traceback(app_env: None, tmp_path: Path) -> None:
    at = on_folder(started(app_test(PAGE)), tmp_path / "missing")
    assert at.error and not at.exception


def test_strengths_change_the_result_and_bad_ones_are_reported(app_env: None) -> None:
    at = with_sample(started(app_test(PAGE)))
    before = at.get("plotly_chart")[0].proto.spec
    at.number_input(key="why.param.contrast").set_value(0.1)
    started(at)
    assert '"contrast": 0.1' in at.caption[-1].value
    assert at.get("plotly_chart")[0].proto.spec != before
    at.number_input(key="why.param.contrast").set_value(9.0)
    started(at)
    assert any("contrast" in e.value for e in at.error) and '"contrast": 0.45' in at.caption[-1].value

