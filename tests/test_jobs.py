"""Background jobs: queue limit per device, stop, failure messages, stored results, served-from-store,
progress visible to other processes, and what a server restart leaves."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protoviz import jobs as J
from protoviz.errors import DatasetError, WorkspaceError
from protoviz.jobs import DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, STOPPED, JobManager, default_per_device
from protoviz.payload import Payload
from protoviz.progress import Progress
from protoviz.workspace import RunKey, Workspace

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0  # generous bound for two busy cores; tests never wait for it unless something is wrong


def key(n: int = 0) -> RunKey:
    return RunKey.make("evaluate", f"sha{n}", "fp", {"n": n})


@pytest.fixture
def manager() -> Iterator[JobManager]:
    jobs = JobManager(Workspace(), save_every_s=0.0)
    yield jobs
    jobs.shutdown(timeout=WAIT)


def quick(value: int = 1):
    def fn(progress: Progress) -> Payload:
        for i in range(3):
            progress(i + 1, 3, "work")
        return Payload(data={"value": value}, tables={"scores": [{"metric": "m", "value": value}]})
    return fn


def blocked(release: threading.Event, started: threading.Event | None = None, log: list[int] | None = None,
            name: int = 0):
    """A job that reports 1/10, then waits for ``release`` before its next progress call."""
    def fn(progress: Progress) -> Payload:
        if log is not None:
            log.append(name)
        progress(1, 10, "work")
        if started is not None:
            started.set()
        assert release.wait(WAIT)
        for i in range(2, 11):
            progress(i, 10, "work")
        return Payload(data={"name": name})
    return fn


def test_a_job_stores_its_result_and_the_same_request_is_served_from_the_store(manager: JobManager) -> None:
    job = manager.submit(key(), quick(7), label="evaluate tiny", model_name="tiny", dataset_name="cub")
    done = manager.wait(job.id, WAIT)
    assert done.state == DONE and not done.cached and done.progress is not None
    assert (done.progress.done, done.progress.total, done.progress.stage) == (3, 3, "work")
    record = manager.result(job.id)
    assert record is not None and not record.cached and record.payload.data == {"value": 7}
    assert record.model_name == "tiny" and manager.workspace.find_run(key()) is not None
    calls: list[int] = []
    again = manager.submit(key(), lambda progress: calls.append(1) or Payload())
    assert again.state == DONE and again.cached and again.id != job.id and not calls
    assert "served from the store" in again.message
    assert manager.result(again.id).cached  # type: ignore[union-attr]
    assert manager.result(again.id).payload.data == {"value": 7}  # type: ignore[union-attr]


def test_jobs_queue_beyond_the_limit_per_device_and_run_in_order(manager: JobManager) -> None:
    release, started, order = threading.Event(), threading.Event(), []
    first = manager.submit(key(0), blocked(release, started, order, 0))
    second = manager.submit(key(1), blocked(release, None, order, 1))
    third = manager.submit(key(2), blocked(release, None, order, 2))
    other_device = manager.submit(key(3), quick(), device="cuda:1")
    assert started.wait(WAIT)
    assert manager.wait(other_device.id, WAIT).state == DONE  # another device has its own slot
    views = [manager.get(j.id) for j in (first, second, third)]
    assert [v.state for v in views] == [RUNNING, QUEUED, QUEUED] and [v.position for v in views] == [None, 1, 2]
    assert manager.submit(key(1), quick()).id == second.id  # the same request joins the queued job
    release.set()
    assert [manager.wait(j.id, WAIT).state for j in (first, second, third)] == [DONE] * 3
    assert order == [0, 1, 2]


def test_two_slots_run_two_jobs_at_once() -> None:
    jobs = JobManager(Workspace(), per_device=2)
    both = threading.Barrier(2, timeout=WAIT)

    def meet(progress: Progress) -> Payload:
        both.wait()  # breaks (BrokenBarrierError -> failed) unless the other job runs at the same time
        return Payload()

    views = [jobs.submit(key(i), meet) for i in range(2)]
    assert [jobs.wait(v.id, WAIT).state for v in views] == [DONE, DONE]
    jobs.shutdown(WAIT)


def test_stop_a_running_job_at_its_next_progress_call_and_a_queued_one_at_once(manager: JobManager) -> None:
    release, started = threading.Event(), threading.Event()
    running = manager.submit(key(0), blocked(release, started))
    queued = manager.submit(key(1), quick())
    assert started.wait(WAIT)
    assert manager.stop(queued.id) and manager.get(queued.id).state == STOPPED
    assert manager.stop(running.id)
    assert manager.get(running.id).state == RUNNING  # it stops when it next reports progress
    release.set()
    stopped = manager.wait(running.id, WAIT)
    assert stopped.state == STOPPED and stopped.message == "stopped on request at 1/10"
    assert manager.workspace.find_run(key(0)) is None and manager.workspace.find_run(key(1)) is None
    assert not manager.stop(running.id)


def test_failures_keep_a_message_never_a_traceback(manager: JobManager, caplog: pytest.LogCaptureFixture) -> None:
    def bad_input(progress: Progress) -> Payload:
        raise DatasetError("/data/cub: missing images.txt")

    def bug(progress: Progress) -> Payload:
        return {}["missing"]  # type: ignore[return-value]

    first = manager.wait(manager.submit(key(0), bad_input).id, WAIT)
    assert first.state == FAILED and first.message == "/data/cub: missing images.txt"
    with caplog.at_level(logging.ERROR, logger="protoviz.jobs"):
        second = manager.wait(manager.submit(key(1), bug).id, WAIT)
    assert second.state == FAILED and "KeyError" in second.message and "Traceback" not in second.message
    assert "server log" in second.message
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    assert manager.result(second.id) is None
    assert manager.wait(manager.submit(key(1), quick()).id, WAIT).state == DONE  # a failure does not block a retry


def test_rerun_replaces_the_stored_result(manager: JobManager) -> None:
    manager.wait(manager.submit(key(), quick(1)).id, WAIT)
    rerun = manager.wait(manager.submit(key(), quick(2), rerun=True).id, WAIT)
    assert rerun.state == DONE and not rerun.cached
    assert manager.result(rerun.id).payload.data == {"value": 2}  # type: ignore[union-attr]
    assert len(manager.workspace.list_runs()) == 1


def test_another_manager_sees_progress_and_lists_jobs(manager: JobManager) -> None:
    release, started = threading.Event(), threading.Event()
    job = manager.submit(key(), blocked(release, started), label="long one")
    assert started.wait(WAIT)
    elsewhere = JobManager(manager.workspace)  # e.g. another server process on the same workspace
    seen = elsewhere.get(job.id)
    assert seen.state == RUNNING and not seen.local and seen.progress is not None and seen.progress.done == 1
    assert elsewhere.find(key()) is not None and elsewhere.find(key(5)) is None
    assert not elsewhere.stop(job.id)  # only its own process can stop it
    assert [j.label for j in elsewhere.list_jobs()] == ["long one"]
    release.set()
    manager.wait(job.id, WAIT)
    assert elsewhere.get(job.id).state == DONE and elsewhere.find(key()) is None
    with pytest.raises(WorkspaceError, match="no job"):
        elsewhere.get("nope")


def test_old_finished_jobs_are_pruned() -> None:
    jobs = JobManager(Workspace(), keep_finished=3)
    for i in range(5):
        jobs.wait(jobs.submit(key(i), quick()).id, WAIT)
    served = jobs.submit(key(0), quick())  # served from the store: finished at once, then the prune
    assert served.cached and jobs.list_jobs()[0].id == served.id
    assert len(jobs.list_jobs()) == 3 and len(jobs.workspace.list_runs()) == 5  # runs are never pruned
    jobs.shutdown(WAIT)


SERVER = """
import sys, threading
from protoviz.jobs import JobManager
from protoviz.payload import Payload
from protoviz.workspace import RunKey, Workspace
jobs = JobManager(Workspace(sys.argv[1]))
done = jobs.submit(RunKey.make("evaluate", "kept", "fp", {}), lambda p: Payload(data={"kept": True}))
jobs.wait(done.id)
started = threading.Event()
def forever(progress):
    progress(1, 100, "work")
    started.set()
    threading.Event().wait()
jobs.submit(RunKey.make("evaluate", "long", "fp", {}), forever, label="long")
jobs.submit(RunKey.make("evaluate", "next", "fp", {}), forever, label="next")
started.wait()
print("running", flush=True)
threading.Event().wait()
"""


@pytest.mark.skipif(os.name != "posix", reason="kills a child process with SIGKILL")
def test_a_server_restart_marks_its_jobs_interrupted_and_keeps_stored_runs(tmp_path: Path) -> None:
    Workspace(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "running"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
    restarted = JobManager(Workspace(tmp_path))
    assert restarted.interrupted == 2
    jobs = {j.label: j for j in restarted.list_jobs()}
    assert jobs["long"].state == INTERRUPTED and "while it ran" in jobs["long"].message
    assert jobs["next"].state == INTERRUPTED and "before it started" in jobs["next"].message
    assert jobs["long"].progress is not None and jobs["long"].progress.done == 1
    kept = restarted.workspace.find_run(RunKey.make("evaluate", "kept", "fp", {}))
    assert kept is not None and kept.payload.data == {"kept": True}
    assert JobManager(Workspace(tmp_path)).interrupted == 0  # only once


def test_jobs_per_device_from_the_environment() -> None:
    assert default_per_device({}) == 1 and default_per_device({"PROTOVIZ_JOBS_PER_DEVICE": "3"}) == 3
    with pytest.raises(WorkspaceError, match="PROTOVIZ_JOBS_PER_DEVICE"):
        default_per_device({"PROTOVIZ_JOBS_PER_DEVICE": "0"})


def orphan(ws: Workspace, process: str, heartbeat_at: float, state: str = RUNNING) -> str:
    """A job row (of the workspace's owner) as another process would have left it."""
    job_id = f"orphan-{process}-{heartbeat_at}"
    with ws.write() as con:
        con.execute("INSERT INTO jobs (id, owner, kind, model_sha256, dataset_fingerprint, settings, label, model_name, "
                    "dataset_name, device, state, message, progress, run_id, cached, process, created_at, started_at, "
                    "finished_at, heartbeat_at) VALUES (?, ?, 'evaluate', 's', 'f', '{}', ?, '', '', 'cpu', ?, '', "
                    "NULL, NULL, 0, ?, 0, 0, NULL, ?)", (job_id, ws.owner, process, state, process, heartbeat_at))
    return job_id


def test_jobs_of_processes_that_are_gone_are_interrupted_and_live_ones_are_not() -> None:
    ws, now = Workspace(), time.time()
    here = f"{socket.gethostname()}:{os.getpid()}"
    silent = orphan(ws, "other-container:7:abc", now - 1000)  # no heartbeat for 1000 s
    beating = orphan(ws, "other-container:8:abc", now - 5)
    earlier = orphan(ws, f"{here}:not-{J.PROCESS_TOKEN}", now)  # this pid, an earlier process (restarted container)
    ours = orphan(ws, f"{here}:{J.PROCESS_TOKEN}", now - 1000)  # this very process: alive whatever its beat
    jobs = JobManager(ws, stale_after_s=120)
    assert jobs.interrupted == 2
    states = {j.id: j.state for j in jobs.list_jobs()}
    assert states == {silent: INTERRUPTED, beating: RUNNING, earlier: INTERRUPTED, ours: RUNNING}


def test_a_running_job_keeps_its_heartbeat_fresh() -> None:
    release, started = threading.Event(), threading.Event()
    jobs = JobManager(Workspace(), heartbeat_s=0.01, stale_after_s=60)
    job = jobs.submit(key(), blocked(release, started))
    assert started.wait(WAIT)

    def beat() -> float:
        with jobs.workspace.read() as con:
            return con.execute("SELECT heartbeat_at FROM jobs WHERE id = ?", (job.id,)).fetchone()[0]

    first, deadline = beat(), time.monotonic() + WAIT
    while beat() == first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert beat() > first
    release.set()
    jobs.shutdown(WAIT)
