"""The process's workspace and job manager: created once per process (``st.cache_resource``), passed on.

The workspace lives in ``PROTOVIZ_HOME`` (default ``~/.protoviz``); its size bounds come from
``PROTOVIZ_WORKSPACE_MAX_MB`` / ``PROTOVIZ_WORKSPACE_BLOB_MAX_MB`` and the jobs running at once per
device from ``PROTOVIZ_JOBS_PER_DEVICE`` (default 1). A workspace that cannot be used (damaged, newer,
unwritable) raises :class:`~protoviz.errors.WorkspaceError` from :func:`workspace`; pages show it.
"""

from __future__ import annotations

import streamlit as st

from protoviz.jobs import JobManager, default_per_device
from protoviz.workspace import Workspace, WorkspaceLimits, home_dir


@st.cache_resource(show_spinner=False)
def _workspace(home: str, max_blob_bytes: int, max_model_bytes: int, max_total_bytes: int) -> Workspace:
    return Workspace(home, WorkspaceLimits(max_blob_bytes, max_model_bytes, max_total_bytes))


@st.cache_resource(show_spinner=False)
def _job_manager(home: str, per_device: int) -> JobManager:
    return JobManager(workspace(), per_device)


def workspace() -> Workspace:
    """The workspace of ``PROTOVIZ_HOME``, shared by every session of this process."""
    limits = WorkspaceLimits.from_env()
    return _workspace(str(home_dir()), limits.max_blob_bytes, limits.max_model_bytes, limits.max_total_bytes)


def job_manager() -> JobManager:
    """The job manager of this process (on the workspace of ``PROTOVIZ_HOME``)."""
    return _job_manager(str(home_dir()), default_per_device())
