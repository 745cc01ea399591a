"""Families of prototype models, listed by name (loading checkpoints is :mod:`protoviz.models.loading`)."""

from __future__ import annotations

from typing import Any

from protoviz.errors import ConfigError
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


def __getattr__(name: str) -> Any:
    """``load_model`` moved to :mod:`protoviz.models.loading` (above the families); kept importable here."""
    if name == "load_model":
        from protoviz.models.loading import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
