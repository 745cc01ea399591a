"""The visitor's workspace and job manager: one store and one manager per process, seen per owner.

Whose: every session acts for one owner (:mod:`protoviz.owners`), taken from the page's address,
``?ws=<token>``. A visitor without a valid token gets a fresh one, written into the address, so a
refresh, a bookmark and a server restart (the browser keeps the address) all come back to the same
runs, kept models and jobs, and no other visitor sees them. The token is also kept in the session,
because Streamlit clears the address's parameters when the user switches pages; every run puts it back.
A malformed ``ws`` (wrong length or alphabet) is replaced by a fresh token, never an error.

``PROTOVIZ_SHARED_WORKSPACE=1`` (operator setting) makes every session use one shared owner, the
command line's (:func:`~protoviz.owners.default_owner`: ``local`` or ``$PROTOVIZ_OWNER``): for a
single-user install that wants its results in every tab without a token. Never set it on a server that
others can reach.

The workspace lives in ``PROTOVIZ_HOME`` (default ``~/.protoviz``); its size bounds come from
``PROTOVIZ_WORKSPACE_MAX_MB`` / ``PROTOVIZ_WORKSPACE_BLOB_MAX_MB`` and the jobs running at once per
device from ``PROTOVIZ_JOBS_PER_DEVICE`` (default 1). A workspace that cannot be used (damaged, newer,
unwritable) raises :class:`~protoviz.errors.WorkspaceError` from :func:`workspace`; pages show it.
"""

from __future__ import annotations

import os

import streamlit as st

from protoviz.errors import WorkspaceError
from protoviz.jobs import JobManager, default_per_device
from protoviz.owners import default_owner, is_token, new_token
from protoviz.workspace import Workspace, WorkspaceLimits, home_dir

OWNER_PARAM = "ws"
SHARED_ENV = "PROTOVIZ_SHARED_WORKSPACE"
_OWNER_KEY = "protoviz.workspace.owner"
_ON, _OFF = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


@st.cache_resource(show_spinner=False)
def _workspace(home: str, max_blob_bytes: int, max_model_bytes: int, max_total_bytes: int) -> Workspace:
    return Workspace(home, WorkspaceLimits(max_blob_bytes, max_model_bytes, max_total_bytes))


@st.cache_resource(show_spinner=False)
def _job_manager(home: str, per_device: int) -> JobManager:
    return JobManager(_process_workspace(), per_device)


def _process_workspace() -> Workspace:
    limits = WorkspaceLimits.from_env()
    return _workspace(str(home_dir()), limits.max_blob_bytes, limits.max_model_bytes, limits.max_total_bytes)


def shared_workspace() -> bool:
    """True when the operator set ``PROTOVIZ_SHARED_WORKSPACE`` on (1/true/yes/on; 0/false/no/off or unset: off)."""
    value = os.environ.get(SHARED_ENV, "").strip().lower()
    if value not in _ON | _OFF:
        raise WorkspaceError(f"{SHARED_ENV} must be 1 or 0 (or true/false, yes/no, on/off)")
    return value in _ON


def session_owner() -> str:
    """This session's owner: the shared one, or the address's ``ws`` token (a fresh one if missing or malformed).

    Also puts the token back into the address when a page switch removed it.
    """
    if shared_workspace():
        return default_owner()
    token = st.query_params.get(OWNER_PARAM)
    if is_token(token):
        st.session_state[_OWNER_KEY] = token
        return str(token)
    kept = st.session_state.get(_OWNER_KEY)
    owner = str(kept) if is_token(kept) else new_token()
    st.session_state[_OWNER_KEY] = owner
    st.query_params[OWNER_PARAM] = owner
    return owner


def new_private_workspace() -> str:
    """Switch this session to a fresh, empty workspace (the old one stays reachable by its address)."""
    owner = new_token()
    st.session_state[_OWNER_KEY] = owner
    st.query_params[OWNER_PARAM] = owner
    return owner


def workspace() -> Workspace:
    """The workspace of ``PROTOVIZ_HOME``, acting for this session's owner (:func:`session_owner`)."""
    owner = session_owner()  # first: the address gets its token even while the workspace is unusable
    return _process_workspace().for_owner(owner)


def job_manager() -> JobManager:
    """The job manager of this process, acting for this session's owner."""
    owner = session_owner()
    return _job_manager(str(home_dir()), default_per_device()).for_owner(owner)


def workspace_sidebar() -> None:
    """A discreet note in the sidebar: whose workspace this is, and a button for a new private one."""
    try:
        shared = shared_workspace()
        owner = session_owner()
    except WorkspaceError as error:
        st.warning(str(error), icon=":material/warning:")
        return
    if shared:
        st.caption(":material/group: Shared workspace: every visitor of this server sees the same results and "
                   f"added models ({SHARED_ENV} is on).")
        return
    link = f"{st.context.url or ''}?{OWNER_PARAM}={owner}"
    with st.popover("Your workspace", icon=":material/key:", width="stretch"):
        st.caption("This link is your workspace: keep it to come back; anyone with it sees your results.")
        st.code(link, language=None)
        if st.button("New private workspace", key="workspace.new", icon=":material/add_circle:",
                     help="Start an empty workspace with a new link; this one stays reachable by its link"):
            new_private_workspace()
            st.rerun()
