"""One plain sentence that says what a prototype relies on, from its characteristic importances."""

from __future__ import annotations

import math
from collections.abc import Mapping

from protoviz.explain.params import IDENTITY


def format_value(value: float) -> str:
    """Two significant digits, at least one decimal: 2.2, 1.0, 0.06, -0.08."""
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2g}"


def describe(importance: Mapping[str, float], prototype: int, class_name: str | None = None,
             noise_floor: float = 0.0, relative: float = 0.4, negligible: float = 0.05) -> str:
    """E.g. "prototype 12 (class Cardinal) relies mostly on hue (2.2) and shape (1.0); texture barely matters".

    A characteristic is named as relied on when its value is at least ``relative`` times the largest
    and above the noise floor; it "barely matters" when its |value| is under ``negligible`` times the
    largest or under the noise floor. Negative values (the change raised the similarity) are said so.
    """
    who = f"prototype {prototype}" + (f" (class {class_name})" if class_name else "")
    values = {k: float(v) for k, v in importance.items() if k != IDENTITY and not math.isnan(float(v))}
    if not values:
        return f"{who}: no characteristic could be measured"
    ranked = sorted(values.items(), key=lambda kv: -kv[1])
    top = ranked[0][1]
    if top <= noise_floor or top <= 0:
        return (f"{who}: no characteristic changes its similarity much (largest: {ranked[0][0]} "
                f"{format_value(top)}, noise floor {format_value(noise_floor)})")
    main = [(k, v) for k, v in ranked if v >= relative * top and v > noise_floor][:3]
    sentence = f"{who} relies mostly on " + _join([f"{k} ({format_value(v)})" for k, v in main])
    small = [k for k, v in ranked if abs(v) < max(negligible * top, noise_floor)]
    if small:
        sentence += f"; {_join(small)} barely {'matters' if len(small) == 1 else 'matter'}"
    raised = [(k, v) for k, v in ranked if v < 0 and abs(v) >= max(negligible * top, noise_floor)]
    if raised:
        sentence += "; changing " + _join([f"{k} ({format_value(v)})" for k, v in raised]) + " raised the similarity"
    return sentence


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
