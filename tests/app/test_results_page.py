"""AppTest of the Results page: kept runs listed, re-opened with their scores, exported, deleted; jobs listed
with their state; an unusable workspace is a message, not a traceback."""

from __future__ import annotations

import math

import pandas as pd
from streamlit.testing.v1 import AppTest

from protoviz.errors import DatasetError
from protoviz.jobs import JobManager
from protoviz.payload import Payload
from protoviz.progress import Progress
from protoviz.workspace import DB_NAME, RunKey, Workspace, home_dir
from tests.app.conftest import OWNER, VIEWS, app_test

PAGE = VIEWS / "results.py"


def seed() -> tuple[int, int]:
    ws = Workspace(owner=OWNER)
    first = ws.save_run(RunKey.make("evaluate", "a" * 64, "f" * 64, {"metrics": ["accuracy"], "seed": 0}),
                        Payload(data={"n": 1}, tables={"scores": [{"metric": "accuracy", "value": 0.5, "unit": "%"}],
                                                       "prototypes": [{"prototype": 0, "consistency": math.nan}]},
                                provenance={"device": "cpu"}),
                        model_name="tiny_log", dataset_name="cub test")
    second = ws.save_run(RunKey.make("trust", "b" * 64, "f" * 64, {"methods": ["prp"]}),
                         Payload(tables={"scores": [{"method": "prp", "deletion_auc": 0.1}]}),
                         model_name="tiny_cosine", dataset_name="samples")
    return first.id, second.id


def frame(at: AppTest, column: str, index: int = 0) -> pd.DataFrame:
    """The ``index``-th dataframe on the page that has ``column`` (st.dataframe keys are not exposed)."""
    return [d.value for d in at.dataframe if column in d.value.columns][index]


def page() -> AppTest:
    at = app_test(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def test_runs_are_listed_reopened_exported_and_deleted(app_env: None) -> None:
    first, second = seed()
    at = page()
    listing = frame(at, "size (kB)")
    assert list(listing["run"]) == [second, first] and list(listing["kind"]) == ["trust", "evaluate"]
    assert list(listing["model"]) == ["tiny_cosine", "tiny_log"]
    assert "metrics=[\"accuracy\"], seed=0" in list(listing["settings"])
    at.selectbox(key="results.open").set_value(first).run()
    scores = frame(at, "metric")
    assert scores.to_dict("records") == [{"metric": "accuracy", "value": 0.5, "unit": "%"}]
    assert frame(at, "consistency").shape == (1, 2)
    downloads = {d.proto.label: d for d in at.get("download_button")}
    assert set(downloads) == {"JSON", "CSV: scores", "CSV: prototypes"}
    at.selectbox(key="results.kind").set_value("trust").run()
    assert list(frame(at, "size (kB)")["run"]) == [second]
    at.selectbox(key="results.kind").set_value("all kinds").run()
    at.selectbox(key="results.open").set_value(second).run()
    at.button(key=f"results.delete.{second}").click().run()
    assert not at.exception, at.exception
    assert [r.id for r in Workspace(owner=OWNER).list_runs()] == [first]
    assert list(frame(at, "size (kB)")["run"]) == [first]


def test_jobs_are_listed_with_their_state(app_env: None) -> None:
    jobs = JobManager(Workspace(owner=OWNER))

    def fails(progress: Progress) -> Payload:
        progress(2, 4, "scan")
        raise DatasetError("no images in split 'test'")

    done = jobs.submit(RunKey.make("compare", "c" * 64, "f" * 64, {}), lambda p: Payload(), label="Compare two")
    failed = jobs.submit(RunKey.make("evaluate", "d" * 64, "f" * 64, {}), fails, label="Evaluate broken")
    jobs.wait(done.id, 60)
    jobs.wait(failed.id, 60)
    at = page()
    listed = frame(at, "job").set_index("job")
    assert listed.loc["Compare two", "state"] == "done" and listed.loc["Evaluate broken", "state"] == "failed"
    assert listed.loc["Evaluate broken", "message"] == "no images in split 'test'"
    assert listed.loc["Evaluate broken", "progress"] == "scan: 2/4 images"
    jobs.shutdown(60)


def test_a_damaged_workspace_is_a_message_and_stays_untouched(app_env: None) -> None:
    path = home_dir() / DB_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database" * 100)
    at = page()
    assert any("not a protoviz workspace" in e.value for e in at.error)
    assert path.read_bytes() == b"not a database" * 100
