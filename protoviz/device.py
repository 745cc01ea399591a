"""Choose the compute device; slice work into batches. (The one out-of-memory fallback is the pass
engine's, :mod:`protoviz.passes`.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import torch

from protoviz.errors import ConfigError

T = TypeVar("T")


def pick_device(preference: str | None = None) -> torch.device:
    """``None``/``'auto'``: CUDA if present, else Apple MPS, else CPU. Otherwise the named device."""
    if preference in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as error:
        raise ConfigError(f"unknown device {preference!r}: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("a CUDA device was requested but no GPU is available; use 'cpu' or 'auto'")
    return device


def describe_device(device: torch.device) -> str:
    """A short human label, e.g. 'cuda:0 (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def batches(items: Sequence[T], batch_size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``batch_size`` items."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start:start + batch_size]
