"""ProtoPool's push folder (``{results}/img_proto/{info}/``, written by ``main.py``'s push step).

ProtoPool's ``update_prototypes_on_batch`` fills the bounding-box arrays but never saves them: the
folder holds, per prototype J, ``prototype-self-actJ.npy`` (its log activation on the chosen image,
computed before the push) and PNGs, among them ``prototype-img-originalJ.png``: the chosen image as
the push loader gave it (resized and *normalised*), min-max rescaled to [0, 1] and saved by
``plt.imsave`` (RGBA, 8 bits). So the source image is found by rendering each eligible image of
``--data`` the same way and comparing pixels (mean absolute difference under 1/255 after 8-bit
truncation); the cell is the argmax of the self-activation, and the push's box is recomputed exactly
as the push computes it: ``find_high_activation_crop(cv2.resize(act, INTER_CUBIC))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protoviz.data.images import load_image
from protoviz.data.transforms import normalize, to_unit_tensor
from protoviz.errors import CheckpointError, ImageError
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeModel
from protoviz.sources.criteria import push_rule
from protoviz.sources.describe import Pick
from protoviz.sources.folder import FolderImages
from protoviz.sources.npyfile import read_npy
from protoviz.sources.pushdir.common import PushFolder, match_images, numbered

TOLERANCE = 1.5 / 255


def read_protopool_folder(model: PrototypeModel, push_dir: Path, listing: FolderImages, epoch: int | None,
                          map_size: tuple[int, int]) -> PushFolder:
    """Read ProtoPool's push pictures (see the module docstring)."""
    acts = numbered(push_dir, r"prototype-self-act(\d+)\.npy")
    originals = numbered(push_dir, r"prototype-img-original(\d+)\.png")
    if not acts or not originals:
        raise CheckpointError(f"{push_dir}: no prototype-self-actJ.npy / prototype-img-originalJ.png files "
                              "(ProtoPool's img_proto/<run>/ folder)")
    count = model.num_prototypes
    extra = sorted(j for j in set(acts) | set(originals) if j >= count)
    if extra:
        raise CheckpointError(f"{push_dir} has pictures of prototype {extra[0]} but the model has {count} prototypes")
    wanted = sorted(set(acts) & set(originals))
    size = model.input_spec.image_size
    targets = [_picture(originals[j], size) for j in wanted]
    eligible = push_rule(model).eligible(model).cpu()
    candidates = [set(torch.nonzero(eligible[j]).flatten().tolist()) for j in wanted]
    found = match_images(listing, targets, candidates, lambda p: _render(p, model), TOLERANCE)
    cells, boxes = _cells_and_boxes([acts[j] for j in wanted], map_size, size)
    picks, unmatched = [], []
    for k, j in enumerate(wanted):
        if found[k] is None:
            unmatched.append(j)
            continue
        picks.append(Pick(prototype=j, image_index=found[k][0], location=cells[k], push_box=boxes[k],  # type: ignore[index]
                          origin="push-folder"))
    notes = []
    if unmatched:
        notes.append(f"{len(unmatched)} prototype pictures match no image of --data of an eligible class "
                     f"(e.g. prototype {unmatched[0]}): is --data the push folder, unchanged?")
    if len(wanted) < count:
        notes.append(f"{count - len(wanted)} prototypes have no pictures in {push_dir}")
    return PushFolder("protopool", [push_dir], epoch, picks, notes)


def _picture(path: Path, size: tuple[int, int]) -> np.ndarray:
    try:
        picture = np.asarray(load_image(path), dtype=np.float32) / 255.0
    except ImageError as error:
        raise CheckpointError(f"{path}: {error}") from error
    if picture.shape[:2] != size:
        raise CheckpointError(f"{path}: {picture.shape[1]}x{picture.shape[0]} picture, expected the model input "
                              f"{size[1]}x{size[0]}")
    return picture


def _render(path: Path, model: PrototypeModel) -> np.ndarray:
    """An image as ProtoPool's push saved it: resized, normalised, min-max rescaled, truncated to 8 bits."""
    image = normalize(to_unit_tensor([load_image(path)], model.input_spec), model.input_spec)[0]
    image = image - image.min()
    image = image / image.max().clamp_min(1e-12)
    return np.floor(image.permute(1, 2, 0).numpy() * 255.0) / 255.0


def _cells_and_boxes(paths: list[Path], map_size: tuple[int, int],
                     size: tuple[int, int]) -> tuple[list[tuple[int, int]], list[tuple[int, int, int, int]]]:
    acts = []
    for path in paths:
        act = read_npy(path, 2, "f")
        if act.shape != map_size:
            raise CheckpointError(f"{path}: activation map {act.shape} but the model's maps are {map_size} (did the push "
                              "run at another image size than the model's input? state dicts do not record it)")
        acts.append(act.astype(np.float32))
    stack = torch.from_numpy(np.stack(acts))
    flat = stack.flatten(1).argmax(dim=1)
    cells = [(int(f) // map_size[1], int(f) % map_size[1]) for f in flat]
    boxes = [tuple(int(v) for v in b) for b in percentile_boxes(upsample_maps(stack, size)).tolist()]
    return cells, boxes  # type: ignore[return-value]
