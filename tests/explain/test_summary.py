"""Per-prototype summary of every characteristic against its own noise floor."""

from __future__ import annotations

import math

import numpy as np

from protoviz.explain import ExplainConfig, explain_dataset
from protoviz.explain.summary import floor_column, measured, prototype_summary, summarise
from tests.conftest import make_tiny_model
from tests.explain.test_modifications import _image


def test_each_characteristic_is_set_against_its_own_floor() -> None:
    model = make_tiny_model(seed=6)
    images = [_image(i, (48, 56)) for i in range(3)]
    config = ExplainConfig(names=("hue", "contrast", "blur"), floors=True, noise_floor=True)
    assert config.characteristics == ("hue", "contrast", "blur", "floor:hue", "floor:contrast", "floor:blur", "identity")
    result = explain_dataset(model, images, config, batch_size=3)
    assert measured(result) == ["hue", "contrast", "blur"]
    rows = summarise(result)
    assert len(rows) == model.num_prototypes * 3
    for row in rows:
        floor, source = floor_column(result, row.characteristic)
        assert source == f"floor:{row.characteristic}" and row.floor == floor[row.prototype]
        g = result.importance[row.prototype, result.characteristics.index(row.characteristic)]
        assert row.importance == g and math.isclose(row.margin, g - row.floor)
        assert row.above_floor == (row.margin > 0)
    contrast = [r for r in rows if r.characteristic == "contrast"]
    assert all(r.floor < 1e-5 for r in contrast)  # a factor of 1 changes only float rounding on this path
    for j in range(model.num_prototypes):
        ranks = sorted(r.rank for r in rows if r.prototype == j)
        assert ranks == [1, 2, 3]
    summary = prototype_summary(result, 0)
    assert [c["rank"] for c in summary["characteristics"]] == [1, 2, 3]
    first_above = next((c["characteristic"] for c in summary["characteristics"] if c["above_floor"]), None)
    assert summary["top_above_floor"] == first_above


def test_without_floors_the_shared_identity_or_nothing_is_used() -> None:
    model = make_tiny_model(seed=7)
    images = [_image(9, (40, 40))]
    shared = explain_dataset(model, images, ExplainConfig(names=("hue",), noise_floor=True), batch_size=1)
    assert floor_column(shared, "hue")[1] == "identity"
    bare = explain_dataset(model, images, ExplainConfig(names=("hue",)), batch_size=1)
    column, source = floor_column(bare, "hue")
    assert source is None and np.isnan(column).all()
    assert all(r.above_floor is None for r in summarise(bare))
