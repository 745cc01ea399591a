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
from protoviz.errors import CheckpointError, ConfigError, ProtovizError
from protoviz.models.base import PrototypeModel
from protoviz.models.hints import LoadHints
from protoviz.models.limits import DEFAULT_LIMITS, ModelLimits, check_finite, check_normalisation

LOG = logging.getLogger("protoviz.checkpoints")
_MAX_PATH = 4096


def load_model(path: str | Path, family: str | None = None, device: str | torch.device | None = None,
               limits: ModelLimits = DEFAULT_LIMITS, **hints: str | None) -> PrototypeModel:
    """Load any supported checkpoint into an eval-mode model on ``device`` (default: CPU).

    Native ``.safetensors`` files are read without pickle; research checkpoints go through the
    restricted importers in :mod:`protoviz.models.legacy`. ``family`` is a hint for files that two
    families could have written (e.g. ProtoPNet and TesNet state dicts); ``hints`` are the other facts a
    file may not tell: ``slots`` (ProtoPool: soft | hard), ``activation`` (ProtoPNet, ProtoPool: log |
    linear), ``backbone`` (PIP-Net: convnext_tiny_26 | convnext_tiny_13); see :mod:`protoviz.models.hints`.
    ``limits`` bounds every size (:mod:`protoviz.models.limits`). Non-finite weights and a non-finite or
    zero normalisation are refused (every output would be NaN).
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
    load_hints = LoadHints.of(family=family, **hints)  # ConfigError: the arguments, not the file, are wrong
    try:
        model = _load(Path(text), load_hints, target, limits)
        check_finite(model, label)
        spec = model.input_spec
        check_normalisation(spec.mean, spec.std, label)
        model.summary()
    except CheckpointError:
        raise
    except ConfigError as error:  # the file against the hints given (or its own config): both kinds apply
        raise CheckpointConfigError(_prefixed(label, error)) from error
    except ProtovizError as error:
        raise CheckpointError(_prefixed(label, error)) from error
    except MemoryError:
        raise CheckpointError(f"{label} needs more memory than is available") from None
    except Exception as error:  # a hostile file can fail anywhere; its text is not shown
        LOG.warning("checkpoint %s failed to load", label, exc_info=error)
        raise CheckpointError(f"{label} could not be turned into a model: its contents are inconsistent "
                              f"({type(error).__name__})") from None
    return model.eval()


class CheckpointConfigError(CheckpointError, ConfigError):
    """A checkpoint whose contents do not fit a configuration: the load hints given, or its own config."""


def _prefixed(label: str, error: Exception) -> str:
    text = str(error)
    return text if text.startswith(label) else f"{label}: {text}"


def _load(path: Path, hints: LoadHints, device: torch.device, limits: ModelLimits) -> PrototypeModel:
    from protoviz.models import checkpoint, legacy
    from protoviz.models.hints import apply_to_native

    try:
        is_folder = path.is_dir()
    except OSError as error:
        raise CheckpointError(f"{path.name[:200]} cannot be opened ({error.strerror or type(error).__name__})") \
            from None
    if not is_folder:
        head, size = files.read_head(path, 9, CheckpointError)
        if checkpoint.looks_like_safetensors(head, size, path.suffix):
            return apply_to_native(checkpoint.load_native(path, device=device, limits=limits), hints, path.name)
    return legacy.load_legacy(path, family=hints.family, device=device, hints=hints, limits=limits)
