"""AppTest of the Prototypes page: gallery, card, top-k pass on a local dataset, latent view."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.models.checkpoint import file_sha256, save_model
from tests.conftest import make_tiny_model

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "views" / "prototypes.py")


@pytest.fixture(scope="module")
def page_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prototypes-page") / "data"
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2))


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error] + [str(x.value) for x in app.exception]


def test_gallery_and_card_without_data(app_env: None) -> None:
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert _errors(app) == []
    assert app.title[0].value == "Prototypes"
    app.selectbox(key="prototypes.model").set_value("tiny_log").run()
    markdown = " ".join(m.value for m in app.markdown)
    assert "Top-k most activating patches" in markdown
    groups = [m.value for m in app.markdown if m.value.endswith("prototype(s)")]
    assert groups == ["**class_0** · 2 prototype(s)", "**class_1** · 2 prototype(s)", "**class_2** · 2 prototype(s)"]
    assert any("Compute the top-k patches" in i.value for i in app.info)  # card and latent view wait for data
    assert app.selectbox(key="prototypes.selected").options[:2] == ["#0 · class_0", "#1 · class_0"]
    assert app.subheader[0].value == "Prototype 0 · class class_0"
    app.selectbox(key="prototypes.selected").set_value(3).run()
    assert app.subheader[0].value == "Prototype 3 · class class_1" and _errors(app) == []


def test_topk_pass_fills_the_card_and_latent_view(app_env: None, model_dir: Path, page_dataset: Path) -> None:
    # as many classes as the synthetic set, so consistency can match dataset labels to model classes
    save_model(make_tiny_model(seed=3, classes=8, per_class=1), model_dir / "tiny_eight.safetensors")
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    app.selectbox(key="prototypes.model").set_value("tiny_eight").run()
    app.radio(key="prototypes.data.source").set_value("local folder").run()
    app.text_input(key="prototypes.data.folder").set_value(str(page_dataset))
    app.number_input(key="prototypes.data.limit").set_value(10)
    app.slider(key="prototypes.k").set_value(3)
    app.button(key="prototypes.compute").click().run()
    assert _errors(app) == []
    captions = " ".join(c.value for c in app.caption)
    assert "3 patches (best per image) over 10 images" in captions
    assert "PCA of 8 prototype vectors" in captions
    # a rerun reuses the session's pass instead of recomputing (the button is not pressed again)
    app.selectbox(key="prototypes.selected").set_value(5).run()
    assert _errors(app) == [] and "over 10 images" in " ".join(c.value for c in app.caption)
    # offer to compute what other pages had not: consistency/stability, then characteristics
    app.button(key="prototypes.compute_parts").click().run()
    assert _errors(app) == []
    assert any(m.value.startswith("**Model scores**: consistency") for m in app.markdown)
    app.button(key="prototypes.compute_chars").click().run()
    assert _errors(app) == []
    assert not any(b.key == "prototypes.compute_chars" for b in app.button)


def test_a_missing_folder_is_a_clear_error(app_env: None, tmp_path: Path) -> None:
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    app.radio(key="prototypes.data.source").set_value("local folder").run()
    app.text_input(key="prototypes.data.folder").set_value(str(tmp_path / "nowhere"))
    app.button(key="prototypes.compute").click().run()
    assert any("no such folder" in e.value for e in app.error)
    assert not app.exception


def test_a_link_opens_the_card_of_a_prototype(app_env: None) -> None:
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.query_params["model"] = "tiny_log"
    app.query_params["prototype"] = "4"
    app.run()
    assert _errors(app) == []
    assert app.selectbox(key="prototypes.model").value == "tiny_log"
    assert app.subheader[0].value == "Prototype 4 · class class_2"
    app.query_params["prototype"] = "99"  # out of range for this model: back to the first prototype
    app.run()
    assert _errors(app) == [] and app.subheader[0].value == "Prototype 0 · class class_0"


def _result(sha: str, scores: dict[str, float], rows: list[dict]) -> object:
    """An Evaluate-page result of model ``sha`` on some dataset (scores in %)."""
    from protoviz.metrics.runner import EvaluationResult
    from protoviz.metrics.score import Score
    from protoviz.provenance import DatasetIdentity, Provenance

    provenance = Provenance(sha, {"checkpoint_sha256": sha}, DatasetIdentity("fp", "test", {"root": "/data/x"}),
                            {}, 0, "cpu", {}, 6, 8, 8, 0, 1, "now", 1.0)
    results = {name: Score(name, value, "%", provenance=provenance) for name, value in scores.items()}
    return EvaluationResult(results, rows, provenance)


def test_the_card_shows_the_evaluate_pages_results(app_env: None, model_dir: Path) -> None:
    sha = file_sha256(model_dir / "tiny_log.safetensors")
    rows = [{"prototype": j, "consistent": j % 2 == 0, "dominant frequency": j / 10} for j in range(6)]
    result = _result(sha, {"consistency": 42.0, "stability": 77.0}, rows)
    other = _result("another model", {"consistency": 1.0}, rows)
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.session_state["protoviz.results.evaluate"] = {("tiny_log", sha, "x"): result, ("other",): other}
    app.query_params["model"] = "tiny_log"
    app.query_params["prototype"] = "3"
    app.run()
    assert _errors(app) == []
    assert any(m.value == "**Model scores**: consistency 42.0 % · stability 77.0 %" for m in app.markdown)
    assert any("other images: test split of /data/x, 6 images" in c.value for c in app.caption)  # said where
    table = next(d.value for d in app.dataframe if "property" in d.value.columns)
    assert dict(zip(table["property"], table["value"]))["dominant frequency"] == "0.300"


def test_another_page_can_open_a_card(app_env: None) -> None:
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.session_state["prototypes.model"] = "tiny_log"
    app.session_state["prototypes.selected"] = 5
    app.session_state["prototypes.open_card"] = True
    app.run()
    assert _errors(app) == [] and app.subheader[0].value == "Prototype 5 · class class_2"
    assert "prototypes.open_card" not in app.session_state
