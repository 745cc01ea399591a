"""Import the prototype sources an original push (or projection) wrote, one reader per family.

======== ============================================ ==============================================
family   what the original writes                      what is read
======== ============================================ ==============================================
ProtoPNet ``img/epoch-N/bbN.npy`` + receptive field,  image index, push box, receptive field, class;
TesNet    ``prototype-self-actJ.npy``, PNGs           cell = argmax of the self-activation
ST-Proto ``imgsupport/`` and ``imgtrivial/``, same    the same, per prototype set
ProtoPool ``img_proto/<run>/``: PNGs + self-act,       image found by its pixels; cell and push box
          no box file                                  from the self-activation
ProtoTree ``upsampling_results/pruned_and_projected/`` image found by its pixels (PNG copy); cell =
          PNGs per node, no numbers                   the projected tree's nearest cell
PIP-Net  ``train_N_pipnet_prototypes_cub_topk.csv``   top image per prototype, its patch box
          (CUB runs only; no push)
======== ============================================ ==============================================

Deformable ProtoPNet is not supported (its push projects each of a prototype's parts separately).
:func:`import_push_folder` then computes each prototype's own box, distance and thumbnails on its
source image (:func:`~protoviz.sources.describe.describe_sources`) and compares them with the folder.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protoviz.errors import CheckpointError, ModelError
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.progress import Progress
from protoviz.sources.describe import describe_sources
from protoviz.sources.folder import FolderImages, imagefolder_images
from protoviz.sources.pushdir.common import MissingEpoch, PushFolder
from protoviz.sources.pushdir.epoch import epoch_from_name, read_epoch_layout
from protoviz.sources.pushdir.pipnet import read_pipnet_table
from protoviz.sources.pushdir.protopool import read_protopool_folder
from protoviz.sources.pushdir.prototree import prototree_box, read_prototree_folder

Reader = Callable[[PrototypeModel, Path, FolderImages, "int | None", tuple[int, int]], PushFolder]
READERS: dict[str, Reader] = {
    "protopnet": read_epoch_layout, "tesnet": read_epoch_layout, "stprotopnet": read_epoch_layout,
    "protopool": read_protopool_folder, "prototree": read_prototree_folder, "pipnet": read_pipnet_table,
}


@dataclass(frozen=True)
class PushImport:
    """The sources read from a push folder and how they compare with the model itself.

    cells_agree: prototypes whose cell in the folder is also the model's own nearest cell on that image.
    boxes_differ: prototypes whose push box is more than one pixel from the model's own box.
    max_distance: the largest latent distance between a prototype and its pushed patch (~0 for an L2
    push right after pushing; large when the folder belongs to another state of the model).
    """

    sources: list[PrototypeSource | None]
    layout: str
    folders: list[Path]
    epoch: int | None
    notes: list[str]
    found: int
    cells_agree: int
    boxes_differ: int
    max_distance: float | None
    checks: dict[str, int] = field(default_factory=dict)
    distance_kind: str | None = None

    def summary(self) -> list[str]:
        """Human-readable lines for the command line and the page."""
        lines = [f"read {self.layout} push folder {', '.join(str(f) for f in self.folders)}"
                 + (f" (epoch {self.epoch})" if self.epoch is not None else ""),
                 f"{self.found} prototypes with a source; {self.cells_agree} of them at the model's own nearest cell"]
        if self.boxes_differ:
            lines.append(f"{self.boxes_differ} boxes as written by the original push differ from where the pushed "
                         "prototype fires (the push draws them before replacing the prototype); both are kept")
        if self.max_distance is not None:
            lines.append(f"largest latent distance ({self.distance_kind}) between a prototype and its source patch: "
                         f"{self.max_distance:.3g}")
        lines += [f"{name}: {value}" for name, value in self.checks.items()]
        return lines + self.notes


def import_push_folder(model: PrototypeModel, push_dir: str | Path, data_dir: str | Path, epoch: int | None = None,
                       batch_size: int = 32, progress: Progress | None = None,
                       checkpoint_name: str | None = None, lock: AbstractContextManager[Any] | None = None) -> PushImport:
    """Read the sources in ``push_dir`` (what the original wrote) against the push images in ``data_dir``.

    ``data_dir`` is the ImageFolder the push loader read (its order resolves image indices). ``epoch``
    picks ``epoch-N``; by default the epoch in the checkpoint's file name (``checkpoint_name``, else the
    file the model was imported from, e.g. ``10push0.7822.pth``), else the latest. ``lock`` is held around
    each batch of source images (a shared model's lock).
    """
    folder = Path(push_dir)
    if not folder.exists():
        raise CheckpointError(f"{folder}: no such push folder")
    if model.family not in READERS:
        raise ModelError(f"no push-folder reader for the {model.family} family; use `protoviz project`")
    listing = imagefolder_images(data_dir)
    map_size = model.map_size()
    hint = _epoch_hint(model, checkpoint_name) if epoch is None else None
    try:
        found = READERS[model.family](model, folder, listing, epoch if hint is None else hint, map_size)
    except MissingEpoch:
        if hint is None:
            raise
        found = READERS[model.family](model, folder, listing, None, map_size)
        found.notes.append(f"the checkpoint's name says epoch {hint}, which the folder has no push for; "
                           f"used epoch {found.epoch}")
    described = describe_sources(model, listing.dataset(), found.picks, batch_size, progress=progress, lock=lock)
    sources = described.sources
    chosen = [s for s in sources if s is not None]
    agree = sum(1 for j, s in enumerate(sources) if s is not None and s.map_location == described.own_locations.get(j))
    distances = [s.distance for s in chosen if s.distance is not None]
    checks = _patch_checks(found, sources, map_size)
    return PushImport(sources, found.layout, found.folders, found.epoch, found.notes, len(chosen), agree,
                      sum(int(s.boxes_differ) for s in chosen), max(distances) if distances else None, checks,
                      chosen[0].distance_kind if chosen else None)


def _epoch_hint(model: PrototypeModel, checkpoint_name: str | None) -> int | None:
    if checkpoint_name:
        return epoch_from_name(Path(checkpoint_name).name)
    for key in ("imported_from", "converted_from"):
        if model.metadata.get(key):
            return epoch_from_name(Path(str(model.metadata[key])).name)
    return None


def _patch_checks(found: PushFolder, sources: list[PrototypeSource | None], map_size: tuple[int, int]) -> dict[str, int]:
    """ProtoTree: does the nearest-patch picture's size equal ProtoTree's box of the cell used?"""
    if not found.patch_sizes:
        return {}
    same = 0
    for prototype, (patch, image) in found.patch_sizes.items():
        source = sources[prototype]
        if source is None or source.map_location is None:
            continue
        y0, y1, x0, x1 = prototree_box(source.map_location, map_size, image)
        same += int((y1 - y0, x1 - x0) == patch)
    return {"nearest-patch pictures whose size matches ProtoTree's box of the cell": same,
            "nearest-patch pictures": len(found.patch_sizes)}
