"""AppTest of the Evaluate page: run on a local synthetic folder, results kept in the session,
downloads offered, clear errors for bad folders and datasets without parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.models.checkpoint import save_model
from tests.app.conftest import VIEWS, app_test
from tests.conftest import make_tiny_model

PAGE = VIEWS / "evaluate.py"


@pytest.fixture
def eval_env(app_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models8"
    save_model(make_tiny_model(classes=8, per_class=2, seed=0), models / "tiny8_a.safetensors")
    save_model(make_tiny_model(classes=8, per_class=1, seed=1), models / "tiny8_b.safetensors")
    monkeypatch.setenv("PROTOVIZ_MODEL_DIR", str(models))
    monkeypatch.setenv("PROTOVIZ_CACHE_DIR", str(tmp_path / "cache"))
    config = SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2, seed=1)
    return generate_dataset(tmp_path / "syn", config)


def _local(at: AppTest, folder: Path) -> AppTest:
    at.run()
    at.radio(key="evaluate.source").set_value("local folder").run()
    at.text_input(key="evaluate.folder").set_value(str(folder)).run()
    return at


def test_run_two_models_shows_scores_tables_and_keeps_results(eval_env: Path) -> None:
    at = _local(app_test(PAGE), eval_env)
    assert not at.exception and not at.error
    at.multiselect(key="evaluate.models").set_value(["tiny8_a", "tiny8_b"]).run()
    at.button(key="evaluate.run").click().run()
    assert not at.exception and not at.error
    scores = at.dataframe[0].value
    assert list(scores["model"]) == ["tiny8_a", "tiny8_b"]
    assert {"consistency (%)", "stability (%)", "accuracy (%)"} <= set(scores.columns)  # units shown
    table = at.dataframe[1].value
    assert len(table) == 16 and "dominant_part" in table.columns
    stored = [k for k in at.session_state["protoviz.results.evaluate"] if k != "datasets"]
    assert len(stored) == 2
    at.selectbox(key="evaluate.table_model").set_value("tiny8_b").run()  # a rerun reuses the results
    assert len(at.dataframe[1].value) == 8 and not at.exception
    assert len([k for k in at.session_state["protoviz.results.evaluate"] if k != "datasets"]) == 2


def test_bad_folder_and_dataset_without_parts(eval_env: Path, tmp_path: Path) -> None:
    at = _local(app_test(PAGE), tmp_path / "missing")
    assert not at.exception and "no such folder" in at.error[0].value
    for cls in ("a", "b"):
        (tmp_path / "folder" / cls).mkdir(parents=True)
        Image.new("RGB", (20, 20)).save(tmp_path / "folder" / cls / "x.png")
    at.text_input(key="evaluate.folder").set_value(str(tmp_path / "folder")).run()
    assert any("Part metrics" in i.value for i in at.info)
    assert at.multiselect(key="evaluate.metrics").value == ["accuracy", "region_stability"]
    at.button(key="evaluate.run").click().run()
    assert not at.exception and "cannot be matched" in at.error[0].value  # 8-class model, 2-class folder


def test_bundled_synthetic_set_is_generated_on_demand(eval_env: Path) -> None:
    at = app_test(PAGE)
    at.run()
    at.number_input(key="evaluate.limit").set_value(8).run()
    at.multiselect(key="evaluate.metrics").set_value(["consistency"]).run()
    at.button(key="evaluate.run").click().run()
    assert not at.exception and not at.error
    assert at.dataframe[0].value["images"].tolist() == [8]
