"""Calibrated importance: equal-strength calibration by bisection, z-scores over prototypes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from protoviz.errors import ConfigError
from protoviz.explain import ExplainConfig, explain_dataset
from protoviz.explain.calibration import DIALS, calibrate, calibration_images, dialled, effect, standardise
from protoviz.explain.characteristics import list_characteristics
from protoviz.explain.params import ModificationParams
from tests.conftest import make_tiny_model
from tests.explain.test_modifications import _image


def test_dials_run_from_neutral_to_strongest() -> None:
    base = ModificationParams()
    for name, dial in DIALS.items():
        assert name in list_characteristics()
        zero, one = dialled(base, name, 0.0), dialled(base, name, 1.0)
        for key, (low, high) in dial.items():
            assert getattr(zero, key) == low and getattr(one, key) == high
    assert dialled(base, "hue", 0.5).hue == 0.25
    with pytest.raises(ConfigError):
        dialled(base, "identity", 0.5)
    with pytest.raises(ConfigError):
        dialled(base, "hue", 1.5)


def test_calibration_reaches_one_common_effect() -> None:
    model = make_tiny_model(seed=4)
    images = [_image(i, (40, 40)) for i in range(2)]
    names = ("hue", "contrast")
    result = calibrate(model, images, names, steps=6)
    assert result.target == pytest.approx(min(result.full_effects.values()))
    for name in names:
        assert 0.0 <= result.strengths[name] <= 1.0
        assert result.effects[name] == pytest.approx(result.target, rel=0.15)  # bisection on a monotone effect
        assert effect(model, images, name, dialled(ModificationParams(), name, 0.0)) < 1e-3 * result.target + 1e-6
    assert result.params.hue == pytest.approx(0.5 * result.strengths["hue"])
    assert set(result.as_record()) >= {"strengths", "effects", "target", "params"}
    lower = calibrate(model, images, ("contrast",), target=0.5 * result.target, steps=6)
    assert lower.strengths["contrast"] < result.strengths["contrast"]


def test_standardise_gives_z_scores_per_characteristic() -> None:
    model = make_tiny_model(seed=5)
    result = explain_dataset(model, [_image(i, (48, 48)) for i in range(3)], ExplainConfig(), batch_size=3)
    raw = result.importance.copy()
    raw[1, 0] = np.nan
    z = standardise(dataclasses.replace(result, importance=raw)).importance
    assert np.isnan(z[1, 0])
    np.testing.assert_allclose(np.nanmean(z, axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.nanstd(z, axis=0), 1.0, atol=1e-9)
    assert len(calibration_images([_image(0)] * 10, 4)) == 4
