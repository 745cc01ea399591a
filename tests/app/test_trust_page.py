"""AppTest of the Trust page: run the checks on bundled samples and on the synthetic set."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "views" / "trust.py")


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error] + [str(x.value) for x in app.exception]


def test_checks_on_my_images(app_env: None) -> None:
    app = AppTest.from_file(PAGE, default_timeout=120).run()
    assert _errors(app) == [] and app.title[0].value.startswith("Trust")
    app.radio(key="trust.source").set_value("My images").run()
    assert any("Upload or pick" in i.value for i in app.info)
    app.multiselect(key="trust.images.samples").set_value(["sample_a.png", "sample_b.png"]).run()
    app.multiselect(key="trust.methods").set_value(["upsample", "saliency", "random"])
    app.slider(key="trust.stages").set_value(2)
    app.slider(key="trust.steps").set_value(4)
    app.button(key="trust.run").click().run()
    assert _errors(app) == []
    table = app.dataframe[0].value
    assert list(table["method"]) == ["upsample", "saliency", "random"]
    assert table.set_index("method").loc["random", "randomisation check"] == "FAIL"
    assert len(app.get("plotly_chart")) == 2  # randomisation, curves (no masks: no relevance figure)
    formats = app.get("button_group")  # each figure's format choice: PNG, SVG, PDF and, for charts, offline HTML
    assert formats and all(len(f.proto.options) in (3, 4) for f in formats)
    assert sum(len(f.proto.options) == 4 for f in formats) == 2  # the two charts offer HTML too
    assert not any("HTML" in b.proto.label for b in app.get("download_button"))  # no CDN-loading HTML button
    # the result stays in the session: another prototype is shown without running again
    app.selectbox(key="trust.map_k").set_value(1).run()
    assert _errors(app) == [] and len(app.dataframe) == 1


@pytest.mark.slow
def test_checks_on_the_synthetic_set_show_relevance(app_env: None) -> None:
    app = AppTest.from_file(PAGE, default_timeout=300).run()
    app.slider(key="trust.count").set_value(2)
    app.multiselect(key="trust.methods").set_value(["upsample", "prp"])
    app.slider(key="trust.k").set_value(1)
    app.slider(key="trust.stages").set_value(1)
    app.slider(key="trust.steps").set_value(4)
    app.button(key="trust.run").click().run()
    assert _errors(app) == []
    table = app.dataframe[0].value
    assert {"mass in part", "mass in object", "object area"} <= set(table.columns)
    assert len(app.get("plotly_chart")) == 3


def test_explain_page_heatmap_method_selector(app_env: None) -> None:
    app = AppTest.from_file(str(Path(PAGE).with_name("explain.py")), default_timeout=120).run()
    app.multiselect(key="explain.images.samples").set_value(["sample_a.png"]).run()
    assert app.selectbox(key="explain.method").options[0] == "Upsampled similarity (bicubic)"
    assert any("Upsampled similarity" in c.value for c in app.caption)
    app.selectbox(key="explain.method").set_value("saliency").run()
    assert _errors(app) == []
    assert any("Saliency (gradient)" in c.value for c in app.caption)
