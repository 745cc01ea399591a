"""The one entry point to load any checkpoint: native ``.safetensors`` or a research repository's file.

It sits above the families (``registry`` no longer imports the loaders, which broke an import circle)
and guarantees one outcome for any input: a model that is finite, within the size limits of
:mod:`protoviz.models.limits`, and describes itself (``summary()`` works) - or a
:class:`~protoviz.errors.CheckpointError` whose message a person can act on. Nothing else escapes:
unexpected exceptions from parsing, detection, building or the summary become that error too (their
text, which may quote the file, is logged, not shown).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from protoviz import files
from protoviz.errors import CheckpointError, ProtovizError
from protoviz.models.base import PrototypeModel
from protoviz.models.limits import DEFAULT_LIMITS, ModelLimits, check_finite, check_normalisation

LOG = logging.getLogger("protoviz.checkpoints")
_MAX_PATH = 4096


def load_model(path: str | Path, family: str | None = None, device: str | torch.device | None = None,
               limits: ModelLimits = DEFAULT_LIMITS) -> PrototypeModel:
    """Load any supported checkpoint into an eval-mode model on ``device`` (default: CPU).

    Native ``.safetensors`` files are read without pickle; research checkpoints go through the
    restricted importers in :mod:`protoviz.models.legacy`. ``family`` is a hint for files that two
    families could have written (e.g. ProtoPNet and TesNet state dicts). Non-finite weights and a
    non-finite or zero normalisation are refused (every output would be NaN).
    Raises :class:`CheckpointError` for anything that is not such a checkpoint.
    """
    text = str(path)
    label = Path(text).name[:200] or text[:200]
    if len(text) > _MAX_PATH or "\x00" in text:
        raise CheckpointError(f"the checkpoint path is longer than {_MAX_PATH} characters or holds a NUL byte")
    try:
        target = torch.device(device) if device is not None else torch.device("cpu")
    except (RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"unknown device {str(device)[:40]!r}") from error
    try:
        model = _load(Path(text), family, target, limits)
        check_finite(model, label)
        spec = model.input_spec
        check_normalisation(spec.mean, spec.std, label)
        model.summary()
    except CheckpointError:
        raise
    except ProtovizError as error:
        raise CheckpointError(f"{label}: {error}") from error
    except MemoryError:
        raise CheckpointError(f"{label} needs more memory than is available") from None
    except Exception as error:  # a hostile file can fail anywhere; its text is not shown
        LOG.warning("checkpoint %s failed to load", label, exc_info=error)
        raise CheckpointError(f"{label} could not be turned into a model: its contents are inconsistent "
                              f"({type(error).__name__})") from None
    return model.eval()


def _load(path: Path, family: str | None, device: torch.device, limits: ModelLimits) -> PrototypeModel:
    from protoviz.models import checkpoint, legacy

    try:
        is_folder = path.is_dir()
    except OSError as error:
        raise CheckpointError(f"{path.name[:200]} cannot be opened ({error.strerror or type(error).__name__})") \
            from None
    if not is_folder:
        head, size = files.read_head(path, 9, CheckpointError)
        if checkpoint.looks_like_safetensors(head, size, path.suffix):
            return checkpoint.load_native(path, device=device, limits=limits)
    return legacy.load_legacy(path, family=family, device=device, limits=limits)
