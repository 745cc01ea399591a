"""ProtoPNet's push folder, also written by TesNet and (once per prototype set) ST-ProtoPNet.

``push.push_prototypes(..., root_dir_for_saving_prototypes=img_dir, epoch_number=N,
proto_bound_boxes_filename_prefix='bb', prototype_self_act_filename_prefix='prototype-self-act')``
writes into ``img/epoch-N/`` (ST-ProtoPNet: ``imgsupport/epoch-N/`` and ``imgtrivial/epoch-N/``):

- ``bbN.npy`` (P, 6) int64: push-loader image index, y0, y1, x0, x1 of the high-activation box (input
  pixels, end-exclusive), class of the image; -1 rows for prototypes whose class had no image;
- ``bb-receptive_fieldN.npy``: the same with the receptive-field box of the chosen cell;
- ``prototype-self-actJ.npy`` (h, w) float32: prototype J's activation on its image (log similarity;
  TesNet / ST: minus the push distance, i.e. the projection or cosine), whose argmax is the chosen cell;
- PNG pictures (``prototype-imgJ.png`` ...; ST-ProtoPNet: ``Jprototype-img.png`` ...), not needed here.

The quirk: the push computes the boxes and the self-activation from the prototype *before* replacing it
by the chosen patch, so ``bbN.npy``'s box can differ from where the pushed prototype fires. The image,
cell and class are the pushed ones; the box is kept as ``push_box``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeModel
from protoviz.sources.describe import Pick
from protoviz.sources.folder import FolderImages
from protoviz.sources.npyfile import read_npy
from protoviz.sources.pushdir.common import MissingEpoch, PushFolder, checked_box, image_row, inside, numbered

ST_SETS = ("support", "trivial")


def read_epoch_layout(model: PrototypeModel, push_dir: Path, listing: FolderImages, epoch: int | None,
                      map_size: tuple[int, int]) -> PushFolder:
    """Read a ProtoPNet / TesNet / ST-ProtoPNet push folder (see the module docstring)."""
    if model.family == "stprotopnet":
        groups = model.prototype_groups()
        picks, folders, notes, used = [], [], [], None
        for name in ST_SETS:
            base = inside(push_dir, f"img{name}")
            if not base.is_dir():
                raise CheckpointError(f"{push_dir}: an ST-ProtoPNet push folder holds imgsupport/ and imgtrivial/ "
                                      f"(the model folder of its main.py); img{name}/ is missing")
            folder, used = epoch_folder(base, epoch if epoch is not None else used)
            start, stop = groups[name]
            found = _read_one(folder, used, listing, stop - start, start, model, map_size)
            picks += found.picks
            notes += found.notes
            folders.append(folder)
        return PushFolder("stprotopnet", folders, used, picks, notes)
    base = inside(push_dir, "img") if (push_dir / "img").is_dir() else push_dir
    folder, used = epoch_folder(base, epoch)
    return _read_one(folder, used, listing, model.num_prototypes, 0, model, map_size)


def epoch_folder(base: Path, epoch: int | None) -> tuple[Path, int | None]:
    """The folder holding ``bbN.npy``: ``base`` itself, or its ``epoch-N`` (``epoch``, else the latest)."""
    own = _bb_epochs(base)
    if own:
        if epoch is not None and epoch not in own:
            raise MissingEpoch(f"{base} holds bb files for epochs {sorted(own)}, not {epoch}")
        return base, epoch if epoch is not None else max(own)
    folders = numbered(base, r"epoch-(\d+)")
    pushed = {n: f for n, f in folders.items() if f.is_dir() and n in _bb_epochs(f)}
    if not pushed:
        raise CheckpointError(f"{base}: no bbN.npy here and no epoch-N folder holding one; give the push "
                              "folder the original wrote (img/, img/epoch-N/, or the ST-ProtoPNet model folder)")
    if epoch is None:
        epoch = max(pushed)
    if epoch not in pushed:
        raise MissingEpoch(f"{base} has push results for epochs {sorted(pushed)}, not {epoch}")
    return pushed[epoch], epoch


def _bb_epochs(folder: Path) -> set[int]:
    return set(numbered(folder, r"bb(\d+)\.npy"))


def _read_one(folder: Path, epoch: int | None, listing: FolderImages, count: int, offset: int,
              model: PrototypeModel, map_size: tuple[int, int]) -> PushFolder:
    boxes = _rows(inside(folder, f"bb{epoch}.npy"), count)
    rf_path = folder / f"bb-receptive_field{epoch}.npy"
    fields = _rows(inside(folder, rf_path.name), count) if rf_path.exists() else None
    acts = numbered(folder, r"prototype-self-act(\d+)\.npy")
    size = model.input_spec.image_size
    own_class = model.prototype_class_identity.argmax(dim=1).tolist()
    picks, notes = [], []
    foreign = 0
    for j in range(count):
        row = boxes[j]
        if row[0] < 0:
            continue
        what = f"{folder.name}/bb{epoch}.npy row {j}"
        index = image_row(listing, int(row[0]), what)
        if boxes.shape[1] == 6 and int(row[5]) != listing.labels[index]:
            raise CheckpointError(f"{what} says class {int(row[5])} but image {index} "
                                  f"({listing.relative[index]}) is in class folder {listing.labels[index]}: "
                                  "is --data the folder the push ran on?")
        foreign += listing.labels[index] != own_class[offset + j]
        rf_box = None
        if fields is not None and fields[j, 0] == row[0]:
            rf_box = checked_box(fields[j, 1:5], size, f"{folder.name}/{rf_path.name} row {j}")
        picks.append(Pick(prototype=offset + j, image_index=index,
                          location=_cell(acts.get(j), map_size),
                          push_box=checked_box(row[1:5], size, what), rf_box=rf_box, origin="push-folder"))
    if foreign:
        notes.append(f"{foreign} prototypes of {folder} were pushed onto images of another class "
                     "(a push without class constraints?)")
    missing = count - len(picks)
    if missing:
        notes.append(f"{missing} prototypes of {folder} have no push row (their class had no image)")
    return PushFolder(model.family, [folder], epoch, picks, notes)


def _rows(path: Path, count: int) -> np.ndarray:
    rows = read_npy(path, 2, "iu")
    if rows.shape[1] not in (5, 6):
        raise CheckpointError(f"{path}: expected 5 or 6 columns (index, y0, y1, x0, x1[, class]), "
                              f"found {rows.shape[1]}")
    if rows.shape[0] != count:
        raise CheckpointError(f"{path} has {rows.shape[0]} rows but the model has {count} prototypes here "
                              "(pruned after the push, or another model's folder?)")
    return rows.astype(np.int64)


def _cell(path: Path | None, map_size: tuple[int, int]) -> tuple[int, int] | None:
    """The argmax cell of a ``prototype-self-actJ.npy`` (first in row-major order), or None."""
    if path is None:
        return None
    act = read_npy(path, 2, "f")
    if act.shape != map_size:
        raise CheckpointError(f"{path}: activation map {act.shape} but the model's maps are {map_size} (did the push "
                              "run at another image size than the model's input? state dicts do not record it)")
    flat = int(np.argmax(act))
    return flat // map_size[1], flat % map_size[1]


EPOCH_IN_NAME = re.compile(r"^(\d+)(?:_\d+)?(?:no)?push")


def epoch_from_name(name: str) -> int | None:
    """The epoch in ProtoPNet's checkpoint names (``10push0.7822.pth``, ``10_3push0.78.pth``), or None."""
    match = EPOCH_IN_NAME.match(name)
    return int(match.group(1)) if match else None
