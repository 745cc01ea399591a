"""ProtoTree's projection pictures (``{log_dir}/upsampling_results/pruned_and_projected/``, ``upsample.py``).

ProtoTree's ``project_with_class_constraints`` keeps where each prototype was projected in memory
only; ``upsample`` then writes, per decision node N (its original number, ``node.index``):
``N_original_image.png`` (the source image file re-saved as PNG at its own size: ``Image.open(path)
.save(...)``), ``N_nearest_patch_of_image.png`` (the patch, its size set by the box), heatmaps and a
picture with the box drawn. No index or box is saved as numbers. So the source image is the image of
``--data`` whose pixels equal ``N_original_image.png`` (same size, mean absolute difference < 0.5/255);
the cell is the projected tree's own nearest cell on it (distance ~0 right after projection), and the
patch picture's size checks that cell: ProtoTree's box is the one-hot map of the cell upsampled
(INTER_CUBIC) to the image size and thresholded at ``1 - upsample_threshold`` (0.98 by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from protoviz.errors import CheckpointError
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeModel
from protoviz.sources.criteria import push_rule
from protoviz.sources.describe import Pick
from protoviz.sources.folder import FolderImages
from protoviz.sources.pushdir.common import PushFolder, decode_raw, header_size, inside, match_images, numbered

TOLERANCE = 0.5 / 255
UPSAMPLE_THRESHOLD = 0.98
FOLDER = ("upsampling_results", "pruned_and_projected")


def read_prototree_folder(model: PrototypeModel, push_dir: Path, listing: FolderImages, epoch: int | None,
                          map_size: tuple[int, int]) -> PushFolder:
    """Read ProtoTree's upsampling folder (see the module docstring)."""
    folder = push_dir
    for part in FOLDER:
        if not numbered(folder, r"(\d+)_original_image\.png") and (folder / part).is_dir():
            folder = inside(folder, part)
    originals = numbered(folder, r"(\d+)_original_image\.png")
    if not originals:
        raise CheckpointError(f"{push_dir}: no N_original_image.png files (ProtoTree's "
                              "upsampling_results/pruned_and_projected/ folder)")
    tree: Any = model.config.tree  # type: ignore[union-attr]
    prototype_of = {int(n["index"]): int(n["prototype"]) for n in tree if "prototype" in n}
    unknown = sorted(set(originals) - set(prototype_of))
    if unknown:
        raise CheckpointError(f"{folder} has pictures of decision node {unknown[0]}, which this tree does not "
                              "have (the pruned_and_projected tree belongs with this folder)")
    nodes = sorted(originals)
    targets = [decode_raw(originals[n]).astype(np.float32) / 255.0 for n in nodes]
    eligible = push_rule(model).eligible(model).cpu()
    candidates = [set(torch.nonzero(eligible[prototype_of[n]]).flatten().tolist()) for n in nodes]
    found = match_images(listing, targets, candidates,
                         lambda p: decode_raw(p).astype(np.float32) / 255.0, TOLERANCE, same_size_only=True)
    picks, unmatched = [], []
    for k, node in enumerate(nodes):
        if found[k] is None:
            unmatched.append(node)
            continue
        picks.append(Pick(prototype=prototype_of[node], image_index=found[k][0], origin="push-folder"))  # type: ignore[index]
    notes = [(f"ProtoTree writes no cell or box numbers: cells are the projected tree's nearest cells on "
              f"the {len(picks)} matched images")]
    if unmatched:
        notes.append(f"{len(unmatched)} node pictures match no image of --data of an eligible class "
                     f"(e.g. node {unmatched[0]}): is --data ProtoTree's projection folder (train_crop), unchanged?")
    result = PushFolder("prototree", [folder], epoch, picks, notes)
    patches = numbered(folder, r"(\d+)_nearest_patch_of_image\.png")
    for k, node in enumerate(nodes):
        patch = header_size(patches[node]) if node in patches else None
        if patch is not None and found[k] is not None:
            result.patch_sizes[prototype_of[node]] = (patch, (targets[k].shape[0], targets[k].shape[1]))
    return result


def prototree_box(cell: tuple[int, int], map_size: tuple[int, int], image_size: tuple[int, int],
                  threshold: float = UPSAMPLE_THRESHOLD) -> tuple[int, int, int, int]:
    """ProtoTree's ``upsample`` box of a cell: one-hot map upsampled bicubically to ``image_size`` (H, W),
    rows/cols with a value > 1 - threshold; (y0, y1, x0, x1) end-exclusive."""
    one_hot = torch.zeros(1, *map_size)
    one_hot[0, cell[0], cell[1]] = 1.0
    mask = upsample_maps(one_hot, image_size)[0] > 1.0 - threshold
    rows, cols = torch.nonzero(mask.any(dim=1)).flatten(), torch.nonzero(mask.any(dim=0)).flatten()
    if rows.numel() == 0:
        return 0, 1, 0, 1  # find_high_activation_crop's (0, 0+1, 0, 0+1) when nothing passes
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
