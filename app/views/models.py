"""Models page: the models the dashboard can use and what each one is."""

from __future__ import annotations

import streamlit as st

from app.state import available_models, get_model
from app.widgets import show_error
from protoviz.errors import ProtovizError


def model_card(name: str) -> None:
    """One bordered card: summary table, provenance and training record of a model."""
    entry = available_models()[name]
    with st.container(border=True):
        st.subheader(name)
        st.caption(f"{entry.origin} model · `{entry.path}`")
        try:
            loaded = get_model(name)
        except ProtovizError as error:
            show_error(error)
            return
        rows = loaded.summary.as_rows()
        left, right = st.columns(2)
        left.dataframe({"property": [k for k, _ in rows], "value": [v for _, v in rows]}, hide_index=True)
        with right:
            st.markdown("**Classes:** " + ", ".join(loaded.model.class_names))
            known = sum(source is not None for source in loaded.model.prototype_sources)
            st.markdown(f"**Prototype sources known:** {known} of {loaded.model.num_prototypes}")
            st.markdown(f"**SHA-256:** `{(loaded.sha256 or '-')[:16]}…`")
            record = {k: v for k, v in loaded.model.metadata.items() if k != "checkpoint_sha256"}
            if record:
                with st.expander("How it was made"):
                    st.json(record)


def main() -> None:
    st.title("Models")
    names = list(available_models())
    if not names:
        st.info("No models yet: add `.safetensors` checkpoints to assets/models (`make demo-models`).")
        return
    for name in names:
        model_card(name)


main()
