"""The shared dashboard API (app/state.py, app/widgets.py) other pages code against."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.conftest import TIMEOUT


def script() -> None:
    """Runs inside AppTest: exercise app.state and show what it returns."""
    import streamlit as st

    from app.state import add_user_model, available_models, current_device, get_model, sample_images, session_results
    from app.widgets import show_error
    from protoviz.errors import ProtovizError

    st.markdown("models: " + ",".join(sorted(available_models())))
    st.markdown("samples: " + ",".join(p.name for p in sample_images()))
    st.markdown(f"device: {current_device()}")
    runs = session_results("state-test")
    runs["count"] = runs.get("count", 0) + 1
    st.markdown(f"runs: {runs['count']}")
    first = get_model("tiny_log")
    st.markdown(f"same object: {get_model('tiny_log') is first} lock: {type(first.lock).__name__}")
    for name, path in st.session_state.get("to_add", []):
        try:
            entry = add_user_model(name, path)
            st.markdown(f"added: {entry.name} ({entry.origin})")
        except ProtovizError as error:
            show_error(error)
    try:
        get_model("absent")
    except ProtovizError as error:
        show_error(error)


def test_state_api(app_env: None, model_dir: Path, tmp_path: Path) -> None:
    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    text = [m.value for m in at.markdown]
    assert "models: tiny_cosine,tiny_log" in text
    assert "samples: sample_a.png,sample_b.png" in text
    assert "device: cpu" in text
    assert "same object: True lock: lock" in text
    assert any("no model named 'absent'" in e.value for e in at.error)
    at.run()
    assert "runs: 2" in [m.value for m in at.markdown]
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    at.session_state["to_add"] = [("mine", str(model_dir / "tiny_log.safetensors")), ("bad", str(broken))]
    at.run()
    assert "added: mine (added)" in [m.value for m in at.markdown]
    assert any(e.value.startswith("broken.safetensors") for e in at.error)
    at.session_state["to_add"] = []
    at.run()
    assert "models: mine,tiny_cosine,tiny_log" in [m.value for m in at.markdown]
