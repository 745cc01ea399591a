"""Honest labels: every family has its method's name and every similarity kind its unit, from the registry."""

from __future__ import annotations

import pytest
import torch

from protoviz.models import build_model, list_families
from protoviz.models.labels import FAMILY_NAMES, SIMILARITY_UNITS, family_label, prototype_set, similarity_unit
from protoviz.models.registry import FAMILIES
from tests.conftest import make_tiny_model


@pytest.mark.parametrize("family", list_families())
def test_every_family_has_a_name_and_its_similarity_a_unit(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, FAMILIES.get(family).example_config())
    summary = model.summary()
    assert family in FAMILY_NAMES and summary.family_label == family_label(family, model.config)
    assert model.similarity_kind in SIMILARITY_UNITS and summary.similarity_unit == similarity_unit(model.similarity_kind)
    rows = dict(summary.as_rows())
    assert rows["family"].startswith(summary.family_label)
    assert summary.similarity_unit in rows["similarity"]


def test_a_native_protopnet_with_support_and_trivial_sets_is_called_st_protopnet() -> None:
    st = make_tiny_model(similarity="cosine", sets=("support", "trivial"))
    summary = st.summary()
    assert summary.family == "protopnet" and summary.family_label == "ST-ProtoPNet"
    rows = dict(summary.as_rows())
    assert rows["family"] == "ST-ProtoPNet (protoviz family 'protopnet')"
    assert rows["prototype sets"] == "support [0:6), trivial [6:12)"
    assert "from -1" in rows["similarity"]
    assert dict(make_tiny_model().summary().as_rows())["family"] == "ProtoPNet"
    assert family_label("protopnet", make_tiny_model(similarity="cosine").config) == "ProtoPNet (cosine similarity)"
    assert "9.21" in similarity_unit("log") and "larger = more similar" in similarity_unit("unknown")


def test_prototype_sets_by_index() -> None:
    groups = {"support": (0, 6), "trivial": (6, 12)}
    assert [prototype_set(groups, j) for j in (0, 5, 6, 11, 12)] == ["support", "support", "trivial", "trivial", None]
    assert prototype_set({"prototypes": (0, 12)}, 3) is None
