"""Results page: the runs kept in this visitor's workspace (re-open, export, delete) and its jobs.

Everything listed belongs to the session's owner (see :mod:`app.store`): other visitors' runs and jobs
are never listed, counted or opened here."""

from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from app.jobs import job_panel, progress_text
from app.store import job_manager, workspace
from app.widgets import plain, show_error
from protoviz.errors import ProtovizError
from protoviz.jobs import JobManager
from protoviz.payload import export_clean
from protoviz.workspace import MB, RunSummary, Workspace, run_csv, run_json

ALL = "all kinds"


def when(seconds: float | None) -> str:
    return "" if seconds is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def settings_line(summary: RunSummary, limit: int = 80) -> str:
    """The settings of a run in one short line, e.g. ``metrics=['accuracy'], seed=0``."""
    text = ", ".join(f"{k}={json.dumps(v)}" for k, v in summary.key.settings_dict.items())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def run_label(summary: RunSummary) -> str:
    """``#id · kind · model · dataset · time``, markdown-escaped (names are the user's)."""
    return plain(f"#{summary.id} · {summary.key.kind} · {summary.model_name or summary.key.model_sha256[:12]} · "
                 f"{summary.dataset_name or summary.key.dataset_fingerprint[:12]} · {when(summary.stored_at)}")


def jobs_section(manager: JobManager) -> None:
    st.header("Jobs")
    jobs = manager.list_jobs(limit=50)
    if not jobs:
        st.caption("No jobs yet. Long computations (Evaluate, Why over a dataset, Trust …) run as jobs: they go "
                   "on while you use other pages, and their results are kept here.")
        return
    for view in jobs:
        if not view.finished and view.local:
            job_panel(view.id, manager=manager)
    rows = [{"job": view.label, "kind": view.kind, "state": view.state,
             "progress": progress_text(view)[1],
             "message": view.message, "submitted": when(view.created_at), "finished": when(view.finished_at),
             "run": view.run_id} for view in jobs]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="results.jobs")


def runs_section(ws: Workspace) -> None:
    st.header("Kept runs")
    kinds = sorted({r.key.kind for r in ws.list_runs()})
    kind = st.selectbox("Kind", [ALL, *kinds], key="results.kind")
    runs = ws.list_runs(kind=None if kind == ALL else kind)
    if not runs:
        st.info("No results kept yet. Every evaluation, explanation and comparison you run is kept here, keyed by "
                "model, dataset and settings, so the same request is answered from the store.")
        return
    st.dataframe(pd.DataFrame([{"run": r.id, "kind": r.key.kind, "model": r.model_name or r.key.model_sha256[:12],
                                "dataset": r.dataset_name or r.key.dataset_fingerprint[:12],
                                "settings": settings_line(r), "stored": when(r.stored_at),
                                "size (kB)": round(r.size_bytes / 1024, 1)} for r in runs]),
                 hide_index=True, key="results.runs")
    by_id = {r.id: r for r in runs}
    chosen = st.selectbox("Open a run", list(by_id), format_func=lambda i: run_label(by_id[i]), key="results.open")
    if chosen is not None:
        run_view(ws, int(chosen))


def run_view(ws: Workspace, run_id: int) -> None:
    """One run: its key, scores and per-prototype tables, provenance; downloads; delete."""
    try:
        record = ws.get_run(run_id, with_blobs=False)
    except ProtovizError as error:
        show_error(error)
        return
    with st.container(border=True):
        st.subheader(run_label(record))
        st.markdown(f"**Model** {plain(record.model_name or '-')} · sha256 `{record.key.model_sha256[:16]}…`  \n"
                    f"**Dataset** {plain(record.dataset_name or '-')} · "
                    f"fingerprint `{record.key.dataset_fingerprint[:16]}…`")
        tables = record.payload.tables
        order = sorted(tables, key=lambda name: (name != "scores", name))
        for name in order:
            st.markdown(f"**{name}** ({len(tables[name])} rows)")
            st.dataframe(pd.DataFrame(tables[name]), hide_index=True, key=f"results.table.{run_id}.{name}")
        if not tables:
            st.caption("This run has no tables.")
        with st.expander("Settings"):
            st.json(record.key.settings_dict)
        with st.expander("How it was made (provenance)"):
            st.json(record.payload.provenance)
        if record.payload.data:
            with st.expander("Data"):
                st.json(export_clean(record.payload.data))
        stem = f"protoviz-run-{run_id}-{record.key.kind}"
        columns = st.columns(len(order) + 2)
        columns[0].download_button("JSON", run_json(record), f"{stem}.json", "application/json",
                                   key=f"results.json.{run_id}", icon=":material/download:")
        for column, name in zip(columns[1:], order):
            column.download_button(f"CSV: {name}", run_csv(record, name), f"{stem}-{name}.csv", "text/csv",
                                   key=f"results.csv.{run_id}.{name}", icon=":material/download:")
        if columns[-1].button("Delete", key=f"results.delete.{run_id}", icon=":material/delete:"):
            ws.delete_run(run_id)
            st.session_state.pop("results.open", None)
            st.rerun()


def main() -> None:
    st.title("Results")
    try:
        ws, manager = workspace(), job_manager()
        usage = ws.usage()
    except ProtovizError as error:
        show_error(error)
        return
    st.caption(f"Kept in your workspace: {usage.runs} run(s) and {usage.models} added model(s), "
               f"{usage.total_bytes / MB:.1f} MB. The server keeps at most "
               f"{ws.limits.max_total_bytes / MB:.0f} MB for all workspaces together (PROTOVIZ_WORKSPACE_MAX_MB).")
    try:
        jobs_section(manager)
        runs_section(ws)
    except ProtovizError as error:
        show_error(error)


main()
