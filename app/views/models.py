"""Models page: the models the dashboard can use and what each one is; add one (upload or path) and set it up.

An added model is kept in the workspace with what the user chose for it here, applied on every load:
load hints (``app/model_setup.py``), class names, and prototype sources found by re-projection or read
from an original push folder (``app/model_sources.py``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.model_setup import (
    ACTIVATION_CHOICES,
    BACKBONE_CHOICES,
    DEFAULT,
    SLOT_CHOICES,
    class_names_section,
    hint_reasons,
    hints_section,
)
from app.model_sources import sources_section
from app.state import (
    add_user_model,
    available_models,
    get_model,
    path_policy,
    remove_user_model,
    session_uploads,
    upload_limits,
)
from app.widgets import plain, server_path_input, show_error, shown_path
from protoviz.errors import ProtovizError
from protoviz.models.legacy import checkpoint_file
from protoviz.models.legacy.detect import FAMILIES

AUTO = "detect automatically"
SHOWN_CLASSES = 12
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".tar", ".pkl", ".ckpt")
MAX_LISTED = 500
_UPLOAD_ROUND = "models.add.upload.round"  # bumped after an add, so the uploader drops the file from memory
_ADDED = "models.add.message"


def model_card(name: str) -> None:
    """One bordered card: summary table, classes, sources, load hints and how the model was made; for an
    added model also Remove and the set-up tabs."""
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
        model = loaded.model
        rows = loaded.summary.as_rows()
        left, right = st.columns(2)
        left.dataframe({"property": [k for k, _ in rows], "value": [v for _, v in rows]}, hide_index=True)
        with right:
            names = model.class_names
            more = f" … and {len(names) - SHOWN_CLASSES} more" if len(names) > SHOWN_CLASSES else ""
            st.markdown(f"**Classes ({len(names)}):** " + ", ".join(plain(n) for n in names[:SHOWN_CLASSES]) + more)
            known = sum(source is not None for source in model.prototype_sources)
            found = model.metadata.get("prototype_sources_from") or {}
            how = f" ({found.get('method')}, {plain(str(found.get('data', '')))})" if found.get("method") else ""
            st.markdown(f"**Prototype sources known:** {known} of {model.num_prototypes}{how}")
            if model.metadata.get("kept_sources_missing"):
                st.warning(str(model.metadata["kept_sources_missing"]), icon=":material/warning:")
            reasons = hint_reasons(model.metadata)
            if reasons:
                st.markdown("**Load hints:**  \n" + "  \n".join(f"- *{plain(k)}*: {plain(v)}" for k, v in reasons))
            st.markdown(f"**SHA-256:** `{(loaded.file_sha256 or '-')[:16]}…`"
                        + (f" · results keyed as `{(loaded.sha256 or '-')[:12]}…` (file + settings)"
                           if loaded.sha256 != loaded.file_sha256 else ""))
            record = {k: v for k, v in model.metadata.items()
                      if k not in ("checkpoint_sha256", "file_sha256", "load_hints", "kept_sources_missing")}
            if record:
                with st.expander("How it was made"):
                    st.json(record)
        if entry.origin == "added":
            with st.expander("Set up this model: class names, load hints, prototype sources",
                             icon=":material/tune:"):
                names_tab, hints_tab, sources_tab = st.tabs(["Class names", "Load hints", "Prototype sources"])
                with names_tab:
                    class_names_section(name, loaded)
                with hints_tab:
                    hints_section(name, loaded)
                with sources_tab:
                    sources_section(name, loaded)


def add_model_section() -> None:
    """Upload a checkpoint or point at a local file/folder, name it, and load it for every page."""
    st.header("Add a model")
    limit_mb = upload_limits().max_file_bytes / 2**20
    st.caption("A protoviz `.safetensors` file, or a checkpoint of the original ProtoPNet, TesNet, ST-ProtoPNet, "
               "ProtoPool, ProtoTree (`model.pth`, `tree.pkl` or the run folder) or PIP-Net code. Research files "
               "are read by a restricted loader that builds only tensors and known layer classes: nothing in a "
               f"file can run. Uploads up to {limit_mb:,.0f} MB; larger checkpoints can be added from a model "
               "folder on the server.")
    if _ADDED in st.session_state:
        st.success(st.session_state.pop(_ADDED))
    round_ = int(st.session_state.get(_UPLOAD_ROUND, 0))
    upload = st.file_uploader("Upload a checkpoint", key="models.add.upload" + (f".{round_}" if round_ else ""))
    local = server_path_input("…or a server path (file, run folder or model folder)", key="models.add.path")
    local = choose_in_folder(local)
    left, right = st.columns(2)
    name = left.text_input("Name", key="models.add.name", placeholder="defaults to the file name")
    family = right.selectbox("Family", [AUTO, *FAMILIES], key="models.add.family",
                             help="Only needed for ProtoPNet/TesNet state dicts, which look the same.")
    with st.expander("Load hints (what a research file cannot tell; can be changed later)"):
        columns = st.columns(3)
        slots = columns[0].selectbox("ProtoPool slots", SLOT_CHOICES, key="models.add.slots")
        activation = columns[1].selectbox("Prototype activation", ACTIVATION_CHOICES, key="models.add.activation")
        backbone = columns[2].selectbox("PIP-Net ConvNeXt", BACKBONE_CHOICES, key="models.add.backbone")
    if not st.button("Add model", key="models.add.submit", type="primary"):
        return
    hints = {k: v for k, v in (("slots", slots), ("activation", activation), ("backbone", backbone)) if v != DEFAULT}
    uploads = session_uploads()
    path = None
    try:
        if upload is not None:
            path = uploads.save_stream(upload.name, upload, upload.size)
        elif local:
            path = checkpoint_file(Path(local))
            path_policy().resolve(str(path))  # a run folder's file may be a link leading out of the roots
        else:
            st.warning("Upload a file or give a path first.")
            return
        label = name.strip() or Path(upload.name if upload is not None else str(local)).stem
        with st.spinner(f"Loading {shown_path(path)}…"):
            entry = add_user_model(label, path, None if family == AUTO else family, hints)
            loaded = get_model(entry.name)
    except ProtovizError as error:
        show_error(error)
        return
    finally:
        if path is not None:
            uploads.discard(path)  # rejected: nothing stays; added: the workspace keeps its own copy
    message = f"Added {entry.name!r}: a {loaded.summary.family} model. It is now available on every page."
    if upload is None:
        st.success(message)
        return
    # a fresh, empty uploader on the next run, so Streamlit frees the uploaded bytes it holds in memory
    st.session_state[_UPLOAD_ROUND] = round_ + 1
    st.session_state[_ADDED] = message
    st.rerun()


def choose_in_folder(local: str | None) -> str | None:
    """A typed model folder holding several checkpoint files (not a run folder): pick one of them."""
    if not local or not Path(local).is_dir():
        return local
    try:
        checkpoint_file(Path(local))
        return local  # a run folder, or a folder with one checkpoint
    except ProtovizError:
        pass
    files = [path for path in sorted(Path(local).iterdir())[:MAX_LISTED * 4]
             if path.suffix in CHECKPOINT_SUFFIXES and path.is_file() and inside_roots(path)]
    if not files:
        st.caption("No checkpoint files (" + ", ".join(CHECKPOINT_SUFFIXES) + ") in this folder.")
        return None
    chosen = st.selectbox("Checkpoint in this folder", files[:MAX_LISTED], key="models.add.folder_file",
                          format_func=lambda p: f"{p.name} ({p.stat().st_size / 2**20:,.1f} MB)")
    return str(chosen) if chosen is not None else None


def inside_roots(path: Path) -> bool:
    """Whether ``path`` (links followed) stays inside the allowed roots."""
    try:
        path_policy().resolve(str(path))
    except ProtovizError:
        return False
    return True


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
