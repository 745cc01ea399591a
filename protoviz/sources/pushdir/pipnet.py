"""PIP-Net's top-k patch table (``{log_dir}/train_{epoch}_pipnet_prototypes_cub_topk.csv``, ``eval_cub_csv.py``).

PIP-Net has no push. Its ``get_topk_cub`` (run by ``main.py`` on CUB-200-2011) writes, per relevant
prototype, its k most similar training images, best first: ``prototype, img name, h_min_224,
h_max_224, w_min_224, w_max_224`` with the image path as the training machine saw it and the patch
box of the image's best cell (``get_img_coordinates``). The first row of each prototype is its top
patch, the image ``protoviz project`` finds. Image paths are matched to ``--data`` by their trailing
folder/file names. Its pictures (``visualised_prototypes*/``) name no image and are not read.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath, PureWindowsPath

from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeModel
from protoviz.sources.describe import Pick
from protoviz.sources.folder import FolderImages
from protoviz.sources.pushdir.common import MissingEpoch, PushFolder, checked_box, inside, numbered

HEADER = ["prototype", "img name", "h_min_224", "h_max_224", "w_min_224", "w_max_224"]
MAX_CSV_BYTES = 256 * 1024 * 1024


def read_pipnet_table(model: PrototypeModel, push_dir: Path, listing: FolderImages, epoch: int | None,
                      map_size: tuple[int, int]) -> PushFolder:
    """Read PIP-Net's training-set top-k table (see the module docstring)."""
    path, used = _table(push_dir, epoch)
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise CheckpointError(f"{path}: {size / 2**20:.0f} MB is more than such a table can hold")
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (UnicodeDecodeError, csv.Error) as error:
        raise CheckpointError(f"{path}: not a readable CSV table ({error})") from error
    if not rows or rows[0] != HEADER:
        raise CheckpointError(f"{path}: expected the header {','.join(HEADER)}")
    by_suffix = _suffix_index(listing)
    first: dict[int, Pick] = {}
    unknown = 0
    image_size = model.input_spec.image_size
    for number, row in enumerate(rows[1:], start=2):
        what = f"{path.name} line {number}"
        if len(row) != len(HEADER):
            raise CheckpointError(f"{what}: expected {len(HEADER)} fields, got {len(row)}")
        try:
            prototype, box = int(row[0]), [int(v) for v in row[2:]]
        except ValueError as error:
            raise CheckpointError(f"{what}: {error}") from error
        if not 0 <= prototype < model.num_prototypes:
            raise CheckpointError(f"{what}: prototype {prototype}, but the model has {model.num_prototypes}")
        if prototype in first:
            continue
        index = _find(row[1], by_suffix)
        if index is None:
            unknown += 1
            continue
        first[prototype] = Pick(prototype=prototype, image_index=index,
                                rf_box=checked_box(box, image_size, what), origin="push-folder")
    notes = [f"PIP-Net has no push: the sources are each prototype's top patch in {path.name}"]
    if unknown:
        notes.append(f"{unknown} top images of the table are not in --data (matched by folder/file name)")
    return PushFolder("pipnet", [path.parent], used, [first[p] for p in sorted(first)], notes)


def _table(push_dir: Path, epoch: int | None) -> tuple[Path, int | None]:
    if push_dir.is_file():
        return push_dir, epoch
    tables = numbered(push_dir, r"train_(\d+)_pipnet_prototypes_cub_topk\.csv")
    if not tables:
        raise CheckpointError(f"{push_dir}: no train_N_pipnet_prototypes_cub_topk.csv (PIP-Net writes it for "
                              "CUB-200-2011 runs only); use `protoviz project` to find the top patches instead")
    used = epoch if epoch is not None else max(tables)
    if used not in tables:
        raise MissingEpoch(f"{push_dir} has top-k tables for epochs {sorted(tables)}, not {used}")
    return inside(push_dir, tables[used].name), used


def _suffix_index(listing: FolderImages) -> dict[tuple[str, ...], int]:
    """Listing positions by (class folder, ..., file name) path parts; ambiguous suffixes are left out."""
    index: dict[tuple[str, ...], int] = {}
    for position, relative in enumerate(listing.relative):
        index.setdefault(tuple(PurePosixPath(relative).parts), position)
    return index


def _find(name: str, by_suffix: dict[tuple[str, ...], int]) -> int | None:
    parts = PureWindowsPath(name).parts if "\\" in name else PurePosixPath(name).parts
    for length in range(min(len(parts), 8), 1, -1):
        found = by_suffix.get(tuple(parts[-length:]))
        if found is not None:
            return found
    return None
