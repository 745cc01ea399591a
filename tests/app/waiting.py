"""Waiting for a page's background jobs in AppTest: poll the workspace, then rerun the page."""

from __future__ import annotations

import time
from collections.abc import Callable

from streamlit.testing.v1 import AppTest

from protoviz.workspace import Workspace
from tests.app.conftest import OWNER

WAIT_S = 180.0


def kept_runs(kind: str, owner: str = OWNER) -> list:
    """The visitor's stored runs of ``kind`` (newest first)."""
    return Workspace().for_owner(owner).list_runs(kind=kind)


def wait_for_runs(kind: str, count: int = 1, owner: str = OWNER, timeout: float = WAIT_S) -> list:
    """Block until the visitor keeps ``count`` runs of ``kind`` (the jobs finished); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while len(runs := kept_runs(kind, owner)) < count:
        assert time.monotonic() < deadline, f"no {count} stored {kind} run(s) after {timeout} s"
        time.sleep(0.2)
    return runs


def rerun_until(app: AppTest, done: Callable[[AppTest], bool], timeout: float = WAIT_S) -> AppTest:
    """Rerun the page (as its job panel's polling does) until ``done(app)``; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        app.run()
        if done(app) or app.exception:
            return app
        assert time.monotonic() < deadline, "the page never showed the job's result"
        time.sleep(0.3)


def captions(app: AppTest) -> str:
    return " ".join(c.value for c in app.caption)
