"""AppTest of the Compare page: two tiny models on the same uploaded image, a dataset pass, matching, report."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.heatmaps import explain_image
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "views" / "compare.py")


@pytest.fixture(scope="module")
def page_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare-page") / "data"
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2))


def _scores(app: AppTest):
    """The scores table (the dataframe with a 'model' and an 'accuracy' column)."""
    return next(d.value for d in app.dataframe if {"model", "accuracy"} <= set(d.value.columns))


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error] + [str(x.value) for x in app.exception]


def test_two_models_side_by_side_on_the_same_sample(app_env: None, model_dir: Path, sample_dir: Path) -> None:
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    assert _errors(app) == []
    assert app.multiselect(key="compare.models").value == ["tiny_cosine", "tiny_log"]
    app.multiselect(key="compare.images.samples").set_value(["sample_a.png"]).run()
    assert _errors(app) == []
    predictions = [m.value for m in app.markdown if " predicts " in m.value]
    assert len(predictions) == 2
    assert predictions[0].startswith("**tiny_cosine** predicts") and predictions[1].startswith("**tiny_log** predicts")
    expected = 0  # up to 3 cards of evidence for per model, as many as the library finds
    for name in ("tiny_cosine", "tiny_log"):
        [item] = explain_image(load_model(model_dir / f"{name}.safetensors"),
                               [Image.open(sample_dir / "sample_a.png").convert("RGB")], top_k=3)
        expected += len(item.prototypes)
    assert sum("similarity" in c.value and "weight" in c.value for c in app.caption) == expected >= 4
    assert sum("ST-ProtoPNet · similarity: cosine" in c.value for c in app.caption) == 1  # the model's real name


def test_a_single_model_asks_for_another(app_env: None) -> None:
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    app.multiselect(key="compare.models").set_value(["tiny_log"]).run()
    assert any("at least two models" in i.value for i in app.info) and _errors(app) == []


def test_dataset_pass_matching_and_report(app_env: None, model_dir: Path, page_dataset: Path) -> None:
    for seed, name in ((3, "eight_a"), (4, "eight_b")):  # the synthetic set's 8 classes, matched by index
        save_model(make_tiny_model(seed=seed, classes=8, per_class=1), model_dir / f"{name}.safetensors")
    app = AppTest.from_file(PAGE, default_timeout=180).run()
    app.multiselect(key="compare.models").set_value(["eight_a", "eight_b"]).run()
    app.radio(key="compare.data.source").set_value("local folder").run()
    app.text_input(key="compare.data.folder").set_value(str(page_dataset))
    app.number_input(key="compare.data.limit").set_value(12)
    app.button(key="compare.compute").click().run()
    assert _errors(app) == []
    table = _scores(app)
    assert list(table["model"]) == ["eight_a", "eight_b"] and list(table["images"]) == [12, 12]
    assert all(0.0 <= a <= 1.0 for a in table["accuracy"])
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics["matched pairs"]) + int(metrics["no counterpart in eight_b"]) == 8
    assert app.radio(key="compare.profile").value == "parts"  # matching measures parts by default
    assert any(c.value.startswith("Profile 'parts': where in each image") for c in app.caption)
    assert any(c.value.startswith("Two prototypes are flagged as near-duplicates when their 'parts' activation "
                                  "profiles over the 12 probe images correlate above r = 0.99") and
               "and their prototype vectors' centred cosine is above 0.99" in c.value for c in app.caption)
    app.button(key="compare.compute_parts").click().run()
    assert _errors(app) == []
    table = _scores(app)
    assert {"consistency", "stability"} <= set(table.columns)
    app.button(key="compare.build_report").click().run()
    assert _errors(app) == []
    assert any("self-contained" in c.value for c in app.caption)

