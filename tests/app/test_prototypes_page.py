"""AppTest of the Prototypes page: gallery (paginated, filterable, at CUB scale), card, the top-k pass as a
background job kept in the workspace (served from the store on a later visit), latent views."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.models.checkpoint import save_model
from protoviz.payload import decode
from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, with_owner
from tests.app.waiting import captions, kept_runs, rerun_until, wait_for_runs
from tests.conftest import make_tiny_model

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "views" / "prototypes.py")


@pytest.fixture(scope="module")
def page_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prototypes-page") / "data"
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2))


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error] + [str(x.value) for x in app.exception]


def _caption_with(text: str) -> Callable[[AppTest], bool]:
    return lambda app: text in captions(app)


def _page(timeout: int = 120) -> AppTest:
    return with_owner(AppTest.from_file(PAGE, default_timeout=timeout))


def _choose_data(app: AppTest, folder: Path, limit: int, k: int = 3) -> None:
    app.radio(key="prototypes.data.source").set_value("local folder").run()
    app.text_input(key="prototypes.data.folder").set_value(str(folder))
    app.number_input(key="prototypes.data.limit").set_value(limit)
    app.slider(key="prototypes.k").set_value(k)


def test_gallery_and_card_without_data(app_env: None) -> None:
    app = _page(60).run()
    assert _errors(app) == []
    assert app.title[0].value == "Prototypes"
    app.selectbox(key="prototypes.model").set_value("tiny_log").run()
    markdown = " ".join(m.value for m in app.markdown)
    assert "Top-k most activating patches" in markdown
    groups = [m.value for m in app.markdown if m.value.endswith("prototype(s)")]  # class names escaped for markdown
    assert groups == [r"**class\_0** · 2 prototype(s)", r"**class\_1** · 2 prototype(s)", r"**class\_2** · 2 prototype(s)"]
    assert any("Compute the top-k patches" in i.value for i in app.info)  # card and latent view wait for data
    assert app.selectbox(key="prototypes.selected").options[:2] == ["#0 · class_0", "#1 · class_0"]
    assert app.subheader[0].value == r"Prototype 0 · class class\_0"
    app.selectbox(key="prototypes.selected").set_value(3).run()
    assert app.subheader[0].value == r"Prototype 3 · class class\_1" and _errors(app) == []
    assert kept_runs("compare") == []  # nothing ran, and the synthetic set was not even opened


def test_topk_pass_is_a_job_kept_in_the_workspace(app_env: None, model_dir: Path, page_dataset: Path) -> None:
    # as many classes as the synthetic set, so accuracy can match dataset labels to model classes
    save_model(make_tiny_model(seed=3, classes=8, per_class=1), model_dir / "tiny_eight.safetensors")
    app = _page().run()
    app.selectbox(key="prototypes.model").set_value("tiny_eight").run()
    _choose_data(app, page_dataset, 10)
    app.button(key="prototypes.compute").click().run()
    assert _errors(app) == []
    [run] = wait_for_runs("compare")
    assert run.model_name == "tiny_eight" and run.key.settings_dict["image_count"] == 10
    assert run.key.settings_dict["split"] == "test" and run.key.settings_dict["topk"]["k"] == 3
    rerun_until(app, lambda a: "over 10 images" in captions(a))
    assert _errors(app) == []
    assert "Computed and kept" in captions(app)  # this session computed it
    assert "3 patches (best per image) over 10 images" in captions(app)
    assert "PCA of 8 prototype vectors" in captions(app)
    # the kept run is typed: a ModelRun with its pass provenance (same model file, dataset, settings)
    record = Workspace().for_owner(OWNER).get_run(run.id)
    stored = decode(record.payload)
    assert stored.provenance.dataset.fingerprint == run.key.dataset_fingerprint
    assert stored.provenance.model_sha256 == run.key.model_sha256 and stored.topk.thumbnails.shape[:2] == (8, 3)
    assert {"scores", "duplicates", "topk"} <= set(record.payload.tables)  # what the Results page shows and exports
    # another prototype on the card: no new pass
    app.selectbox(key="prototypes.selected").set_value(5).run()
    assert _errors(app) == [] and "over 10 images" in captions(app)
    # a later visit (a new session, same workspace link) finds it in the store without pressing anything
    again = _page().run()
    again.selectbox(key="prototypes.model").set_value("tiny_eight").run()
    _choose_data(again, page_dataset, 10)
    again.run()
    assert _errors(again) == [] and "From the store" in captions(again)
    assert "3 patches (best per image) over 10 images" in captions(again)
    # the same request again is served from the store and says so; no second run is kept
    again.button(key="prototypes.compute").click().run()
    assert "From the store" in captions(again) and len(kept_runs("compare")) == 1
    # other settings are another run
    again.slider(key="prototypes.k").set_value(2)
    again.button(key="prototypes.compute").click().run()
    assert len(wait_for_runs("compare", 2)) == 2


def test_latent_views_pca_tsne_pacmap(app_env: None, model_dir: Path, page_dataset: Path) -> None:
    save_model(make_tiny_model(seed=3, classes=8, per_class=1), model_dir / "tiny_eight.safetensors")
    app = _page().run()
    app.selectbox(key="prototypes.model").set_value("tiny_eight").run()
    _choose_data(app, page_dataset, 10)
    app.button(key="prototypes.compute").click().run()
    wait_for_runs("compare")
    rerun_until(app, lambda a: "PCA of 8" in captions(a))
    [figure] = [c for c in app.get("plotly_chart") if "prototypes (stars)" in c.proto.spec]
    assert '"PC1 (' in figure.proto.spec  # PCA axes carry their explained variance
    for method, label in (("tsne", "t-SNE"), ("pacmap", "PaCMAP")):
        app.segmented_control(key="prototypes.latent.projection").set_value(method).run()
        assert _errors(app) == [] and not any("PCA of" in c.value for c in app.caption)
        app.button(key="prototypes.latent_compute").click().run()
        wait_for_runs("latent", 1 if method == "tsne" else 2)
        rerun_until(app, _caption_with(f"{label} (seed 0) of 8 prototype vectors"))
        [figure] = [c for c in app.get("plotly_chart") if "prototypes (stars)" in c.proto.spec]
        assert f'"{label} 1"' in figure.proto.spec and f'"{label} 2"' in figure.proto.spec
    runs = kept_runs("latent")
    views = {r.key.settings_dict["method"]: decode(Workspace().for_owner(OWNER).get_run(r.id).payload) for r in runs}
    again = _page().run()  # a new visit: the t-SNE view comes from the store, identical (deterministic, seeded)
    again.selectbox(key="prototypes.model").set_value("tiny_eight").run()
    _choose_data(again, page_dataset, 10)
    again.run()
    again.segmented_control(key="prototypes.latent.projection").set_value("tsne").run()
    assert "t-SNE (seed 0) of 8 prototype vectors" in captions(again) and len(kept_runs("latent")) == 2
    from protoviz.compare.latent import latent_view
    from protoviz.models import load_model

    model = load_model(model_dir / "tiny_eight.safetensors")
    [pass_run] = kept_runs("compare")
    topk = decode(Workspace().for_owner(OWNER).get_run(pass_run.id).payload).topk
    np.testing.assert_allclose(latent_view(model, topk, "tsne", 0).prototype_xy, views["tsne"].prototype_xy)


def test_a_missing_folder_is_a_clear_error(app_env: None, tmp_path: Path) -> None:
    app = _page(60).run()
    app.radio(key="prototypes.data.source").set_value("local folder").run()
    app.text_input(key="prototypes.data.folder").set_value(str(tmp_path / "nowhere"))
    app.button(key="prototypes.compute").click().run()
    assert any("no such folder" in e.value for e in app.error)
    assert not app.exception


def test_a_link_opens_the_card_of_a_prototype(app_env: None) -> None:
    app = _page(60)
    app.query_params["model"] = "tiny_log"
    app.query_params["prototype"] = "4"
    app.run()
    assert _errors(app) == []
    assert app.selectbox(key="prototypes.model").value == "tiny_log"
    assert app.subheader[0].value == r"Prototype 4 · class class\_2"
    app.query_params["prototype"] = "99"  # out of range for this model: back to the first prototype
    app.run()
    assert _errors(app) == [] and app.subheader[0].value == r"Prototype 0 · class class\_0"


def test_another_page_can_open_a_card(app_env: None) -> None:
    app = _page(60)
    app.session_state["prototypes.model"] = "tiny_log"
    app.session_state["prototypes.selected"] = 5
    app.session_state["prototypes.open_card"] = True
    app.run()
    assert _errors(app) == [] and app.subheader[0].value == r"Prototype 5 · class class\_2"
    assert "prototypes.open_card" not in app.session_state


def test_a_cub_scale_gallery_pages_and_filters(app_env: None, model_dir: Path) -> None:
    """200 classes x 10 prototypes: the page draws only one page of tiles, pages and filters work."""
    model = make_tiny_model(classes=200, per_class=10, seed=5)
    save_model(model, model_dir / "cub_scale.safetensors")
    app = _page(120)
    app.session_state["prototypes.model"] = "cub_scale"
    start = time.perf_counter()
    app.run()
    first = time.perf_counter() - start
    assert _errors(app) == []
    assert "showing 48 of 2000 chosen (2000 in all), 1-48" in captions(app)
    assert sum(len(i.proto.imgs) for i in app.get("image")) == 48 + 2  # one page of tiles, the card's 2 pictures
    pages = app.number_input(key="prototypes.page")
    assert pages.label == "Page (of 42)"
    start = time.perf_counter()
    pages.set_value(42).run()
    turn = time.perf_counter() - start
    assert _errors(app) == [] and "showing 32 of 2000 chosen (2000 in all), 1969-2000" in captions(app)
    groups = [m.value for m in app.markdown if m.value.endswith("prototype(s)")]
    assert groups[0] == r"**class\_196** · 2 prototype(s)" and len(groups) == 4
    app.selectbox(key="prototypes.class_filter").set_value("class_57").run()  # back to page 1 of the one class
    assert _errors(app) == [] and "showing 10 of 10 chosen (2000 in all), 1-10" in captions(app)
    assert [m.value for m in app.markdown if m.value.endswith("prototype(s)")] == [r"**class\_57** · 10 prototype(s)"]
    app.selectbox(key="prototypes.show").set_value("near-duplicates only").run()
    assert "No prototype matches these filters." in [i.value for i in app.info]
    app.selectbox(key="prototypes.page_size").set_value(96)
    app.selectbox(key="prototypes.show").set_value("all prototypes")
    app.selectbox(key="prototypes.class_filter").set_value("all classes").run()
    assert "showing 96 of 2000 chosen" in captions(app)
    print(f"\nCUB-scale gallery (2,000 prototypes): first render {first:.2f} s, page turn {turn:.2f} s (AppTest, wall)")
