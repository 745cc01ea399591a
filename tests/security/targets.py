"""What a hostile input is fed to, in the child process: the same entry points the dashboard and the
command line use."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any


def load_checkpoint(path: str, family: str | None = None) -> str:
    from protoviz.models import load_model

    model = load_model(path, family=family)
    return f"{model.family}: {model.num_prototypes} prototypes, {model.num_classes} classes"


def decode_image(source: str | bytes) -> str:
    from protoviz.data.images import load_image

    image = load_image(source if isinstance(source, bytes) else Path(source), name="payload")
    return f"{image.mode} {image.size[0]}x{image.size[1]} first pixel {image.getpixel((0, 0))}"


def read_dataset(path: str, kind: str = "auto", split: str = "all", crop: bool = True, masks: bool = False) -> str:
    """Open a dataset and decode every image (and mask), as a dataset-wide pass would."""
    from protoviz.data.datasets import open_dataset

    dataset = open_dataset(path, kind=kind, split=split, crop_to_box=crop)
    for index in range(len(dataset)):
        dataset[index]
        if masks:
            dataset.load_mask(index)
    return f"{dataset.kind}: {len(dataset)} images"


def cli(*argv: str) -> tuple[int, str]:
    """`protoviz ARGS`: the exit status and what it wrote to stderr."""
    from protoviz.cli import main

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        status = main(list(argv))
    return status, errors.getvalue()


def call(function: Any, *args: Any) -> Any:
    return function(*args)
