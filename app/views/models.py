"""Models page: the models the dashboard can use and what each one is; add one (upload or path)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.state import add_user_model, available_models, get_model, remove_user_model, session_uploads
from app.widgets import plain, server_path_input, show_error, shown_path
from protoviz.errors import ProtovizError
from protoviz.models.legacy import checkpoint_file
from protoviz.models.legacy.detect import FAMILIES

AUTO = "detect automatically"


def model_card(name: str) -> None:
    """One bordered card: summary table, provenance and training record of a model."""
    entry = available_models()[name]
    with st.container(border=True):
        st.subheader(name)
        st.caption(f"{entry.origin} model · `{shown_path(entry.path)}`")
        if entry.origin == "added" and st.button("Remove", key=f"models.remove.{name}", icon=":material/delete:",
                                                 help="Forget this model and delete its kept copy"):
            try:
                remove_user_model(name)
            except ProtovizError as error:
                show_error(error)
                return
            st.rerun()
        try:
            loaded = get_model(name)
        except ProtovizError as error:
            show_error(error)
            return
        rows = loaded.summary.as_rows()
        left, right = st.columns(2)
        left.dataframe({"property": [k for k, _ in rows], "value": [v for _, v in rows]}, hide_index=True)
        with right:
            st.markdown("**Classes:** " + ", ".join(plain(name) for name in loaded.model.class_names))
            known = sum(source is not None for source in loaded.model.prototype_sources)
            st.markdown(f"**Prototype sources known:** {known} of {loaded.model.num_prototypes}")
            st.markdown(f"**SHA-256:** `{(loaded.sha256 or '-')[:16]}…`")
            record = {k: v for k, v in loaded.model.metadata.items() if k != "checkpoint_sha256"}
            if record:
                with st.expander("How it was made"):
                    st.json(record)


def add_model_section() -> None:
    """Upload a checkpoint or point at a local file/folder, name it, and load it for every page."""
    st.header("Add a model")
    st.caption("A protoviz `.safetensors` file, or a checkpoint of the original ProtoPNet, TesNet, ST-ProtoPNet, "
               "ProtoPool, ProtoTree (`model.pth`, `tree.pkl` or the run folder) or PIP-Net code. Research files "
               "are read by a restricted loader that builds only tensors and known layer classes: nothing in a "
               "file can run.")
    upload = st.file_uploader("Upload a checkpoint", key="models.add.upload")
    local = server_path_input("…or a server path (file or run folder)", key="models.add.path")
    left, right = st.columns(2)
    name = left.text_input("Name", key="models.add.name", placeholder="defaults to the file name")
    family = right.selectbox("Family", [AUTO, *FAMILIES], key="models.add.family",
                             help="Only needed for ProtoPNet/TesNet state dicts, which look the same.")
    if not st.button("Add model", key="models.add.submit", type="primary"):
        return
    uploads = session_uploads()
    path = None
    try:
        if upload is not None:
            path = uploads.save(upload.name, upload.getvalue())
        elif local:
            path = checkpoint_file(Path(local))
        else:
            st.warning("Upload a file or give a path first.")
            return
        label = name.strip() or Path(upload.name if upload is not None else str(local)).stem
        with st.spinner(f"Loading {shown_path(path)}…"):
            entry = add_user_model(label, path, None if family == AUTO else family)
            loaded = get_model(entry.name)
    except ProtovizError as error:
        show_error(error)
        return
    finally:
        if path is not None:
            uploads.discard(path)  # rejected: nothing stays; added: the workspace keeps its own copy
    st.success(f"Added {entry.name!r}: a {loaded.summary.family} model. It is now available on every page.")
    rows = loaded.summary.as_rows()
    st.dataframe({"property": [k for k, _ in rows], "value": [v for _, v in rows]}, hide_index=True)


def main() -> None:
    st.title("Models")
    add_model_section()
    names = list(available_models())
    if not names:
        st.info("No models yet: add `.safetensors` checkpoints to assets/models (`make demo-models`).")
        return
    for name in names:
        model_card(name)


main()
