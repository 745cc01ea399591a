"""AppTest of the Explain page's dataset picker: a dataset folder (inside the allowed roots) or the bundled
synthetic set; a class, then images of that class a page at a time; the picked images are explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from protoviz.data.images import load_image
from protoviz.heatmaps import explain_image
from protoviz.models import load_model
from tests.app.conftest import VIEWS, app_test
from tests.sources.conftest import make_image_folder

KEY = "explain.dataset"


def page() -> AppTest:
    at = app_test(VIEWS / "explain.py")
    at.run()
    assert not at.exception, at.exception
    return at


def headings(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("#### ")]


def test_folder_class_page_and_images(app_env: None, model_dir: Path, tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "birds", classes=("001.albatross", "002.gull", "003.tern"), per_class=15,
                             size=40)
    at = page()
    at.radio(key=f"{KEY}.source").set_value("a dataset folder on the server").run()
    at.text_input(key=f"{KEY}.folder").set_value(str(data)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.selectbox(key=f"{KEY}.split").set_value("all").run()
    classes = at.selectbox(key=f"{KEY}.class")
    assert classes.options == ["0: 001.albatross (15 images)", "1: 002.gull (15 images)", "2: 003.tern (15 images)"]
    classes.set_value(1).run()
    pager = at.number_input(key=f"{KEY}.page.1")
    assert pager.max == 2  # 15 images, 12 a page
    pager.set_value(2).run()
    images = at.multiselect(key=f"{KEY}.images.1.2")
    assert images.options == ["7.png", "8.png", "9.png"]  # the last page of class 1, in ImageFolder's sorted order
    images.set_value([28, 29]).run()  # dataset positions: class 1 starts at 15
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert headings(at) == ["#### tiny_cosine"] * 2
    assert [t.label for t in at.tabs] == ["8.png", "9.png"]
    # the page explains exactly the dataset's image: the same prediction as the library on that file
    model = load_model(model_dir / "tiny_cosine.safetensors")
    [expected] = explain_image(model, [load_image(data / "002.gull" / "8.png")], top_k=5)
    line = f"**Predicted: {expected.predicted_name}** ({expected.top_classes[0][2]:.1%})"
    assert line in [m.value for m in at.markdown]


def test_a_folder_outside_the_roots_is_refused(app_env: None) -> None:
    at = page()
    at.radio(key=f"{KEY}.source").set_value("a dataset folder on the server").run()
    at.text_input(key=f"{KEY}.folder").set_value("/etc").run()
    assert any("is not inside the folders this server allows" in e.value for e in at.error)
    assert not at.get("multiselect") or all(m.key != f"{KEY}.images.0.1" for m in at.multiselect)


def test_the_synthetic_set_by_class(app_env: None, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    from protoviz.data.demo import synthetic_dataset
    from protoviz.data.synthetic import SyntheticConfig

    small = synthetic_dataset(SyntheticConfig(image_size=48, n_train_per_class=0, n_test_per_class=2),
                              tmp_path_factory.mktemp("cache"))
    monkeypatch.setattr("protoviz.data.demo.synthetic_dataset", lambda: small)
    at = page()
    assert at.radio(key=f"{KEY}.source").value is None  # nothing is opened (or generated) until asked
    at.radio(key=f"{KEY}.source").set_value("bundled synthetic set").run()
    classes = at.selectbox(key=f"{KEY}.class")
    assert len(classes.options) == 8 and classes.options[0].endswith("(2 images)")
    at.multiselect(key=f"{KEY}.images.0.1").set_value([0]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert headings(at) == ["#### tiny_cosine"]
