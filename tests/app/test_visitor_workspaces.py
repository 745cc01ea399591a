"""AppTest: each visitor's workspace is its own. Two sessions with different ``?ws=`` tokens never see each
other's runs, kept models or jobs; the same token in a new session (a refresh) and after a cleared process
cache (a server restart) sees them again; a missing or malformed token gets a fresh one, never an error;
``PROTOVIZ_SHARED_WORKSPACE=1`` puts every session in one shared workspace."""

from __future__ import annotations

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from protoviz.jobs import JobManager
from protoviz.owners import is_token, new_token
from protoviz.payload import Payload
from protoviz.workspace import RunKey, Workspace
from tests.app.conftest import APP, VIEWS, app_test, with_owner

RESULTS = VIEWS / "results.py"
MODELS = VIEWS / "models.py"
ALICE, BOB = "alice-token-000000000000", "bob-token-00000000000000"


def seed(owner: str, model: str) -> int:
    """A kept run and a finished job of ``owner`` (what its sessions computed earlier)."""
    ws = Workspace(owner=owner)
    run = ws.save_run(RunKey.make("evaluate", "a" * 64, "f" * 64, {"seed": 0}),
                      Payload(tables={"scores": [{"metric": "accuracy", "value": 50.0}]}), model_name=model)
    jobs = JobManager(ws)
    jobs.wait(jobs.submit(RunKey.make("trust", "b" * 64, "f" * 64, {}), lambda p: Payload(),
                          label=f"Trust {model}", model_name=model).id, 60)
    jobs.shutdown(60)
    return run.id


def results(owner: str | None) -> AppTest:
    at = AppTest.from_file(str(RESULTS), default_timeout=120)
    if owner is not None:
        with_owner(at, owner)
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return at


def listed(at: AppTest) -> tuple[list[str], list[str]]:
    """(models of the kept runs, labels of the jobs) on the Results page."""
    frames = [d.value for d in at.dataframe]
    runs = next((f for f in frames if "size (kB)" in f.columns), pd.DataFrame({"model": []}))
    jobs = next((f for f in frames if "job" in f.columns), pd.DataFrame({"job": []}))
    return list(runs["model"]), list(jobs["job"])


def test_two_visitors_never_see_each_others_runs_or_jobs(app_env: None) -> None:
    alice_run, bob_run = seed(ALICE, "alice model"), seed(BOB, "bob model")
    seed("local", "command line model")  # the command line's: no visitor sees it either
    assert listed(results(ALICE)) == (["alice model"] * 2, ["Trust alice model"])
    assert listed(results(BOB)) == (["bob model"] * 2, ["Trust bob model"])
    alice = results(ALICE)
    assert not any("bob" in option for option in alice.selectbox(key="results.open").options)
    assert "2 run(s)" in alice.caption[0].value  # counts only its own
    with pytest.raises(KeyError):  # Bob's run cannot be opened through Alice's page either
        alice.button(key=f"results.delete.{bob_run}")
    refreshed = results(ALICE)  # a new session with the same address: a refresh, a bookmark
    assert listed(refreshed) == (["alice model"] * 2, ["Trust alice model"])
    st.cache_resource.clear()  # a server restart: the process's workspace and job manager are rebuilt
    restarted = results(ALICE)
    assert listed(restarted) == (["alice model"] * 2, ["Trust alice model"])
    restarted.selectbox(key="results.open").set_value(alice_run).run()
    restarted.button(key=f"results.delete.{alice_run}").click().run()
    assert listed(restarted)[0] == ["alice model"]
    assert listed(results(BOB)) == (["bob model"] * 2, ["Trust bob model"])  # Alice's delete touched only hers


@pytest.mark.parametrize("given", [None, "local", "short", "x" * 23 + "!", "a" * 25, "../" * 8, "z" * 5000])
def test_a_missing_or_malformed_token_gets_a_fresh_one_and_an_empty_workspace(app_env: None, given: str) -> None:
    seed("local", "command line model")
    seed(ALICE, "alice model")
    at = results(given)
    token = at.query_params.get("ws")
    assert is_token(token) and token not in {given, ALICE, "local"}
    assert listed(at) == ([], [])
    at.run()  # the next run (and a page switch, which empties the address) keeps the same token
    assert at.query_params["ws"] == token
    at.query_params.clear()
    at.run()
    assert at.query_params["ws"] == token


def test_a_shared_workspace_is_one_for_every_session(app_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROTOVIZ_SHARED_WORKSPACE", "1")
    seed("local", "command line model")
    seed(ALICE, "alice model")
    for given in (None, ALICE, BOB):
        at = results(given)
        assert listed(at) == (["command line model"] * 2, ["Trust command line model"])
    assert "ws" not in results(None).query_params
    monkeypatch.setenv("PROTOVIZ_SHARED_WORKSPACE", "maybe")
    at = AppTest.from_file(str(RESULTS), default_timeout=120)
    at.run()
    assert not at.exception and any("PROTOVIZ_SHARED_WORKSPACE must be 1 or 0" in e.value for e in at.error)


def add_model(owner: str, model_dir: object, name: str) -> None:
    at = app_test(MODELS, owner)
    at.run()
    at.file_uploader(key="models.add.upload").set_value(
        ("kept.safetensors", (model_dir / "tiny_log.safetensors").read_bytes(),  # type: ignore[operator]
         "application/octet-stream"))
    at.text_input(key="models.add.name").set_value(name)
    at.button(key="models.add.submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def cards(owner: str) -> list[str]:
    at = app_test(MODELS, owner)
    at.run()
    assert not at.exception, at.exception
    return [h.value for h in at.subheader]


def test_kept_models_are_per_visitor_and_survive_a_refresh_and_a_restart(app_env: None, model_dir: object) -> None:
    add_model(ALICE, model_dir, "alice's")
    add_model(BOB, model_dir, "mine")
    assert cards(ALICE) == ["tiny_cosine", "tiny_log", "alice's"]  # demo models, then hers
    assert cards(BOB) == ["tiny_cosine", "tiny_log", "mine"]
    assert "alice's" not in cards(new_token())
    st.cache_resource.clear()
    assert cards(ALICE) == ["tiny_cosine", "tiny_log", "alice's"]


def test_the_sidebar_shows_the_link_and_makes_a_new_private_workspace(app_env: None) -> None:
    seed(ALICE, "alice model")
    at = app_test(APP, ALICE)
    at.run()
    assert not at.exception, at.exception
    assert any(f"?ws={ALICE}" in c.value for c in at.sidebar.code)
    assert any("This link is your workspace" in c.value for c in at.sidebar.caption)
    at.sidebar.button(key="workspace.new").click().run()
    assert not at.exception, at.exception
    fresh = at.query_params["ws"]
    assert is_token(fresh) and fresh != ALICE and any(f"?ws={fresh}" in c.value for c in at.sidebar.code)
    assert listed(results(fresh)) == ([], []) and listed(results(ALICE)) == (["alice model"] * 2, ["Trust alice model"])
