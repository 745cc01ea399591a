"""Background jobs that outlive the page: run on worker threads, recorded in the workspace.

A job is a callable ``fn(progress) -> result`` answering one :class:`~protoviz.workspace.RunKey`.
:meth:`JobManager.submit` serves a stored run at once (a ``done`` job with ``cached=True``), joins a
job already running for the same key, or queues a new one. At most ``per_device`` jobs run at a time
per device (default 1); the rest wait in order. While it runs, a job's progress (rate and time left,
:class:`~protoviz.progress.ProgressTracker`) is kept in memory and written to the workspace about once
a second; :meth:`JobManager.stop` makes the next progress call raise
:class:`~protoviz.progress.Cancelled`. Its result is stored as a run; its error is kept as a message
(a :class:`~protoviz.errors.ProtovizError`'s own text, else a generic one: the traceback goes to the
``protoviz.jobs`` log only).

Owners: a manager acts for its workspace's owner (:mod:`protoviz.owners`) and sees, joins, stops and
lists only that owner's jobs; another owner's job is answered exactly as a missing one.
:meth:`JobManager.for_owner` gives the same manager (queue, slots per device, worker threads) acting for
another owner: the dashboard has one manager per process and one view of it per visitor. Two owners
asking the same thing run two jobs (results are never shared between owners). Queue positions count
every owner's waiting jobs, since they share the slots.

States: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``stopped``; ``interrupted`` is set by
:meth:`JobManager.recover` on the queued and running jobs of a process that is gone, i.e. after a
server restart: a process of this machine that no longer runs (or whose pid now belongs to this
process), or any process whose heartbeat (written every ``heartbeat_s`` while it has active jobs) is
older than ``stale_after_s`` (another container or machine on the same workspace). Recovery runs
when a manager is created and whenever jobs are listed or looked up. Runs already stored stay.

There is no module-level manager: the app creates one per process (``st.cache_resource``) and passes it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from protoviz.errors import ProtovizError, WorkspaceError
from protoviz.payload import Payload, Storable
from protoviz.progress import Cancelled, CancelToken, Progress, ProgressReading, ProgressTracker
from protoviz.workspace import RunKey, RunRecord, Workspace

QUEUED, RUNNING, DONE, FAILED, STOPPED, INTERRUPTED = "queued", "running", "done", "failed", "stopped", "interrupted"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, STOPPED, INTERRUPTED)
JobFn = Callable[[Progress], Payload | Storable | Mapping[str, Any]]
LOG = logging.getLogger("protoviz.jobs")
PROCESS_TOKEN = uuid.uuid4().hex[:12]  # tells this process from an earlier one that had the same pid


@dataclass(frozen=True)
class JobView:
    """What a job is and where it stands. ``position``: 1 = next to start (queued jobs only);
    ``local``: it runs (or ran) in this process; times are seconds since the epoch."""

    id: str
    key: RunKey
    label: str
    state: str
    message: str
    model_name: str
    dataset_name: str
    device: str
    run_id: int | None
    cached: bool
    progress: ProgressReading | None
    position: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    local: bool
    stop_requested: bool = False

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(eq=False)
class _Live:
    """A job of this process (mutable; guarded by the manager's lock)."""

    id: str
    owner: str
    key: RunKey
    fn: JobFn | None  # dropped when the job ends, so nothing it holds outlives it
    label: str
    model_name: str
    dataset_name: str
    device: str
    replace: bool
    created_at: float
    token: CancelToken = dataclasses.field(default_factory=CancelToken)
    finished_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    state: str = QUEUED
    message: str = ""
    reading: ProgressReading | None = None
    run_id: int | None = None
    cached: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    saved_at: float = float("-inf")


@dataclass(eq=False)
class _Shared:
    """What every owner's view of one manager shares: jobs in memory, queue, busy slots, threads (under ``lock``)."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    live: dict[str, _Live] = dataclasses.field(default_factory=dict)
    queue: list[str] = dataclasses.field(default_factory=list)
    running: dict[str, int] = dataclasses.field(default_factory=dict)
    threads: dict[str, threading.Thread] = dataclasses.field(default_factory=dict)
    closed: threading.Event = dataclasses.field(default_factory=threading.Event)
    heart: threading.Thread | None = None


class JobManager:
    """Runs and records the jobs of one process, acting for ``workspace.owner``. Create one per process,
    pass it explicitly, and use :meth:`for_owner` for each owner.

    per_device: jobs running at once per device. save_every_s: how often a running job's progress is
    written to the workspace (it is always current in memory). keep_finished: finished jobs kept listed.
    heartbeat_s / stale_after_s: how often this process marks its active jobs alive, and after how long
    without a sign of life another process's active job counts as interrupted.
    """

    def __init__(self, workspace: Workspace, per_device: int = 1, *, save_every_s: float = 1.0,
                 keep_finished: int = 500, heartbeat_s: float = 10.0, stale_after_s: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        if per_device < 1:
            raise WorkspaceError(f"at least one job must run per device, got {per_device}")
        if stale_after_s <= heartbeat_s:
            raise WorkspaceError("stale_after_s must be longer than heartbeat_s")
        self.workspace = workspace
        self.per_device = per_device
        self.save_every_s = save_every_s
        self.keep_finished = keep_finished
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self.process = f"{socket.gethostname()}:{os.getpid()}:{PROCESS_TOKEN}"
        self._clock = clock
        self._s = _Shared()
        self.interrupted = self.recover()

    @property
    def owner(self) -> str:
        """Whose jobs this manager submits and sees."""
        return self.workspace.owner

    def for_owner(self, owner: str) -> JobManager:
        """The same manager (queue, slots, threads) acting for ``owner``: it sees and stops only ``owner``'s jobs."""
        view = copy.copy(self)
        view.workspace = self.workspace.for_owner(owner)
        return view

    # -- submitting and stopping -----------------------------------------------------------------

    def submit(self, key: RunKey, fn: JobFn, *, label: str = "", model_name: str = "", dataset_name: str = "",
               device: str = "default", rerun: bool = False) -> JobView:
        """The job answering ``key``: the stored run (``done``, ``cached``), the active job for it, or a new one.

        ``rerun`` computes again even if stored (the new result replaces the old one).
        """
        label = label or f"{key.kind} · {model_name or key.model_sha256[:12]}"
        with self._s.lock:
            active = self._active_for(key)
        if active is not None:
            return self._locked_view(active)
        stored = None if rerun else self.workspace.find_run(key, with_blobs=False)
        now = self._clock()
        live = _Live(uuid.uuid4().hex, self.owner, key, fn, label, model_name or (stored.model_name if stored else ""),
                     dataset_name or (stored.dataset_name if stored else ""), device, rerun, now)
        if stored is not None:
            live.state, live.run_id, live.cached, live.finished_at = DONE, stored.id, True, now
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(stored.stored_at))
            live.message = f"served from the store (computed {when})"
            live.finished_event.set()
        with self._s.lock:
            again = self._active_for(key)
            if again is not None:
                return self._view(again)
            self._insert_row(live)
            self._s.live[live.id] = live
            if stored is None:
                self._s.queue.append(live.id)
                self._start_ready()
                self._start_heartbeat()
        self._prune()
        return self._locked_view(live)

    def stop(self, job_id: str) -> bool:
        """Ask a job of this owner and process to stop: a queued one stops now, a running one at its next
        progress call. Returns False if the job is finished, runs in another process or is another owner's.
        """
        with self._s.lock:
            live = self._s.live.get(job_id)
            if live is None or live.owner != self.owner or live.state not in ACTIVE:
                return False
            if live.state == RUNNING:
                live.token.cancel()
                return True
            self._s.queue.remove(job_id)
            self._finish(live, STOPPED, "stopped before it started")
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop every job of this process, whoever's, and wait for the running ones (tests, orderly exits)."""
        with self._s.lock:
            owners = {live.id: live.owner for live in self._s.live.values()}
        for job_id, owner in owners.items():
            self.for_owner(owner).stop(job_id)
        for thread in list(self._s.threads.values()):
            thread.join(timeout)
        self._s.closed.set()
        if self._s.heart is not None:
            self._s.heart.join(timeout)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobView:
        """This owner's job ``job_id`` (of any process); WorkspaceError if unknown or another owner's."""
        with self._s.lock:
            live = self._s.live.get(job_id)
            if live is not None and live.owner == self.owner:
                return self._view(live)
        with self.workspace.read() as con:
            row = con.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ? AND owner = ?",
                              (job_id, self.owner)).fetchone()
        if row is None:
            raise WorkspaceError(f"no job {job_id!r} (finished jobs are kept only while there are fewer than "
                                 f"{self.keep_finished})")
        return _row_view(row)

    def find(self, key: RunKey, active_only: bool = True) -> JobView | None:
        """This owner's queued or running job for ``key`` (this process first, then any), or None.

        With ``active_only=False``: else the latest finished one (to show why it stopped or failed).
        """
        with self._s.lock:
            active = self._active_for(key)
            if active is not None:
                return self._view(active)
        self.recover()
        states = ACTIVE if active_only else ACTIVE + FINISHED
        with self.workspace.read() as con:
            row = con.execute(f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? AND kind = ? AND model_sha256 = ? AND "
                              f"dataset_fingerprint = ? AND settings = ? AND state IN ({', '.join('?' * len(states))}) "
                              "ORDER BY state IN ('queued', 'running') DESC, created_at DESC LIMIT 1",
                              (self.owner, *_key_args(key), *states)).fetchone()
        if row is None:
            return None
        with self._s.lock:
            live = self._s.live.get(row[0])
            return self._view(live) if live is not None else _row_view(row)

    def list_jobs(self, limit: int = 100) -> list[JobView]:
        """This owner's jobs in every process, newest first (this process's with their live progress)."""
        self.recover()
        with self.workspace.read() as con:
            rows = con.execute(f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? ORDER BY created_at DESC LIMIT ?",
                               (self.owner, limit)).fetchall()
        views = [_row_view(row) for row in rows]
        with self._s.lock:
            return [self._view(self._s.live[v.id]) if v.id in self._s.live else v for v in views]

    def result(self, job_id: str, with_blobs: bool = True) -> RunRecord | None:
        """The stored run of a done job (``cached`` as the job says), None while it is not done."""
        view = self.get(job_id)
        if view.state != DONE:
            return None
        if view.run_id is None:
            raise WorkspaceError(f"the result of job {view.label!r} was deleted")
        record = self.workspace.get_run(view.run_id, with_blobs)
        return dataclasses.replace(record, cached=view.cached)

    def wait(self, job_id: str, timeout: float | None = None) -> JobView:
        """Block until this owner's job of this process finishes (or ``timeout`` seconds pass); its view."""
        with self._s.lock:
            live = self._s.live.get(job_id)
        if live is not None and live.owner == self.owner:
            live.finished_event.wait(timeout)
        return self.get(job_id)

    # -- restart ---------------------------------------------------------------------------------

    def recover(self) -> int:
        """Mark ``interrupted`` the active jobs (of every owner) of processes that are gone (see the module's
        docstring)."""
        now = self._clock()
        with self.workspace.read() as con:
            rows = con.execute("SELECT id, process, state, heartbeat_at FROM jobs WHERE state IN ('queued', 'running') "
                               "AND process != ?", (self.process,)).fetchall()
        gone = [(job_id, state) for job_id, process, state, beat in rows
                if _process_gone(process) or beat < now - self.stale_after_s]
        if not gone:
            return 0
        with self.workspace.write() as con:
            for job_id, state in gone:
                when = "before it started" if state == QUEUED else "while it ran; its partial work is lost"
                con.execute("UPDATE jobs SET state = ?, message = ?, finished_at = ? WHERE id = ? AND state = ?",
                            (INTERRUPTED, f"interrupted: the server stopped {when}. Run it again", now, job_id, state))
        LOG.info("marked %d job(s) of stopped processes as interrupted", len(gone))
        return len(gone)

    def _start_heartbeat(self) -> None:
        """Under the lock: start the thread that marks this process's active jobs alive (once)."""
        if self._s.heart is None:
            self._s.heart = threading.Thread(target=self._beat, name="protoviz-jobs-heartbeat", daemon=True)
            self._s.heart.start()

    def _beat(self) -> None:
        while not self._s.closed.wait(self.heartbeat_s):
            with self._s.lock:
                active = any(j.state in ACTIVE for j in self._s.live.values())
            if not active:
                continue
            try:
                with self.workspace.write() as con:
                    con.execute("UPDATE jobs SET heartbeat_at = ? WHERE process = ? AND state IN ('queued', 'running')",
                                (self._clock(), self.process))
            except WorkspaceError:
                LOG.exception("could not mark the jobs of this process alive")

    # -- internals -------------------------------------------------------------------------------

    def _active_for(self, key: RunKey) -> _Live | None:
        return next((j for j in self._s.live.values()
                     if j.owner == self.owner and j.key == key and j.state in ACTIVE), None)

    def _start_ready(self) -> None:
        """Under the lock: start queued jobs, in order, while their device has a free slot."""
        for job_id in list(self._s.queue):
            live = self._s.live[job_id]
            if self._s.running.get(live.device, 0) >= self.per_device:
                continue
            self._s.queue.remove(job_id)
            self._s.running[live.device] = self._s.running.get(live.device, 0) + 1
            live.state, live.started_at = RUNNING, self._clock()
            thread = threading.Thread(target=self._run, args=(live, live.fn), name=f"protoviz-job-{job_id[:8]}",
                                      daemon=True)
            self._s.threads[job_id] = thread
            thread.start()

    def _run(self, live: _Live, fn: JobFn) -> None:
        self._write(live, "UPDATE jobs SET state = ?, started_at = ?, heartbeat_at = ? WHERE id = ?",
                    (RUNNING, live.started_at, live.started_at, live.id))
        state, message, record = FAILED, "", None
        try:
            live.token.check()
            result = fn(ProgressTracker(lambda reading: self._on_reading(live, reading), live.token))
            record = self.workspace.for_owner(live.owner).save_run(live.key, result, model_name=live.model_name,
                                             dataset_name=live.dataset_name, replace=live.replace)
            state = DONE
        except Cancelled:
            reading = live.reading
            where = f" at {reading.done}/{reading.total if reading.total is not None else '?'}" if reading else ""
            state, message = STOPPED, f"stopped on request{where}"
        except ProtovizError as error:
            message = str(error)
            LOG.info("job %s (%s) failed: %s", live.id, live.label, message)
        except BaseException as error:  # a job's bug must not kill the worker; the log has the traceback
            LOG.exception("job %s (%s) failed", live.id, live.label)
            message = (f"the job failed with an internal error ({type(error).__name__}); the server log has the "
                       "details")
            if not isinstance(error, Exception):
                raise
        finally:
            with self._s.lock:
                self._s.running[live.device] -= 1
                if record is not None:
                    live.run_id, live.cached = record.id, record.cached
                self._finish(live, state, message)
                self._s.threads.pop(live.id, None)
                self._start_ready()

    def _finish(self, live: _Live, state: str, message: str) -> None:
        """Under the lock: record a job's end in memory and in the workspace, then wake waiters."""
        live.state, live.message, live.finished_at, live.fn = state, message, self._clock(), None
        self._write(live, "UPDATE jobs SET state = ?, message = ?, run_id = ?, cached = ?, progress = ?, "
                    "finished_at = ? WHERE id = ?", (state, message, live.run_id, int(live.cached),
                                                     _reading_json(live.reading), live.finished_at, live.id))
        live.finished_event.set()

    def _on_reading(self, live: _Live, reading: ProgressReading) -> None:
        live.reading = reading
        now = time.monotonic()
        if now - live.saved_at >= self.save_every_s:
            live.saved_at = now
            self._write(live, "UPDATE jobs SET progress = ?, heartbeat_at = ? WHERE id = ?",
                        (_reading_json(reading), self._clock(), live.id))

    def _write(self, live: _Live, sql: str, args: tuple[Any, ...]) -> None:
        """Update a job's row; a failure is logged, not raised (the job's state in memory stays right)."""
        try:
            with self.workspace.write() as con:
                con.execute(sql, args)
        except WorkspaceError:
            LOG.exception("could not record the state of job %s in the workspace", live.id)

    def _insert_row(self, live: _Live) -> None:
        with self.workspace.write() as con:
            con.execute(f"INSERT INTO jobs ({_COLUMNS}, owner, heartbeat_at) VALUES ({', '.join('?' * 20)})",
                        (live.id, *_key_args(live.key), live.label, live.model_name, live.dataset_name, live.device,
                         live.state, live.message, _reading_json(live.reading), live.run_id, int(live.cached),
                         self.process, live.created_at, live.started_at, live.finished_at, live.owner,
                         live.created_at))

    def _locked_view(self, live: _Live) -> JobView:
        with self._s.lock:
            return self._view(live)

    def _view(self, live: _Live) -> JobView:
        position = self._s.queue.index(live.id) + 1 if live.id in self._s.queue else None
        return JobView(live.id, live.key, live.label, live.state, live.message, live.model_name, live.dataset_name,
                       live.device, live.run_id, live.cached, live.reading, position, live.created_at,
                       live.started_at, live.finished_at, True, live.token.cancelled and live.state == RUNNING)

    def _prune(self) -> None:
        """Forget the oldest finished jobs beyond ``keep_finished``: in memory (every owner's together, to
        bound the process) and in the workspace (this owner's, so that no owner's jobs push out another's)."""
        with self._s.lock:
            finished = [j for j in self._s.live.values() if j.state in FINISHED]
            for live in finished[:max(0, len(finished) - self.keep_finished)]:
                del self._s.live[live.id]
        try:
            with self.workspace.write() as con:
                con.execute("DELETE FROM jobs WHERE owner = ? AND state IN ('done', 'failed', 'stopped', 'interrupted') "
                            "AND id NOT IN (SELECT id FROM jobs WHERE owner = ? AND "
                            "state IN ('done', 'failed', 'stopped', 'interrupted') ORDER BY created_at DESC LIMIT ?)",
                            (self.owner, self.owner, self.keep_finished))
        except WorkspaceError:
            LOG.exception("could not prune old jobs")


_COLUMNS = ("id, kind, model_sha256, dataset_fingerprint, settings, label, model_name, dataset_name, device, state, "
            "message, progress, run_id, cached, process, created_at, started_at, finished_at")


def _key_args(key: RunKey) -> tuple[str, str, str, str]:
    return key.kind, key.model_sha256, key.dataset_fingerprint, key.settings


def _reading_json(reading: ProgressReading | None) -> str | None:
    return None if reading is None else json.dumps(dataclasses.asdict(reading))


def _row_view(row: tuple[Any, ...]) -> JobView:
    (job_id, kind, sha, fingerprint, settings, label, model_name, dataset_name, device, state, message, progress,
     run_id, cached, _process, created_at, started_at, finished_at) = row
    reading = ProgressReading(**json.loads(progress)) if progress else None
    return JobView(job_id, RunKey(kind, sha, fingerprint, settings), label, state, message, model_name, dataset_name,
                   device, run_id, bool(cached), reading, None, created_at, started_at, finished_at, False)


def _process_gone(process: str) -> bool:
    """True when ``process`` (host:pid:token) is a process of this machine that provably no longer runs."""
    parts = process.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid, token = int(parts[1]), parts[2]
    if pid == os.getpid():
        return token != PROCESS_TOKEN  # an earlier process with this pid (e.g. a restarted container)
    if os.name != "posix":
        return False  # no safe probe without signals: the heartbeat decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by someone else
    return False


def default_per_device(env: Mapping[str, str] | None = None) -> int:
    """``PROTOVIZ_JOBS_PER_DEVICE`` (default 1)."""
    text = (os.environ if env is None else env).get("PROTOVIZ_JOBS_PER_DEVICE", "").strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise WorkspaceError(f"PROTOVIZ_JOBS_PER_DEVICE must be a whole number >= 1, got {text!r}")
    return int(text)
