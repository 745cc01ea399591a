"""Long computations as background jobs on a page: progress with time left, a Stop button, the stored result.

Wire a page in one call::

    key = RunKey.make("evaluate", model_sha256, dataset_fingerprint, settings)
    record = job_result(key, lambda progress: evaluate(model, data, config, progress=progress),
                        start=st.button("Evaluate"), label="Evaluate tiny on CUB test", model_name=name)
    if record is not None:
        show(decode(record.payload))   # record.cached says whether it came from the store

``fn(progress)`` returns a :class:`~protoviz.payload.Payload`, a dict, or a typed result with
``to_payload()``. It runs on a worker thread of the server process, so it goes on while the user is on
another page, and after a refresh the same inputs find the running job (its progress) or the stored
result. Jobs and results belong to the session's owner (:func:`app.store.session_owner`): another
visitor with the same inputs computes its own. That thread has no Streamlit context: read every widget and session value before submitting
and close over them; never call ``st.*`` inside ``fn``; hold a shared model's lock only per batch.
"""

from __future__ import annotations

import time

import streamlit as st

from app.state import current_device
from app.store import job_manager, workspace
from app.widgets import plain, show_error
from protoviz.errors import ProtovizError
from protoviz.jobs import DONE, INTERRUPTED, QUEUED, STOPPED, JobFn, JobManager, JobView
from protoviz.workspace import RunKey, RunRecord

_MINE = "protoviz.jobs.submitted"  # ids of the jobs this session submitted (their result is "computed", not "stored")
RESULTS_PAGE = "views/results.py"
RESULTS_OPEN_KEY = "results.open"  # the Results page's "Open a run" selector


def job_result(key: RunKey, fn: JobFn, *, start: bool, label: str = "", model_name: str = "",
               dataset_name: str = "", rerun: bool = False, device: str | None = None,
               manager: JobManager | None = None, poll_s: float = 1.0, unit: str = "images",
               with_blobs: bool = True) -> RunRecord | None:
    """The result of ``key`` on this page, or None while there is none.

    A stored result is returned at once (with a "from the store" note). A job running for ``key`` shows
    its progress panel. Otherwise, when ``start`` (e.g. a button was clicked) a job is submitted and its
    panel shown; when not, the last attempt's failure or stop message, if any, is shown.
    ``rerun`` computes again even if stored. ``device`` defaults to the dashboard's device.
    ``with_blobs=False`` returns the record without its blobs (a page that caches the decoded result by
    run id reads them once, not on every rerun).
    """
    try:
        manager = manager or job_manager()
        mine: set[str] = st.session_state.setdefault(_MINE, set())
        if start:
            job = manager.submit(key, fn, label=label, model_name=model_name, dataset_name=dataset_name,
                                 device=device or str(current_device()), rerun=rerun)
            mine.add(job.id)
            return job_panel(job.id, manager=manager, poll_s=poll_s, unit=unit, with_blobs=with_blobs)
        latest = manager.find(key, active_only=False)
        if latest is not None and (not latest.finished or latest.id in mine):
            return job_panel(latest.id, manager=manager, poll_s=poll_s, unit=unit, with_blobs=with_blobs)
        stored = manager.workspace.find_run(key, with_blobs=with_blobs)
        if stored is not None:
            stored_note(stored)
            return stored
        if latest is not None and latest.state != DONE:
            _show_end(latest)
    except ProtovizError as error:
        show_error(error)
    return None


def job_panel(job_id: str, *, manager: JobManager | None = None, poll_s: float = 1.0,
              unit: str = "images", with_blobs: bool = True) -> RunRecord | None:
    """Show job ``job_id``: a live progress bar (rate, time left) and a Stop button while it is queued or
    running; its message if it failed or stopped. Returns its stored run once it is done, else None."""
    try:
        manager = manager or job_manager()
        view = manager.get(job_id)
        if view.state == DONE:
            record = manager.result(job_id, with_blobs)
            if record is not None:
                stored_note(record)
            return record
        if view.finished:
            _show_end(view)
            return None
    except ProtovizError as error:
        show_error(error)
        return None
    _live_panel(manager, job_id, poll_s, unit)
    return None


def stored_note(record: RunRecord) -> None:
    """One line saying where a result comes from."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.stored_at))
    if record.cached:
        st.caption(f":material/inventory_2: From the store: computed {when}, run #{record.id} (see Results).")
    else:
        st.caption(f":material/check_circle: Computed and kept {when} as run #{record.id}.")


def progress_text(view: JobView, unit: str = "images") -> tuple[float, str]:
    """(fraction for ``st.progress``, the line under it) of a job; a finished one says where it got to."""
    reading = view.progress
    if view.finished:
        if reading is None:
            return 0.0, ""
        count = f"{reading.done}/{reading.total}" if reading.total is not None else f"{reading.done}"
        return reading.fraction or 0.0, f"{reading.stage + ': ' if reading.stage else ''}{count} {unit}"
    label = plain(view.label)  # the text is markdown; a label carries model and dataset names
    if view.state == QUEUED:
        return 0.0, f"{label}: waiting for a free slot ({view.position or '?'} in line)"
    text = f"{label}: starting…" if reading is None else f"{label} — {reading.describe(unit)}"
    if view.stop_requested:
        text += " · stopping at the next step…"
    return (reading.fraction or 0.0) if reading is not None else 0.0, text


def _live_panel(manager: JobManager, job_id: str, poll_s: float, unit: str) -> None:
    @st.fragment(run_every=poll_s)
    def panel() -> None:
        try:
            view = manager.get(job_id)
        except ProtovizError as error:
            show_error(error)
            return
        if view.finished:
            st.rerun()  # the whole page, so that its caller receives the result
        fraction, text = progress_text(view, unit)
        st.progress(fraction, text=text)
        if not view.local:
            st.caption("This job runs in another server process; it can be stopped there.")
        else:  # the callback runs before the rerun it causes, so this rerun already shows "stopping"
            st.button("Stop", key=f"jobs.stop.{job_id}", icon=":material/stop_circle:", disabled=view.stop_requested,
                      on_click=stop)

    def stop() -> None:
        manager.stop(job_id)

    panel()


def _show_end(view: JobView) -> None:
    if view.state in (STOPPED, INTERRUPTED):
        st.warning(f"{plain(view.label)}: {plain(view.message)}", icon=":material/stop_circle:")
    else:
        st.error(f"{plain(view.label)} failed: {plain(view.message)}", icon=":material/error:")


def earlier_runs(kind: str, limit: int = 5) -> None:
    """Under a page's empty state: this visitor's latest kept runs of ``kind`` (made with other settings
    than the page shows now, e.g. before a refresh reset the widgets), each with a button that opens it on
    the Results page. Nothing when there are none."""
    try:
        runs = workspace().list_runs(kind=kind, limit=limit)
    except ProtovizError:
        return
    if not runs:
        return
    st.caption("Your latest kept runs of this page (with other settings than the ones above):")
    for run in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.stored_at))
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.markdown(f"#{run.id} · {plain(run.model_name or run.key.model_sha256[:12])} · "
                      f"{plain(run.dataset_name or run.key.dataset_fingerprint[:12])} · {when}")
        if button.button("Open", key=f"earlier.{kind}.{run.id}", icon=":material/open_in_new:"):
            st.session_state[RESULTS_OPEN_KEY] = run.id
            st.switch_page(RESULTS_PAGE)
