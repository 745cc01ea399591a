"""AppTest of the Trust and Prototypes pages' failure cases: a job stopped mid-run keeps nothing and the page
says so (the model's lock is held by the test, so the job is certainly mid-run when Stop is pressed), and
hostile class and model names ("<script>", "**x**", a markdown link) reach markdown escaped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.cache import LoadedModel, load_cached_model
from protoviz.data.classnames import with_class_names
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.models.checkpoint import save_model
from tests.app.conftest import with_owner
from tests.app.waiting import kept_runs, rerun_until
from tests.conftest import make_tiny_model

VIEWS = Path(__file__).resolve().parents[2] / "app" / "views"
HOSTILE = ["<script>alert(1)</script>", "**x**", "[link](http://e.vil)"]
MODEL = "m_**y**"  # a file name is user text too


def _page(name: str, timeout: int = 120) -> AppTest:
    return with_owner(AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=timeout))


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error] + [str(x.value) for x in app.exception]


def _hostile_model(folder: Path) -> Path:
    return save_model(with_class_names(make_tiny_model(seed=3), HOSTILE), folder / f"{MODEL}.safetensors")


def _cached(path: Path) -> LoadedModel:
    """The process-wide loaded model the page uses (same cache key as app.state.get_model on the CPU)."""
    return load_cached_model(path.stem, str(path), None, "cpu", path.stat().st_mtime_ns, "")


def _stop_button(app: AppTest) -> str:
    keys = [b.key for b in app.button if b.key and b.key.startswith("jobs.stop.")]
    assert len(keys) == 1, keys
    return keys[0]


def _stopped(app: AppTest) -> bool:
    return any("stopped on request" in w.value for w in app.warning)


def _rendered_texts(app: AppTest) -> list[str]:
    """Every string the page hands to a markdown renderer: markdown, captions, headers, alerts, image captions."""
    texts = [e.value for e in [*app.markdown, *app.caption, *app.subheader, *app.header, *app.title]]
    texts += [e.value for e in [*app.info, *app.warning, *app.error, *app.success]]
    for element in app.get("imgs"):
        texts += [img.caption for img in element.proto.imgs if img.caption]
    return texts


def _assert_escaped(texts: list[str]) -> None:
    """No hostile name survives unescaped: each markdown-significant character is backslash-escaped."""
    raw = [t for t in texts if re.search(r"(?<!\\)<script|(?<!\\)\*\*x|(?<!\\)\[link|(?<!\\)\*\*y", t)]
    assert raw == []


def test_trust_job_stopped_mid_run_keeps_nothing(app_env: None) -> None:
    app = _page("trust").run()
    app.radio(key="trust.source").set_value("My images").run()
    app.multiselect(key="trust.images.samples").set_value(["sample_a.png"]).run()
    app.multiselect(key="trust.methods").set_value(["upsample"])
    app.slider(key="trust.stages").set_value(1)
    app.slider(key="trust.steps").set_value(2)
    name = app.selectbox(key="trust.model").value
    loaded = _cached(Path(__import__("os").environ["PROTOVIZ_MODEL_DIR"]) / f"{name}.safetensors")
    with loaded.lock:  # the job waits at its first batch of work on the model
        app.button(key="trust.run").click().run()
        assert _errors(app) == []
        app.button(key=_stop_button(app)).click().run()
        assert any(p.proto.text.endswith("stopping at the next step…") for p in app.get("progress"))
    rerun_until(app, _stopped, timeout=60)
    assert _errors(app) == [] and kept_runs("trust") == []
    assert not any("method" in d.value.columns for d in app.dataframe)  # no report shown


def test_topk_job_stopped_mid_run_keeps_nothing(app_env: None, tmp_path: Path) -> None:
    data = generate_dataset(tmp_path / "data", SyntheticConfig(image_size=64, n_train_per_class=0,
                                                                n_test_per_class=2))
    app = _page("prototypes").run()
    app.selectbox(key="prototypes.model").set_value("tiny_log").run()
    app.radio(key="prototypes.data.source").set_value("local folder").run()
    app.text_input(key="prototypes.data.folder").set_value(str(data))
    app.number_input(key="prototypes.data.limit").set_value(8)
    app.run()
    loaded = _cached(Path(__import__("os").environ["PROTOVIZ_MODEL_DIR"]) / "tiny_log.safetensors")
    with loaded.lock:
        app.button(key="prototypes.compute").click().run()
        assert _errors(app) == []
        app.button(key=_stop_button(app)).click().run()
        assert any(p.proto.text.endswith("stopping at the next step…") for p in app.get("progress"))  # still running
    rerun_until(app, _stopped, timeout=60)
    assert _errors(app) == [] and kept_runs("compare") == []


def test_hostile_names_are_escaped_on_the_prototypes_page(app_env: None, model_dir: Path) -> None:
    _hostile_model(model_dir)
    app = _page("prototypes").run()
    app.selectbox(key="prototypes.model").set_value(MODEL).run()
    assert _errors(app) == []
    groups = [m.value for m in app.markdown if m.value.endswith("prototype(s)")]
    assert groups[0] == r"**\<script\>alert(1)\</script\>** · 2 prototype(s)".replace("(1)", r"\(1\)")
    assert groups[1] == r"**\*\*x\*\*** · 2 prototype(s)"
    app.selectbox(key="prototypes.selected").set_value(2).run()  # the card of a "**x**" prototype
    assert app.subheader[0].value == r"Prototype 2 · class \*\*x\*\*"
    app.selectbox(key="prototypes.class_filter").set_value("**x**").run()  # filter by the hostile class
    assert _errors(app) == []
    _assert_escaped(_rendered_texts(app))


@pytest.mark.parametrize("page", ["trust", "compare"])
def test_hostile_names_are_escaped_on_trust_and_compare(app_env: None, model_dir: Path, page: str) -> None:
    _hostile_model(model_dir)
    app = _page(page).run()
    if page == "trust":
        app.selectbox(key="trust.model").set_value(MODEL)
        app.radio(key="trust.source").set_value("My images").run()
        app.multiselect(key="trust.images.samples").set_value(["sample_a.png"]).run()
        app.multiselect(key="trust.methods").set_value(["upsample"])
        app.slider(key="trust.stages").set_value(1)
        app.slider(key="trust.steps").set_value(2)
        app.button(key="trust.run").click().run()
        rerun_until(app, lambda a: any("method" in d.value.columns for d in a.dataframe), timeout=120)
    else:
        app.multiselect(key="compare.models").set_value(["tiny_log", MODEL])
        app.multiselect(key="compare.images.samples").set_value(["sample_a.png"]).run()
    assert _errors(app) == []
    texts = _rendered_texts(app)
    if page == "compare":
        assert any(r"m\_\*\*y\*\*" in t for t in texts)  # the model's name is shown, escaped
    _assert_escaped(texts)
