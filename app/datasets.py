"""The datasets the Evaluate and Why pages run over: opened on a data path, with their identity.

A page names a dataset by (folder or None for the bundled synthetic set, split, crop to boxes, data
path). :func:`page_dataset` opens it (generating the synthetic set once into the cache folder), wraps it
for the published data path, and computes its fingerprint, the part of every run key that says which
images were used. Opened datasets are kept for the process for :data:`KEEP_S` seconds (a fingerprint
reads every file's size and time, so a changed dataset is noticed within that time), shared by sessions:
a folder reaches this function only after the page checked it against the allowed roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from protoviz.data.datasets import ImageDataset, open_dataset
from protoviz.data.published import dataset_for_path
from protoviz.provenance import DatasetIdentity, dataset_identity

KEEP_S = 120
SYNTHETIC_NAME = "synthetic set"
PATH_NAMES = {"published": "as published", "clean": "clean"}


@dataclass(frozen=True)
class PageDataset:
    """An opened dataset on one data path, its identity (fingerprint, split) and the name runs are kept under."""

    dataset: ImageDataset
    identity: DatasetIdentity
    name: str
    path: str


def page_dataset(folder: str | None, split: str, crop: bool, path: str = "clean") -> PageDataset:
    """The dataset at ``folder`` (None: the synthetic set) on data path ``path`` ('clean' or 'published')."""
    with st.spinner("Opening the dataset (the synthetic set is generated once) ..."):
        return _opened(folder, split, crop, path)


@st.cache_resource(max_entries=16, ttl=KEEP_S, show_spinner=False)
def _opened(folder: str | None, split: str, crop: bool, path: str) -> PageDataset:
    if folder is None:
        from protoviz.data.demo import synthetic_dataset

        root = synthetic_dataset()
    else:
        root = Path(folder)
    dataset = dataset_for_path(open_dataset(root, split=split, crop_to_box=crop), path)
    where = SYNTHETIC_NAME if folder is None else root.name
    cropped = crop and any(record.box is not None for record in dataset.records[:1])
    name = f"{where} · {split}{' · cropped to boxes' if cropped else ''} · {PATH_NAMES[path]}"
    return PageDataset(dataset, dataset_identity(dataset), name, path)
