"""AppTest of the Why page: local bars/sentence/pictures for a sample, regions, modes, global run kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import protoviz.explain.global_ as global_module
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from tests.app.conftest import VIEWS, app_test

PAGE = VIEWS / "why.py"


def started(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def headline(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### "))


def test_local_explanation_of_a_sample(app_env: None) -> None:
    at = started(app_test(PAGE))
    assert "Upload an image" in at.info[0].value
    at.selectbox(key="why.model").set_value("tiny_log")
    at.multiselect(key="why.images.samples").set_value(["sample_a.png"])
    started(at)
    text = headline(at)
    assert text.startswith("#### Prototype ") and ("relies mostly on" in text or "no characteristic" in text)
    assert any(m.value.startswith("Predicted class: **class_") for m in at.markdown)
    chosen = next(s for s in at.selectbox if s.label == "Prototype")
    assert chosen.value in range(6)
    assert len(at.get("plotly_chart")) == 1 and len(at.get("image")) == 1
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels >= {"Deltas (CSV)", "Deltas (JSON)", "Modified images (PNG)"}
    chosen.set_value(5)
    started(at)
    assert headline(at).startswith("#### Prototype 5 (class class_2)")


@pytest.mark.parametrize("region", ["inside", "outside"])
def test_region_only_and_reference_mode(app_env: None, region: str) -> None:
    at = started(app_test(PAGE))
    at.multiselect(key="why.images.samples").set_value(["sample_b.png"])
    at.radio(key="why.mode").set_value("reference")
    at.selectbox(key="why.region").set_value(region)
    started(at)
    assert headline(at).startswith("#### Prototype ")
    assert f"only {region} the prototype" in str(at.get("image")[0].proto)


def test_global_run_is_kept_across_reruns(app_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = generate_dataset(tmp_path / "synthetic", SyntheticConfig(image_size=64, n_train_per_class=0,
                                                                    n_test_per_class=1))
    calls: list[int] = []
    original = global_module.explain_dataset

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(global_module, "explain_dataset", counting)
    at = started(app_test(PAGE))
    at.radio(key="why.dataset").set_value("Local folder")
    started(at)
    at.text_input(key="why.folder").set_value(str(data))
    started(at)
    at.button(key="why.run").click()
    started(at)
    assert calls == [1]
    assert any("8 images of" in c.value for c in at.caption)
    assert any(m.value.startswith("#### Prototype 0") for m in at.markdown)
    started(at)  # a rerun shows the kept result without recomputing
    assert calls == [1]
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels >= {"Global importance (CSV)", "Global importance (JSON)"}


def test_bad_folder_shows_an_error_not_a_traceback(app_env: None, tmp_path: Path) -> None:
    at = started(app_test(PAGE))
    at.radio(key="why.dataset").set_value("Local folder")
    started(at)
    at.text_input(key="why.folder").set_value(str(tmp_path / "missing"))
    started(at)
    at.button(key="why.run").click()
    started(at)
    assert at.error and not at.exception


def test_strengths_change_the_result_and_bad_ones_are_reported(app_env: None) -> None:
    at = started(app_test(PAGE))
    at.selectbox(key="why.model").set_value("tiny_log")
    at.multiselect(key="why.images.samples").set_value(["sample_a.png"])
    started(at)
    before = at.get("plotly_chart")[0].proto.spec
    at.number_input(key="why.param.contrast").set_value(0.1)
    started(at)
    assert '"contrast": 0.1' in at.caption[-1].value
    assert at.get("plotly_chart")[0].proto.spec != before
    at.number_input(key="why.param.contrast").set_value(9.0)
    started(at)
    assert any("contrast" in e.value for e in at.error) and '"contrast": 0.45' in at.caption[-1].value
