"""protoviz dashboard: the st.navigation router and the shared sidebar (no computation here).

Run with ``make run`` (or ``streamlit run app/streamlit_app.py``). Each page is a file of app/views/;
add a page with one line in ``PAGES``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts app/ first on sys.path, not the repository root
    sys.path.insert(0, str(ROOT))

import streamlit as st
import torch

import protoviz
from app.state import available_models, current_device
from app.store import workspace, workspace_sidebar
from protoviz.device import describe_device
from protoviz.errors import WorkspaceError

# One line per page; paths are relative to this file.
PAGES = [
    st.Page("views/explain.py", title="Explain", icon=":material/image_search:", url_path="explain", default=True),
    st.Page("views/why.py", title="Why", icon=":material/psychology_alt:", url_path="why"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/fact_check:", url_path="evaluate"),
    st.Page("views/trust.py", title="Trust", icon=":material/verified:", url_path="trust"),
    st.Page("views/prototypes.py", title="Prototypes", icon=":material/grid_view:", url_path="prototypes"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("views/models.py", title="Models", icon=":material/deployed_code:", url_path="models"),
    st.Page("views/results.py", title="Results", icon=":material/inventory_2:", url_path="results"),
]


def sidebar() -> None:
    """What every page shows on the side: version, device, number of models."""
    with st.sidebar:
        st.markdown("### protoviz")
        st.caption("Look inside part-prototype networks: *this looks like that*.")
        st.markdown(f"**Device:** `{describe_device(current_device())}`")
        st.caption(f"{len(available_models())} model(s) available · protoviz "
                   f"{getattr(protoviz, '__version__', '?')} · torch {torch.__version__}")
        try:
            workspace()
        except WorkspaceError as error:  # added models and kept results are unavailable until it is fixed
            st.warning(str(error), icon=":material/warning:")
            return
        workspace_sidebar()


def main() -> None:
    st.set_page_config(page_title="protoviz", page_icon=":material/image_search:", layout="wide")
    page = st.navigation(PAGES)
    sidebar()
    page.run()


main()
