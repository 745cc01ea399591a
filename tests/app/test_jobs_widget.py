"""AppTest of app/jobs.py: a job's progress panel with time left and Stop, its stored result on return,
the same request served from the store, and a failure shown as a message."""

from __future__ import annotations

import threading

from streamlit.testing.v1 import AppTest

from tests.app.conftest import TIMEOUT, with_owner

WAIT = 60.0


def script() -> None:
    """Runs inside AppTest: one job_result call keyed by session_state['n'], as a page would make it."""
    import streamlit as st

    from app.jobs import job_result
    from app.store import job_manager
    from protoviz.errors import DatasetError
    from protoviz.payload import Payload
    from protoviz.progress import Progress
    from protoviz.workspace import RunKey

    gate: threading.Event = st.session_state["gate"]
    started: threading.Event = st.session_state["started"]
    fail = st.session_state.get("fail", False)  # read before: the job's thread has no Streamlit context

    def work(progress: Progress) -> Payload:
        progress(1, 10, "scoring")
        started.set()
        if fail:
            raise DatasetError("the dataset has no part annotations")
        gate.wait(60)
        for i in range(2, 11):
            progress(i, 10, "scoring")
        return Payload(data={"accuracy": 0.75}, tables={"scores": [{"metric": "accuracy", "value": 0.75}]})

    st.session_state["manager"] = job_manager()
    key = RunKey.make("evaluate", "sha-tiny", "fp-cub", {"n": st.session_state.get("n", 0)})
    clicked = st.button("Evaluate", key="go")
    record = job_result(key, work, start=clicked, label="Evaluate tiny", model_name="tiny", dataset_name="cub")
    if record is not None:
        st.markdown(f"accuracy: {record.payload.data['accuracy']} cached: {record.cached}")


def session(**state: object) -> AppTest:
    at = with_owner(AppTest.from_function(script, default_timeout=TIMEOUT))
    at.session_state["gate"], at.session_state["started"] = threading.Event(), threading.Event()
    for name, value in state.items():
        at.session_state[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def markdown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def test_progress_then_result_then_served_from_the_store(app_env: None) -> None:
    at = session()
    assert not at.get("progress") and not markdown(at)  # nothing runs before the click
    at.button(key="go").click().run()
    assert at.session_state["started"].wait(WAIT)
    at.run()  # as the page's polling does
    [bar] = at.get("progress")
    assert "Evaluate tiny — scoring: 1/10 images" in bar.proto.text and bar.proto.value == 10
    job = at.session_state["manager"].list_jobs()[0]
    at.session_state["gate"].set()
    assert at.session_state["manager"].wait(job.id, WAIT).state == "done"
    at.run()
    assert "accuracy: 0.75 cached: False" in markdown(at)  # this session computed it
    assert any("Computed and kept" in c.value for c in at.caption)
    fresh = session()  # a refresh: a new session with the same inputs gets the stored result at once
    assert "accuracy: 0.75 cached: True" in markdown(fresh) and not fresh.get("progress")
    assert any("From the store" in c.value for c in fresh.caption)


def test_stop_button_stops_the_job_and_the_page_says_so(app_env: None) -> None:
    at = session(n=1)
    at.button(key="go").click().run()
    assert at.session_state["started"].wait(WAIT)
    at.run()
    manager = at.session_state["manager"]
    [job] = [j for j in manager.list_jobs() if j.state == "running"]
    at.button(key=f"jobs.stop.{job.id}").click().run()
    assert not at.exception, at.exception
    assert manager.get(job.id).stop_requested
    [bar] = at.get("progress")
    assert bar.proto.text.endswith("stopping at the next step…")
    assert at.button(key=f"jobs.stop.{job.id}").disabled
    at.session_state["gate"].set()
    assert manager.wait(job.id, WAIT).state == "stopped"
    at.run()
    assert any("stopped on request at 1/10" in w.value for w in at.warning)
    assert not any(m.startswith("accuracy") for m in markdown(at))


def test_a_failed_job_shows_its_message(app_env: None) -> None:
    at = session(n=2, fail=True)
    at.button(key="go").click().run()
    manager = at.session_state["manager"]
    [job] = manager.list_jobs()
    assert manager.wait(job.id, WAIT).state == "failed"
    at.run()
    assert [e.value for e in at.error] == ["Evaluate tiny failed: the dataset has no part annotations"]
