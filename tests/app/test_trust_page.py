"""AppTest of the Trust page: the checks as a background job kept in the workspace (served from the store on a
later visit), on your images (no masks: the reason is shown) and on images with masks (pointing game)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.payload import decode
from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, with_owner
from tests.app.waiting import captions, kept_runs, rerun_until, wait_for_runs

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "views" / "trust.py")


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error] + [str(x.value) for x in app.exception]


def _page(timeout: int = 120) -> AppTest:
    return with_owner(AppTest.from_file(PAGE, default_timeout=timeout))


def _quick(app: AppTest, methods: list[str]) -> None:
    app.multiselect(key="trust.methods").set_value(methods)
    app.slider(key="trust.stages").set_value(2)
    app.slider(key="trust.steps").set_value(4)


def _has_table(app: AppTest) -> bool:
    return any("method" in d.value.columns for d in app.dataframe)


def _my_images(app: AppTest) -> None:
    app.radio(key="trust.source").set_value("My images").run()
    app.multiselect(key="trust.images.samples").set_value(["sample_a.png", "sample_b.png"]).run()
    _quick(app, ["upsample", "saliency", "random"])


def test_checks_on_my_images_run_as_a_kept_job(app_env: None) -> None:
    app = _page().run()
    assert _errors(app) == [] and app.title[0].value.startswith("Trust")
    app.radio(key="trust.source").set_value("My images").run()
    assert any("Upload or pick" in i.value for i in app.info)
    _my_images(app)
    app.button(key="trust.run").click().run()
    assert _errors(app) == []
    [run] = wait_for_runs("trust")
    rerun_until(app, _has_table)
    assert _errors(app) == [] and "Computed and kept" in captions(app)
    table = next(d.value for d in app.dataframe if "method" in d.value.columns)
    assert list(table["method"]) == ["upsample", "saliency", "random"]
    assert table.set_index("method").loc["random", "randomisation check"] == "FAIL"
    assert not any("pointing" in column for column in table.columns)  # no masks: no pointing game, and why
    assert any(i.value.startswith("No mask relevance or pointing game: your images have no segmentation masks")
               for i in app.info)
    assert len(app.get("plotly_chart")) == 2  # randomisation, curves (no masks: no relevance figure)
    formats = app.get("button_group")  # each figure's format choice: PNG, SVG, PDF and, for charts, offline HTML
    assert formats and all(len(f.proto.options) in (3, 4) for f in formats)
    assert sum(len(f.proto.options) == 4 for f in formats) == 2  # the two charts offer HTML too
    assert not any("HTML" in b.proto.label for b in app.get("download_button"))  # no CDN-loading HTML button
    # the report is kept: another prototype is shown without running again
    app.selectbox(key="trust.map_k").set_value(1).run()
    assert _errors(app) == [] and len(kept_runs("trust")) == 1
    stored = decode(Workspace().for_owner(OWNER).get_run(run.id).payload)
    assert stored.provenance["model_sha256"] == run.key.model_sha256 and stored.provenance["images"] == 2
    assert run.key.settings_dict["prototypes_per_image"] == 2 and run.key.settings_dict["trust"]["perturbation"][
        "steps"] == 4
    # a later visit with the same choices finds the report in the store; pressing the button again says so
    again = _page().run()
    _my_images(again)
    again.run()
    assert _errors(again) == [] and "From the store" in captions(again) and _has_table(again)
    again.button(key="trust.run").click().run()
    assert "From the store" in captions(again) and len(kept_runs("trust")) == 1


def test_pointing_game_on_a_dataset_folder_with_masks(app_env: None, tmp_path: Path) -> None:
    cub = generate_dataset(tmp_path / "cub", SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=1))
    from protoviz.models.checkpoint import save_model
    from tests.conftest import make_tiny_model

    models = Path(__import__("os").environ["PROTOVIZ_MODEL_DIR"])
    save_model(make_tiny_model(classes=8, per_class=1), models / "tiny_eight.safetensors")
    app = _page().run()
    app.selectbox(key="trust.model").set_value("tiny_eight").run()
    app.radio(key="trust.source").set_value("Dataset folder").run()
    app.text_input(key="trust.folder").set_value(str(cub)).run()
    app.slider(key="trust.count").set_value(3)
    app.slider(key="trust.k").set_value(1)
    _quick(app, ["upsample", "prp"])
    app.button(key="trust.run").click().run()
    wait_for_runs("trust")
    rerun_until(app, _has_table)
    assert _errors(app) == []
    table = next(d.value for d in app.dataframe if "method" in d.value.columns)
    assert {"pointing game (top 10%)", "energy on object", "mass in part", "object area"} <= set(table.columns)
    assert table["pointing game (top 10%)"].between(0, 1).all()
    assert any(c.value.startswith("Pointing game (CaBRNet's relevance analysis)") for c in app.caption)
    assert len(app.get("plotly_chart")) == 3
    folder = tmp_path / "plain"  # an ImageFolder has no masks: the page says so
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (40, 30), (10, 200, 30)).save(folder / name / "x.png")
    app.text_input(key="trust.folder").set_value(str(folder))
    app.selectbox(key="trust.split").set_value("all")
    app.button(key="trust.run").click().run()
    wait_for_runs("trust", 2)
    rerun_until(app, lambda a: any("this dataset has no segmentation masks" in i.value for i in a.info))
    assert _errors(app) == []


@pytest.mark.slow
def test_checks_on_the_synthetic_set_show_relevance(app_env: None) -> None:
    app = _page(300).run()
    app.slider(key="trust.count").set_value(2)
    app.slider(key="trust.k").set_value(1)
    _quick(app, ["upsample", "prp"])
    app.slider(key="trust.stages").set_value(1)
    app.button(key="trust.run").click().run()
    wait_for_runs("trust", timeout=300)
    rerun_until(app, _has_table)
    assert _errors(app) == []
    table = next(d.value for d in app.dataframe if "method" in d.value.columns)
    assert {"mass in part", "mass in object", "object area", "pointing game (top 10%)"} <= set(table.columns)
    assert len(app.get("plotly_chart")) == 3


def test_explain_page_heatmap_method_selector(app_env: None) -> None:
    app = AppTest.from_file(str(Path(PAGE).with_name("explain.py")), default_timeout=120).run()
    app.multiselect(key="explain.images.samples").set_value(["sample_a.png"]).run()
    assert app.selectbox(key="explain.method").options[0] == "Upsampled similarity (bicubic)"
    assert any("Upsampled similarity" in c.value for c in app.caption)
    app.selectbox(key="explain.method").set_value("saliency").run()
    assert _errors(app) == []
    assert any("Saliency (gradient)" in c.value for c in app.caption)
