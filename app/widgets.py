"""Reusable dashboard widgets: model and image pickers, error display, figure downloads.

Decoding goes through :func:`protoviz.data.images.load_image`, so a bad file becomes a clear
``st.error`` naming the file, never a traceback.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from app.state import available_models, model_dir, path_policy, sample_images, session_uploads, upload_root
from protoviz.data.images import load_image
from protoviz.errors import ImageError, PathNotAllowedError, ProtovizError
from protoviz.lru import ByteBoundedCache
from protoviz.paths import OFF_MESSAGE
from protoviz.viz.export import DEFAULT_DPI, DPI_RANGE, FIGURE_FORMATS, MIME_TYPES, AnyFigure, figure_file

LOG = logging.getLogger("protoviz.app")


@dataclass(frozen=True)
class NamedImage:
    """A decoded image (8-bit RGB, upright) with the name it is shown under and where it came from."""

    name: str
    image: Image.Image
    origin: str = "upload"  # 'upload' | 'sample'
    digest: str = ""  # SHA-256 prefix of the file's bytes, to key results

    @property
    def key(self) -> str:
        """Stable id of this image (name and content), for caching results."""
        return f"{self.name}:{self.digest}"


def show_error(error: BaseException) -> None:
    """Show an error on the page without a traceback (unexpected ones are logged with theirs).

    Server folders in the message are shortened to their names (allowed roots, the model folder, the
    upload folders), so pages show paths relative to what the visitor may see.
    """
    if isinstance(error, ProtovizError):
        st.error(_shorten_paths(str(error)), icon=":material/error:")
        return
    LOG.error("unexpected error on a dashboard page", exc_info=error)
    st.error(f"Something went wrong ({type(error).__name__}); the details are in the server's log.",
             icon=":material/error:")


def _shorten_paths(message: str) -> str:
    folders = {str(root): root.name for root in path_policy().roots}
    folders[str(upload_root())] = "uploads"
    folders[str(model_dir())] = model_dir().name
    for folder in sorted(folders, key=len, reverse=True):
        message = message.replace(folder + "/", folders[folder] + "/").replace(folder, folders[folder])
    return message


@overload
def model_picker(key: str, multi: Literal[False] = False, label: str | None = None) -> str | None: ...


@overload
def model_picker(key: str, multi: Literal[True], label: str | None = None) -> list[str]: ...


def model_picker(key: str, multi: bool = False, label: str | None = None) -> str | list[str] | None:
    """Choose model(s) by name. Returns a name (or ``None`` if there are none), or a list if ``multi``."""
    names = list(available_models())
    if not names:
        st.warning("No models found. Put `.safetensors` checkpoints in assets/models "
                   "(`make demo-models`) or add one on the Models page.", icon=":material/warning:")
        return [] if multi else None
    if multi:
        return st.multiselect(label or "Models", names, default=names[:1], key=key)
    return st.selectbox(label or "Model", names, key=key)


def decode_uploads(files: Sequence[tuple[str, bytes]]) -> tuple[list[NamedImage], list[ImageError]]:
    """(name, bytes) pairs -> the images that decode and the errors of those that do not."""
    images: list[NamedImage] = []
    errors: list[ImageError] = []
    for name, data in files:
        try:
            images.append(NamedImage(name, _decode(name, data), "upload", _digest(data)))
        except ImageError as error:
            errors.append(error)
    return images, errors


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@st.cache_resource(show_spinner=False)
def decoded_images() -> ByteBoundedCache[Image.Image]:
    """The process-wide cache of decoded images, bounded by their total pixel bytes
    (``PROTOVIZ_IMAGE_CACHE_MB``, default 512). Cached images are shared: treat them as read-only."""
    megabytes = float(os.environ.get("PROTOVIZ_IMAGE_CACHE_MB", "512"))
    return ByteBoundedCache(int(megabytes * 2**20), lambda image: image.width * image.height * len(image.getbands()))


def _decode(name: str, data: bytes) -> Image.Image:
    return decoded_images().get_or_make(hashlib.sha256(data).hexdigest(), lambda: load_image(data, name=name))


def image_picker(key: str, label: str = "Images") -> list[NamedImage]:
    """Upload images and/or pick bundled samples. Undecodable uploads are reported with st.error."""
    samples = sample_images()
    upload_column, sample_column = st.columns(2)
    with upload_column:
        uploads = st.file_uploader(f"{label}: upload", accept_multiple_files=True, key=f"{key}.upload",
                                   help="PNG, JPEG, WebP, TIFF, BMP or GIF; EXIF rotation is applied.")
    with sample_column:
        chosen = st.multiselect(f"{label}: bundled samples", [p.name for p in samples], key=f"{key}.samples",
                                placeholder="Choose samples" if samples else "No samples bundled")
    files = [(upload.name, upload.getvalue()) for upload in uploads or []]
    images, errors = decode_uploads(files)
    for error in errors:
        show_error(error)
    by_name = {p.name: p for p in samples}
    for name in chosen:
        images.extend(_sample(by_name[name]))
    return images


def _sample(path: Path) -> list[NamedImage]:
    try:
        data = path.read_bytes()
        return [NamedImage(path.name, _decode(path.name, data), "sample", _digest(data))]
    except (ImageError, OSError) as error:
        show_error(error if isinstance(error, ImageError) else ImageError(f"{path.name}: {error}"))
        return []


def server_path_input(label: str, key: str, placeholder: str = "") -> str | None:
    """A text box for a server folder or file, only when the operator allows typed paths.

    Returns the resolved path inside an allowed root, or None (box empty, refused, or paths off; the
    reason is shown). The refusal is the same whether or not the typed path exists.
    """
    policy = path_policy()
    if not policy.enabled:
        st.caption(OFF_MESSAGE)
        return None
    roots = ", ".join(f"{root.name}/" for root in policy.roots)
    typed = st.text_input(label, key=key, placeholder=placeholder or f"a path inside {roots}")
    if not typed.strip():
        return None
    try:
        return str(policy.resolve(typed))
    except PathNotAllowedError as error:
        show_error(error)
        return None


def shown_path(path: str | Path) -> str:
    """How a server path is shown on a page: relative to an allowed root, the model folder, or the
    session's uploads; otherwise only its name."""
    path = Path(path)
    uploads = session_uploads()
    if uploads.owns(path):
        return f"uploaded file {uploads.original_name(path)}"
    folder = model_dir()
    if path.parent == folder or path.parent.resolve() == folder.resolve():
        return f"{folder.name}/{path.name}"
    shown = path_policy().display(path)
    return re.sub(r"^[0-9a-f]{12}-", "", shown)  # a kept upload keeps its unique upload name


def plain(text: str) -> str:
    """``text`` (from a file: a class name, a file name) escaped for st.markdown: no links, images or HTML."""
    return re.sub(r"([\\`*_{}\[\]()<>#+!|~-])", r"\\\1", text)


# ----- figure downloads (PNG at a chosen DPI, SVG, PDF; HTML for interactive charts) ---------------------
def figure_downloads(figure: AnyFigure | Callable[[], AnyFigure], stem: str, key: str,
                     label: str = "Download figure", interactive: bool | None = None) -> None:
    """A 'Download figure' popover: format (PNG / SVG / PDF, and HTML that opens offline for plotly charts),
    DPI, and the download button. ``figure`` may be a callable, built only when the button is pressed."""
    html = interactive if interactive is not None else isinstance(figure, go.Figure)
    formats = [*FIGURE_FORMATS, *(["html"] if html else [])]
    with st.popover(label, icon=":material/download:", key=f"{key}.popover"):
        fmt = st.segmented_control("Format", formats, default="png", key=f"{key}.format",
                                   format_func=str.upper, required=True) or "png"
        dpi = st.number_input("DPI", DPI_RANGE[0], DPI_RANGE[1], DEFAULT_DPI, step=50, key=f"{key}.dpi",
                              help="PNG resolution; for SVG and PDF, the printed size of pictures")

        def make() -> bytes:
            return figure_file(figure() if callable(figure) else figure, str(fmt), int(dpi))

        st.download_button(f"{str(fmt).upper()} file", make, f"{stem}.{fmt}", MIME_TYPES[str(fmt)],
                           key=f"{key}.download", on_click="ignore", icon=":material/image:")
