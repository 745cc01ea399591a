"""Class names for a model: from CUB's ``classes.txt``, an ImageFolder's class folders, or a text file.

:func:`read_class_names` accepts
- a CUB ``classes.txt`` (``<id> <name>`` per line, ids 1..C in order), or a CUB folder holding one;
- a folder of class folders (an ImageFolder: the sorted folder names, as torchvision numbers classes);
- any other UTF-8 text file: one name per line, blank lines ignored.
CUB and folder names such as ``001.Black_footed_Albatross`` read as ``Black footed Albatross``
(``readable=False`` keeps them as written). :func:`with_class_names` gives a model new names and
:func:`set_class_names` rewrites a checkpoint with them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from protoviz.errors import ConfigError, DatasetError
from protoviz.models.base import PrototypeModel

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NAME_LENGTH = 200
MAX_CLASSES = 100_000
_CUB_LINE = re.compile(r"(\d+)\s+(\S.*)")
_NUMBER_PREFIX = re.compile(r"^\d+\.")


def readable(name: str) -> str:
    """``001.Black_footed_Albatross`` -> ``Black footed Albatross`` (other names unchanged but for ``_``)."""
    stripped = _NUMBER_PREFIX.sub("", name, count=1) or name
    return stripped.replace("_", " ").strip() or name


def read_class_names(path: str | Path, expected: int | None = None, readable_names: bool = True) -> tuple[str, ...]:
    """Class names from ``path`` (see the module docstring); ``expected`` checks their number."""
    source = Path(path)
    if source.is_dir():
        cub = next((c / "classes.txt" for c in (source, source / "CUB_200_2011") if (c / "classes.txt").is_file()), None)
        names, cleanable = _read_text(cub) if cub is not None else (_folder_names(source), True)
    elif source.is_file():
        names, cleanable = _read_text(source)
    else:
        raise DatasetError(f"{source}: no such file or folder (expected classes.txt, a names file or class folders)")
    if readable_names and cleanable:
        names = [readable(n) for n in names]
    return check_class_names(names, expected, str(source))


def check_class_names(names: Sequence[str], expected: int | None = None, where: str = "class names") -> tuple[str, ...]:
    """Validate names: count, non-empty, unique, no control characters, at most 200 characters each."""
    cleaned = tuple(str(n).strip() for n in names)
    if not cleaned:
        raise DatasetError(f"{where}: no class names")
    if len(cleaned) > MAX_CLASSES:
        raise DatasetError(f"{where}: {len(cleaned)} names, more than {MAX_CLASSES:,}")
    if expected is not None and len(cleaned) != expected:
        raise DatasetError(f"{where} gives {len(cleaned)} class names, but the model has {expected} classes")
    for i, name in enumerate(cleaned):
        if not name or len(name) > MAX_NAME_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise DatasetError(f"{where}: class name {i + 1} ({name[:40]!r}) must be 1-{MAX_NAME_LENGTH} "
                               "printable characters")
    seen: dict[str, int] = {}
    for i, name in enumerate(cleaned):
        if name in seen:
            raise DatasetError(f"{where}: class names {seen[name] + 1} and {i + 1} are both {name!r}")
        seen[name] = i
    return cleaned


def _read_text(path: Path) -> tuple[list[str], bool]:
    """Names of a text file and whether they are CUB-style (``<id> <name>``, ids 1..C)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: {size / 2**20:.1f} MB is too large for a list of class names")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from error
    lines = [line for line in lines if line]
    matches = [_CUB_LINE.fullmatch(line) for line in lines]
    if lines and all(matches) and [int(m.group(1)) for m in matches] == list(range(1, len(lines) + 1)):  # type: ignore[union-attr]
        return [m.group(2).strip() for m in matches], True  # type: ignore[union-attr]
    return lines, False


def _folder_names(root: Path) -> list[str]:
    """The class folders of an ImageFolder, sorted like torchvision."""
    names = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not names:
        raise DatasetError(f"{root}: no classes.txt and no class folders")
    return names


def with_class_names(model: PrototypeModel, names: Sequence[str]) -> PrototypeModel:
    """The same model with other class names (rebuilt from its config, weights, sources and metadata kept)."""
    checked = check_class_names(names, model.num_classes)
    config = dict(model.config_dict(), class_names=list(checked))
    try:
        renamed = type(model).from_config(config)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"cannot rename the classes of this {model.family} model: {error}") from error
    renamed.load_state_dict(model.state_dict())
    renamed.prototype_sources, renamed.metadata = model.prototype_sources, dict(model.metadata)
    return renamed.to(model.device).eval()


def set_class_names(checkpoint_in: str | Path, names: Sequence[str] | str | Path, out: str | Path) -> Path:
    """Write ``checkpoint_in`` (any supported checkpoint) to the native ``out`` with new class names.

    ``names`` is a sequence of names, or a path for :func:`read_class_names`.
    """
    from protoviz.models import load_model
    from protoviz.models.checkpoint import save_model

    model = load_model(checkpoint_in)
    if isinstance(names, (str, Path)):
        names = read_class_names(names, model.num_classes)
    renamed = with_class_names(model, names)
    return save_model(renamed, out, extra={"class_names_set_from": str(checkpoint_in)})


def is_placeholder(names: Sequence[str]) -> bool:
    """True for the ``class_0, class_1, ...`` names given to checkpoints that store none."""
    return tuple(names) == tuple(f"class_{i}" for i in range(len(names)))
