"""Calibrated importance: each characteristic at an equal strength, read against the other prototypes.

Nauta et al.'s importance mixes two things with what a prototype relies on (measured on the synthetic
set, whose classes differ by one known factor of one part; ``python -m protoviz.explain.groundtruth``):

1. **Unequal strengths.** The published contrast (0.45) changes the model far more than the published
   hue shift, texture filter or 4 px warp, so contrast ranks first for most prototypes whatever they
   encode (21 of 29 prototypes of the tiny demo model).
2. **Common-mode sensitivity.** Every prototype loses similarity under a strong change; what singles a
   prototype out is being *more* sensitive to a characteristic than the model's other prototypes.

The calibrated importance removes both:

1. :func:`calibrate` sets every characteristic to the same **feature-space strength**: by bisection on
   its strength dial (0 = neutral, 1 = strongest, see ``DIALS``), the mean |Delta| over all prototypes
   and a sample of images equals a common target, by default the largest level that every
   characteristic reaches (the smallest of their effects at full strength).
2. :func:`standardise` turns each characteristic's column of G into z-scores over the prototypes.

The importance of prototype j for characteristic m is then (G_jm - mean_j' G_j'm) / std_j' G_j'm at
those strengths. Both steps are model-wide (six scalars and two moments per characteristic), never fitted
per prototype, and need no annotation, so the method applies to any dataset. How far it gets on the
synthetic set, and why not further (the models themselves respond to non-planted factors of a part
about as much as to the planted one), is reported by the ground-truth command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from protoviz.errors import ConfigError
from protoviz.explain.global_ import GlobalExplanation
from protoviz.explain.local import explain_images
from protoviz.explain.params import CHARACTERISTICS, ExplainConfig, ModificationParams
from protoviz.models.base import PrototypeModel

DIALS: dict[str, dict[str, tuple[float, float]]] = {
    "hue": {"hue": (0.0, 0.5)},
    "shape": {"shape_amplitude": (0.0, 16.0)},
    "texture": {"texture_h": (0.01, 80.0), "texture_h_color": (0.01, 80.0)},
    "contrast": {"contrast": (1.0, 0.0)},
    "saturation": {"saturation": (1.0, 0.0)},
    "brightness": {"brightness": (1.0, 0.0)},
    "blur": {"blur_sigma": (0.0, 8.0)},
}
"""Each characteristic's strength dial: parameter -> (value at 0 = no change, value at 1 = strongest),
linear in between (a hue shift of up to 180 degrees, a warp of up to 16 px, ...)."""


def dialled(params: ModificationParams, name: str, strength: float) -> ModificationParams:
    """``params`` with characteristic ``name`` set to ``strength`` in [0, 1] of its dial."""
    if name not in DIALS:
        raise ConfigError(f"no strength dial for {name!r}; dials exist for {', '.join(DIALS)}")
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be in [0, 1], got {strength}")
    values: dict[str, Any] = {key: low + strength * (high - low) for key, (low, high) in DIALS[name].items()}
    return dataclasses.replace(params, **values)


@dataclass(frozen=True)
class Calibration:
    """The calibrated strengths: per characteristic its dial position, its parameters and the mean
    |Delta| it reaches there; the common target; the parameters to explain with."""

    strengths: Mapping[str, float]
    effects: Mapping[str, float]
    full_effects: Mapping[str, float]
    target: float
    params: ModificationParams

    def as_record(self) -> dict[str, Any]:
        return {"strengths": dict(self.strengths), "effects": dict(self.effects),
                "full_effects": dict(self.full_effects), "target": self.target, "params": self.params.to_dict()}


def effect(model: PrototypeModel, images: Sequence[Image.Image], name: str, params: ModificationParams,
           mode: str = "fast") -> float:
    """Mean |Delta| of characteristic ``name`` at ``params`` over all prototypes and ``images``."""
    local = explain_images(model, images, ExplainConfig(mode=mode, names=(name,), params=params))
    return float(local.deltas.abs().mean())


def calibrate(model: PrototypeModel, images: Sequence[Image.Image], names: Sequence[str] = CHARACTERISTICS,
              target: float | None = None, steps: int = 8, mode: str = "fast",
              base: ModificationParams | None = None) -> Calibration:
    """Strengths at which every characteristic of ``names`` has the same mean |Delta| (``target``;
    default: the smallest of their effects at full strength). Bisection with ``steps`` halvings per
    characteristic on the dial; the effect is assumed to grow with the strength."""
    if not images:
        raise ConfigError("calibration needs at least one image")
    base = base or ModificationParams()
    full = {n: effect(model, images, n, dialled(base, n, 1.0), mode) for n in names}
    goal = min(full.values()) if target is None else float(target)
    if goal <= 0:
        raise ConfigError(f"calibration target must be > 0; the weakest characteristic reaches {goal}")
    strengths, effects, params = {}, {}, base
    for name in names:
        low, high = 0.0, 1.0
        for _ in range(steps):
            middle = (low + high) / 2
            if effect(model, images, name, dialled(base, name, middle), mode) < goal:
                low = middle
            else:
                high = middle
        strengths[name] = (low + high) / 2
        params = dialled(params, name, strengths[name])
        effects[name] = effect(model, images, name, dialled(base, name, strengths[name]), mode)
    return Calibration(strengths, effects, full, goal, params)


def standardise(result: GlobalExplanation) -> GlobalExplanation:
    """Each characteristic's importance as z-scores over the prototypes: (G - mean) / std per column
    (NaN prototypes ignored; a constant column gives 0)."""
    values = result.importance
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=0, keepdims=True)
        spread = np.nanstd(values, axis=0, keepdims=True)
        z = np.where(spread > 0, (values - mean) / np.where(spread > 0, spread, 1.0), 0.0)
    return dataclasses.replace(result, importance=np.where(np.isnan(values), np.nan, z))


def calibration_images(source: Any, count: int = 32) -> list[Image.Image]:
    """``count`` images evenly spaced over a dataset (or a list of images)."""
    total = len(source)
    if total == 0:
        raise ConfigError("calibration needs a non-empty dataset")
    picks = sorted({int(i) for i in np.linspace(0, total - 1, min(count, total)).round()})
    items = [source[i] for i in picks]
    return [item if isinstance(item, Image.Image) else item.image for item in items]
