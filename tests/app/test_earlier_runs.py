"""A refresh resets a page's widgets; the visitor's kept runs of that page are listed under its empty state,
each opening on the Results page (names escaped). Another visitor's runs are never listed."""

from __future__ import annotations

from protoviz.workspace import RunKey, Workspace
from tests.app.conftest import OWNER, app_test


def _keep(kind: str, model_name: str, owner: str = OWNER) -> int:
    key = RunKey.make(kind, "a" * 64, "f" * 64, {"images": 24, "kind": kind})
    record = Workspace(owner=owner).save_run(key, {"tables": {"scores": [{"model": model_name, "accuracy": 50.0}]}},
                                             model_name=model_name, dataset_name="synthetic test")
    return record.id


def test_kept_runs_are_listed_under_the_empty_page_and_open_on_results(app_env: None) -> None:
    mine = _keep("evaluate", "tiny_**bold**")
    _keep("evaluate", "someone_else", owner="another-visitor-token-0123456789")
    _keep("trust", "not_this_page")
    at = app_test().run()
    at.switch_page("views/evaluate.py").run()
    assert not at.exception
    assert any(c.value.startswith("Your latest kept runs of this page") for c in at.caption)
    listed = [m.value for m in at.markdown if m.value.startswith("#")]
    assert listed and listed[0].startswith(f"#{mine} · tiny\\_\\*\\*bold\\*\\* · synthetic test")
    assert not any("someone_else" in line or "not_this_page" in line for line in listed)
    at.button(key=f"earlier.evaluate.{mine}").click().run()
    assert not at.exception
    assert at.session_state["results.open"] == mine
    assert any(h.value.startswith(f"\\#{mine} · evaluate · tiny") for h in at.subheader)


def test_nothing_is_listed_without_kept_runs(app_env: None) -> None:
    at = app_test().run()
    at.switch_page("views/evaluate.py").run()
    assert not at.exception
    assert not any(c.value.startswith("Your latest kept runs") for c in at.caption)
