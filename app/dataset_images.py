"""Pick images from a dataset by class: the bundled synthetic set or a dataset folder on the server.

The folder is a typed server path (only inside ``PROTOVIZ_ALLOWED_ROOTS``): CUB-200-2011, Stanford
Cars/Dogs or an ImageFolder (:func:`protoviz.data.datasets.open_dataset`). Choose a split and a class,
then images of that class, shown a page at a time (thumbnails), so a class of thousands of images costs
one page of decoding. Images decode through the dataset (cropped to their box when asked), so the image
explained is the one an evaluation would see. Opened datasets are kept in the session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import streamlit as st
from PIL import Image

from app.state import session_results
from app.widgets import NamedImage, server_path_input, show_error, shown_path
from protoviz.data.datasets import ImageDataset, open_dataset
from protoviz.errors import DatasetError, ProtovizError

SYNTHETIC = "bundled synthetic set"
FOLDER = "a dataset folder on the server"
PAGE_SIZE = 12
MAX_CHOSEN = 8
THUMBNAIL = 96
MAX_KEPT_DATASETS = 4


def dataset_image_picker(key: str) -> list[NamedImage]:
    """Dataset, split and class, then up to :data:`MAX_CHOSEN` images of that class from one page."""
    source = st.radio("Dataset", [SYNTHETIC, FOLDER], key=f"{key}.source", horizontal=True, index=None,
                      help="The synthetic set (birds with 8 annotated parts, CUB layout) is generated once into "
                           "the cache folder. A folder: CUB-200-2011, Stanford Cars/Dogs or an ImageFolder.")
    folder = server_path_input("Dataset folder", key=f"{key}.folder", placeholder="CUB_200_2011") \
        if source == FOLDER else None
    if source is None or (source == FOLDER and not folder):
        return []
    left, right = st.columns(2)
    split = left.selectbox("Split", ["test", "train", "all"], key=f"{key}.split")
    crop = right.checkbox("Crop to bounding boxes", value=False, key=f"{key}.crop",
                          help="Where the dataset has boxes (CUB, Stanford Cars/Dogs)")
    try:
        dataset = opened(folder, split, crop)
    except ProtovizError as error:
        show_error(error)
        return []
    members = by_class(dataset)
    classes = [c for c in range(len(dataset.class_names)) if members[c]]
    chosen_class = st.selectbox("Class", classes, key=f"{key}.class",
                                format_func=lambda c: f"{c}: {dataset.class_names[c]} ({len(members[c])} images)")
    if chosen_class is None:
        return []
    indices = members[int(chosen_class)]
    pages = max(1, -(-len(indices) // PAGE_SIZE))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages}, {PAGE_SIZE} images each)", 1, pages, 1,
                                   key=f"{key}.page.{chosen_class}"))
    shown = indices[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    names = {index: dataset.records[index].path.name for index in shown}
    thumbnails(dataset, shown)
    picked = st.multiselect(f"Images (at most {MAX_CHOSEN})", shown, key=f"{key}.images.{chosen_class}.{page}",
                            format_func=lambda i: str(names.get(i, i)), max_selections=MAX_CHOSEN)
    return [image for index in picked if (image := named_image(dataset, int(index))) is not None]


def opened(folder: str | None, split: str, crop: bool) -> ImageDataset:
    """The dataset (the synthetic set generated once), kept in the session."""
    kept: dict[tuple[str | None, str, bool], ImageDataset] = session_results("dataset_images")
    key = (folder, split, crop)
    if key not in kept:
        with st.spinner("Opening the dataset…"):
            if folder is None:
                from protoviz.data.demo import synthetic_dataset

                path = synthetic_dataset()
            else:
                path = Path(folder)
            kept[key] = open_dataset(path, split=split, crop_to_box=crop)
        while len(kept) > MAX_KEPT_DATASETS:
            kept.pop(next(iter(kept)))
    return kept[key]


def by_class(dataset: ImageDataset) -> list[list[int]]:
    """Dataset positions of each class's images, in dataset order (computed once per dataset object)."""
    cache: dict[int, list[list[int]]] = session_results("dataset_images.classes")
    if id(dataset) not in cache:
        members: list[list[int]] = [[] for _ in dataset.class_names]
        for index, record in enumerate(dataset.records):
            members[record.label].append(index)
        cache.clear()  # one dataset at a time: the ids of datasets no longer kept may be reused
        cache[id(dataset)] = members
    return cache[id(dataset)]


def thumbnails(dataset: ImageDataset, indices: Sequence[int]) -> None:
    """One row of small pictures of this page's images, captioned with their ids."""
    if not indices:
        return
    with st.container(horizontal=True, gap="small"):
        for index in indices:
            picture = _thumbnail(dataset, index)
            if picture is not None:
                st.image(picture, width=THUMBNAIL, caption=dataset.records[index].path.name)


def named_image(dataset: ImageDataset, index: int) -> NamedImage | None:
    """The image as the dataset gives it (cropped if it crops), keyed by file, size, time and crop."""
    record = dataset.records[index]
    try:
        sample = dataset[index]
        info = record.path.stat()
    except (DatasetError, OSError) as error:
        show_error(error if isinstance(error, DatasetError) else DatasetError(f"{record.image_id}: {error}"))
        return None
    ident = f"{record.path}|{info.st_size}|{info.st_mtime_ns}|{dataset.crop_to_box}|{record.box}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return NamedImage(name=record.path.name, image=sample.image, origin=f"dataset {shown_path(dataset.root)}",
                      digest=digest)


def _thumbnail(dataset: ImageDataset, index: int) -> Image.Image | None:
    cache: dict[tuple[int, int], Image.Image] = session_results("dataset_images.thumbnails")
    key = (id(dataset), index)
    if key not in cache:
        try:
            picture = dataset[index].image.copy()
        except DatasetError:
            return None
        picture.thumbnail((THUMBNAIL, THUMBNAIL))
        cache[key] = picture
        while len(cache) > 4 * PAGE_SIZE:
            cache.pop(next(iter(cache)))
    return cache[key]
