"""The registry of dataset-wide metrics: one file and one registration per metric.

A metric is a class registered with ``@register_metric(name, needs=..., unit=..., description=...)``.
It may put one consumer on the evaluation's shared pass (:meth:`Metric.consumer`; metrics that read
the same counts share one consumer through ``run.shared``) and turns that consumer's result into a
typed :class:`~protoviz.metrics.score.Score` (:meth:`Metric.score`). The command line's defaults and
help, the Evaluate page and the contract tests (every metric on every family) are generated from
:func:`list_metrics`, so a new metric is tested the moment it is registered.

``needs`` says what a metric requires: ``"labels"`` (class labels), ``"parts"`` (part annotations),
``"objects"`` (part masks, or boxes of uncropped images), ``"masks"`` (per-pixel object masks only),
``"noise"`` (noisy forward passes), ``"model"`` (forwards of its own after the shared pass).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from protoviz.errors import ConfigError, DatasetError, ProtovizError
from protoviz.metrics.score import UNITS, Score

if TYPE_CHECKING:
    from protoviz.metrics.runner import EvaluationRun
    from protoviz.passes import Consumer

NEEDS = frozenset({"labels", "parts", "objects", "masks", "noise", "model"})


class Metric(ABC):
    """One dataset-wide metric. ``info`` is set by :func:`register_metric`."""

    info: ClassVar[MetricInfo]

    def consumer(self, run: EvaluationRun) -> Consumer | None:
        """The consumer this metric reads from the shared pass (None: it needs none)."""
        return None

    @abstractmethod
    def score(self, run: EvaluationRun, state: Any) -> Score:
        """The score from the consumer's ``result()`` (None when :meth:`consumer` gave none)."""


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric: name, unit of its headline, needs, one-line description, whether it is a
    default, and the default metric it stands in for when that one is unavailable (``fallback_for``)."""

    name: str
    unit: str
    needs: frozenset[str]
    description: str
    default: bool
    fallback_for: str | None
    cls: type[Metric]

    def unavailable(self, dataset: Any) -> ProtovizError | None:
        """Why this metric cannot run on ``dataset`` (an ImageDataset), as the error to raise, or None."""
        if "parts" in self.needs and not getattr(dataset, "has_parts", False):
            reason = getattr(dataset, "parts_reason", None) or "the dataset has none"
            return DatasetError(f"{self.name} needs part annotations, which are unavailable: {reason}")
        if "objects" in self.needs and not (getattr(dataset, "has_masks", False)
                                            or getattr(dataset, "has_object_boxes", False)):
            return ConfigError(f"{self.name} needs part masks (the synthetic set has them) or bounding boxes of "
                               f"uncropped images; {getattr(dataset, 'root', 'the dataset')} has neither (with "
                               "boxes, turn cropping off)")
        if "masks" in self.needs and not getattr(dataset, "has_masks", False):
            return DatasetError(f"{self.name} needs per-pixel object masks (segmentations), which "
                                f"{getattr(dataset, 'root', 'the dataset')} does not have for every image (masks are read from a "
                                "masks/ folder beside images/, one per image; the synthetic set has them)")
        return None


_METRICS: dict[str, MetricInfo] = {}
M = TypeVar("M", bound=type[Metric])
BUILTIN = (  # table order
    "accuracy", "consistency", "stability", "region_stability", "purity", "object_overlap", "pointing_game",
    "deletion")
_builtin = {"loaded": False}


def _load_builtin() -> None:
    """Import the built-in metric modules once, in table order (each registers itself)."""
    if not _builtin["loaded"]:
        _builtin["loaded"] = True
        for module in BUILTIN:
            importlib.import_module(f"protoviz.metrics.{module}")


def register_metric(name: str, *, unit: str, description: str, needs: Iterable[str] = (), default: bool = False,
                    fallback_for: str | None = None) -> Callable[[M], M]:
    """Class decorator adding a metric. Registering a name twice is an error, not a silent override."""
    wanted = frozenset(needs)
    if unknown := wanted - NEEDS:
        raise ConfigError(f"metric {name!r}: unknown needs {sorted(unknown)}; known: {sorted(NEEDS)}")
    if unit not in UNITS:
        raise ConfigError(f"metric {name!r}: unit must be one of {UNITS}, got {unit!r}")

    def add(cls: M) -> M:
        if name in _METRICS:
            raise ConfigError(f"a metric named {name!r} is already registered ({_METRICS[name].cls.__name__})")
        info = MetricInfo(name, unit, wanted, description, default, fallback_for, cls)
        cls.info = info
        _METRICS[name] = info
        return cls
    return add


def list_metrics() -> list[str]:
    """Every registered metric: the built-in ones in table order, then others in registration order."""
    _load_builtin()
    rank = {name: i for i, name in enumerate(BUILTIN)}
    return sorted(_METRICS, key=lambda name: rank.get(name, len(BUILTIN)))


def get_metric(name: str) -> MetricInfo:
    _load_builtin()
    if name not in _METRICS:
        raise ConfigError(f"unknown metric {name!r}; choose from {', '.join(_METRICS)}")
    return _METRICS[name]


def metric_help() -> dict[str, str]:
    """Name -> description with its unit, for help texts."""
    _load_builtin()
    return {name: f"{_METRICS[name].description} [{_METRICS[name].unit}]" for name in list_metrics()}


def default_metrics(dataset: Any) -> tuple[str, ...]:
    """The default metrics that can run on ``dataset``, plus each fallback whose default cannot."""
    names = list_metrics()
    chosen = [m for m in names if _METRICS[m].default and _METRICS[m].unavailable(dataset) is None]
    for name in names:
        replaced = _METRICS[name].fallback_for
        if replaced and replaced not in chosen and _METRICS[name].unavailable(dataset) is None:
            chosen.append(name)
    return tuple(m for m in names if m in chosen)
