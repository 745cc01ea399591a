"""Families of prototype models, listed by name, and the one entry point to load any checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from protoviz.errors import CheckpointError, ConfigError
from protoviz.models.base import PrototypeModel


class FamilyRegistry:
    """Name -> model class. Registering a name twice is an error, not a silent override."""

    def __init__(self) -> None:
        self._families: dict[str, type[PrototypeModel]] = {}

    def register(self, cls: type[PrototypeModel]) -> type[PrototypeModel]:
        name = cls.family
        if not name:
            raise ConfigError(f"{cls.__name__} has no family name")
        if name in self._families:
            raise ConfigError(f"a model family named {name!r} is already registered ({self._families[name].__name__})")
        self._families[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._families)

    def get(self, name: str) -> type[PrototypeModel]:
        if name not in self._families:
            raise ConfigError(f"unknown model family {name!r}; known: {', '.join(self.names())}")
        return self._families[name]


FAMILIES = FamilyRegistry()


def register_family(cls: type[PrototypeModel]) -> type[PrototypeModel]:
    """Class decorator adding a family to the registry."""
    return FAMILIES.register(cls)


def list_families() -> list[str]:
    """Names of every registered family."""
    return FAMILIES.names()


def build_model(family: str, config: dict[str, Any]) -> PrototypeModel:
    """An untrained model of ``family`` from its configuration dictionary."""
    return FAMILIES.get(family).from_config(config)


def load_model(path: str | Path, family: str | None = None, device: str | torch.device | None = None,
               **hints: str | None) -> PrototypeModel:
    """Load any supported checkpoint into an eval-mode model on ``device`` (default: CPU).

    Native ``.safetensors`` files are read without pickle; research checkpoints go through the
    restricted importers in :mod:`protoviz.models.legacy`. ``family`` is a hint for files that two
    families could have written (e.g. ProtoPNet and TesNet state dicts); ``hints`` are the other facts a
    file may not tell: ``slots`` (ProtoPool: soft | hard), ``activation`` (ProtoPNet, ProtoPool: log |
    linear), ``backbone`` (PIP-Net: convnext_tiny_26 | convnext_tiny_13); see :mod:`protoviz.models.hints`.
    """
    from protoviz.models import checkpoint, legacy
    from protoviz.models.hints import LoadHints, apply_to_native

    load_hints = LoadHints.of(family=family, **hints)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such file or folder: {path}")
    target = torch.device(device) if device is not None else torch.device("cpu")
    if path.is_file() and checkpoint.is_safetensors(path):
        model = apply_to_native(checkpoint.load_native(path, device=target), load_hints, path.name)
    else:
        model = legacy.load_legacy(path, family=family, device=target, hints=load_hints)
    return model.eval()
