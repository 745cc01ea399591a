"""Importers for checkpoints written by the original research repositories.

Each importer recognises its files and loads them without executing anything they contain: every
file goes through :mod:`protoviz.models.legacy.unpickler` (an explicit allow-list and inert stand-ins
for research classes), then :mod:`protoviz.models.legacy.detect` names the family and converts the
weights into the family's protoviz model. Folders: a ProtoTree run folder (model.pth / tree.pkl), a
PIP-Net ``checkpoints`` folder (net_trained_last, net_trained, ...), or a folder with one checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import torch

from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeModel
from protoviz.models.hints import BACKBONE_HINTS, LoadHints, record_choice
from protoviz.models.limits import DEFAULT_LIMITS, ModelLimits, build_within_budget, check_config

_FOLDER_CANDIDATES = ("net_trained_last", "net_trained", "net_pretrained", "best_model_push.pth", "best_model.pth")
_SUFFIXES = (".pth", ".pt", ".tar", ".pkl", ".ckpt")
_MAX_LISTED = 10_000


def load_legacy(path: Path, family: str | None, device: torch.device, hints: LoadHints | None = None,
                limits: ModelLimits = DEFAULT_LIMITS) -> PrototypeModel:
    """Load a research checkpoint (file or folder) as a :class:`PrototypeModel` on ``device``.

    ``hints``: what the file cannot tell (:mod:`protoviz.models.hints`); ``family`` overrides its family.
    The model is first built on the meta device and checked against the weights the file holds
    (:func:`protoviz.models.limits.build_within_budget`), then built and filled for real.
    """
    from protoviz.models.legacy import detect, pipnet
    from protoviz.models.legacy.containers import read_checkpoint, read_regular_file

    hints = replace(hints or LoadHints(), family=family or (hints.family if hints else None))
    family = hints.family
    file = checkpoint_file(Path(path))
    run_net = pipnet.run_folder_net(file) if hints.backbone is None else None
    if run_net in BACKBONE_HINTS:
        hints = replace(hints, backbone=run_net)
    data = read_regular_file(file, limits.max_file_bytes)
    digest = hashlib.sha256(data).hexdigest()
    loaded = read_checkpoint(data, file.name, limits)
    del data  # the tensors are copied out: the file's bytes need not stay beside the model being built
    chosen = hints
    model = build_within_budget(lambda: detect.convert(loaded.obj, family, file.name, chosen), loaded.elements,
                                file.name, limits, check=lambda meta: check_config(meta.config_dict(), file.name, limits))
    if run_net in BACKBONE_HINTS and "backbone" in model.metadata.get("load_hints", {}):
        record_choice(model.metadata, "backbone", str(run_net), "read from the run folder's metadata/args.txt")
    model.metadata.update({"imported_from": file.name, "checkpoint_sha256": digest,
                           "research_family": model.family})
    return model.to(device).eval()


def checkpoint_file(path: Path) -> Path:
    """The one file to read for ``path``: itself, or the checkpoint a run folder holds.

    A ProtoTree ``model_state.pth`` with ``model.pth``/``tree.pkl`` beside it resolves to those
    (the state dict alone cannot rebuild the tree).
    """
    from protoviz.models.legacy import prototree

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such file or folder: {path.name}")
    file = _folder_file(path) if path.is_dir() else path
    if file.name == "model_state.pth" and any((file.parent / n).is_file() for n in prototree.FOLDER_FILES):
        file = prototree.folder_file(file.parent)
    return file


def _folder_file(folder: Path) -> Path:
    from protoviz.models.legacy import prototree

    if any((folder / n).exists() for n in (*prototree.FOLDER_FILES, "model_state.pth")):
        return prototree.folder_file(folder)
    for name in _FOLDER_CANDIDATES:
        if (folder / name).is_file():
            return folder / name
    files = []
    for number, entry in enumerate(folder.iterdir()):
        if number > _MAX_LISTED:
            break
        if entry.suffix in _SUFFIXES and entry.is_file():
            files.append(entry)
    if len(files) == 1:
        return files[0]
    raise CheckpointError(f"{folder.name} is a folder without a ProtoTree model.pth/tree.pkl or a PIP-Net "
                          f"checkpoint, and it holds {len(files)} checkpoint-like files; give the file itself")

