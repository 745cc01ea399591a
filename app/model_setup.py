"""Models page, set-up tabs of a kept model: its class names and its load hints (applied on every load).

Class names come from CUB's ``classes.txt`` or an ImageFolder's class folders (a server path), a text
file (upload), or a table edited on the page; their number must equal the model's classes. Load hints
are what a research file cannot tell (:mod:`protoviz.models.hints`): only those that apply to the model's
family and file are offered. Every change is checked by loading the model with it before it is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from app.cache import LoadedModel
from app.state import kept_model, session_uploads, update_user_model
from app.widgets import plain, server_path_input, show_error
from protoviz.data.classnames import check_class_names, read_class_names
from protoviz.errors import ProtovizError
from protoviz.models.checkpoint import is_safetensors
from protoviz.models.hints import ACTIVATIONS, BACKBONE_HINTS, SLOTS

DEFAULT = "as the file says"
SLOT_CHOICES = (DEFAULT, *SLOTS)
ACTIVATION_CHOICES = (DEFAULT, *ACTIVATIONS)
BACKBONE_CHOICES = (DEFAULT, *BACKBONE_HINTS)
FAMILY_CHOICES = (DEFAULT, "protopnet", "tesnet")
FROM_PATH, FROM_UPLOAD, FROM_TABLE = "classes.txt or class folders (server path)", "a text file (upload)", \
    "edit in a table"
PREVIEW = 6


def hint_reasons(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(setting, 'value: why') of every load hint the model records (``metadata["load_hints"]``)."""
    hints = metadata.get("load_hints") or {}
    return [(str(k), str(v)) for k, v in hints.items()] if isinstance(hints, Mapping) else []


# ----- class names ------------------------------------------------------------------------------
def class_names_section(name: str, loaded: LoadedModel) -> None:
    """Read, preview and keep class names for model ``name``."""
    count = loaded.model.num_classes
    stored = kept_model(name)
    own = stored is None or stored.class_names is None
    st.caption(f"The model has {count} classes; "
               + ("it uses the checkpoint's own names." if own else "it uses names set here."))
    how = st.radio("Class names from", (FROM_PATH, FROM_UPLOAD, FROM_TABLE), key=f"models.{name}.classes.from",
                   horizontal=True)
    readable = st.checkbox("Readable names (001.Black_footed_Albatross → Black footed Albatross)", value=True,
                           key=f"models.{name}.classes.readable")
    names: tuple[str, ...] | None = None
    try:
        if how == FROM_PATH:
            path = server_path_input("CUB classes.txt, a CUB folder, a names file or an ImageFolder",
                                     key=f"models.{name}.classes.path")
            names = read_class_names(path, count, readable) if path else None
        elif how == FROM_UPLOAD:
            names = _uploaded_names(name, count, readable)
        else:
            names = _table_names(name, loaded)
    except ProtovizError as error:
        show_error(error)
        names = None
    if names is not None:
        shown = ", ".join(plain(n) for n in names[:PREVIEW]) + (" …" if len(names) > PREVIEW else "")
        st.caption(f"{len(names)} names: {shown}")
        if st.button(f"Use these {len(names)} names", key=f"models.{name}.classes.save", type="primary"):
            _save(name, class_names=names)
    if not own and st.button("Back to the checkpoint's own names", key=f"models.{name}.classes.reset"):
        _save(name, class_names=None)


def _uploaded_names(name: str, count: int, readable: bool) -> tuple[str, ...] | None:
    upload = st.file_uploader("A text file: one name per line, or CUB's classes.txt", type=["txt", "csv", "names"],
                              key=f"models.{name}.classes.upload")
    if upload is None:
        return None
    uploads = session_uploads()
    path = uploads.save_stream(upload.name, upload, upload.size)
    try:
        return read_class_names(path, count, readable)
    finally:
        uploads.discard(path)


def _table_names(name: str, loaded: LoadedModel) -> tuple[str, ...] | None:
    table = pd.DataFrame({"class": range(loaded.model.num_classes), "name": list(loaded.model.class_names)})
    edited = st.data_editor(table, key=f"models.{name}.classes.table", hide_index=True, num_rows="fixed",
                            disabled=["class"], width="stretch", height=min(400, 38 + 35 * len(table)))
    names = [str(n) if n is not None else "" for n in edited["name"].tolist()]
    if tuple(names) == tuple(loaded.model.class_names):
        return None
    return check_class_names(names, loaded.model.num_classes, "the table")


# ----- load hints -------------------------------------------------------------------------------
def applicable_hints(loaded: LoadedModel) -> list[str]:
    """The hints that apply to this model's family and file (a native file records all but ``slots``)."""
    family = loaded.model.family
    research = not is_safetensors(loaded.path)
    found = []
    if research and family in ("protopnet", "tesnet"):
        found.append("family")
    if family == "protopool":
        found.append("slots")
    if research and family in ("protopnet", "protopool"):
        found.append("activation")
    if research and family == "pipnet" and str(loaded.model.backbone_name).startswith("convnext"):
        found.append("backbone")
    return found


def hints_section(name: str, loaded: LoadedModel) -> None:
    """Selectors for the hints that apply; Apply reloads the model with them and keeps them."""
    applicable = applicable_hints(loaded)
    stored = kept_model(name)
    if stored is None:
        return
    if not applicable:
        st.caption(f"Nothing to choose: this {loaded.model.family} file records how it computes.")
        return
    current = dict(stored.hints)
    choices = {}
    columns = st.columns(len(applicable))
    labels = {"family": ("Family (ProtoPNet and TesNet state dicts look the same)", FAMILY_CHOICES),
              "slots": ("ProtoPool slots: soft = softmax(proto_presence), hard = argmax (after push)", SLOT_CHOICES),
              "activation": ("Prototype activation (a state dict does not record it)", ACTIVATION_CHOICES),
              "backbone": ("PIP-Net ConvNeXt stride variant", BACKBONE_CHOICES)}
    for column, hint in zip(columns, applicable, strict=True):
        label, options = labels[hint]
        value = stored.family if hint == "family" else current.get(hint)
        choices[hint] = column.selectbox(label, options, index=options.index(value) if value in options else 0,
                                         key=f"models.{name}.hints.{hint}")
    if st.button("Apply and reload", key=f"models.{name}.hints.apply", type="primary"):
        family = choices.pop("family", DEFAULT)
        hints = {**{k: v for k, v in current.items() if k not in choices},
                 **{k: v for k, v in choices.items() if v != DEFAULT}}
        _save(name, hints=hints, family=None if family == DEFAULT else family)


def _save(name: str, **changes: Any) -> None:
    try:
        with st.spinner("Reloading the model with the new settings…"):
            update_user_model(name, **changes)
    except ProtovizError as error:
        show_error(error)
        return
    st.rerun()
