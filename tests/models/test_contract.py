"""Contract tests generated from the family registry: every registered family must pass them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protoviz.models import build_model, list_families, load_model
from protoviz.models.checkpoint import save_model
from protoviz.models.registry import FAMILIES


def _example(family: str):
    torch.manual_seed(0)
    return build_model(family, FAMILIES.get(family).example_config()).eval()


@pytest.mark.parametrize("family", list_families())
def test_forward_shapes_and_linear_head(family: str) -> None:
    model = _example(family)
    h, w = model.input_spec.image_size
    x = torch.randn(2, 3, h, w)
    out = model(x)
    P, C = model.num_prototypes, model.num_classes
    assert out.logits.shape == (2, C)
    assert out.similarity_maps.shape[:2] == (2, P)
    assert out.similarity_maps.shape[2:] == model.map_size()
    assert torch.equal(out.max_similarities, out.similarity_maps.flatten(2).amax(2))
    assert model.prototype_class_identity.shape == (P, C)
    assert model.class_weights.shape == (C, P)
    base_head = type(model).logits_from_similarities is FAMILIES.get("protopnet").logits_from_similarities
    if model.output_kind == "logits" and (base_head or model.family == "protopool") and model.logits_from_pooled:
        torch.testing.assert_close(out.logits, out.max_similarities @ model.class_weights.t())


@pytest.mark.parametrize("family", list_families())
def test_save_load_roundtrip_is_identical(family: str, tmp_path: Path) -> None:
    model = _example(family)
    path = save_model(model, tmp_path / f"{family}.safetensors")
    loaded = load_model(path)
    h, w = model.input_spec.image_size
    x = torch.randn(3, 3, h, w)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
        assert torch.equal(model(x).similarity_maps, loaded(x).similarity_maps)
    assert loaded.class_names == model.class_names
    assert loaded.summary() == model.summary()


@pytest.mark.parametrize("family", list_families())
def test_batch_of_one_and_groups_cover_all_prototypes(family: str) -> None:
    model = _example(family)
    h, w = model.input_spec.image_size
    assert model(torch.randn(1, 3, h, w)).logits.shape == (1, model.num_classes)
    covered = sorted(i for a, b in model.prototype_groups().values() for i in range(a, b))
    assert covered == list(range(model.num_prototypes))
