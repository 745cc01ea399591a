"""load_model's guarantees and the size checks of protoviz/models/limits.py, for every registered family."""

from __future__ import annotations

import pytest
from torch import nn

from protoviz.errors import CheckpointError
from protoviz.models.limits import (
    DEFAULT_LIMITS,
    build_on_meta,
    build_within_budget,
    check_config,
    check_forward_size,
    state_elements,
)
from protoviz.models.registry import FAMILIES


def test_load_model_is_importable_from_its_old_places() -> None:
    import protoviz
    from protoviz.models import load_model as from_models
    from protoviz.models.loading import load_model
    from protoviz.models.registry import load_model as from_registry

    assert protoviz.load_model is from_models is load_model is from_registry


@pytest.mark.parametrize("family", FAMILIES.names())
def test_every_family_is_checked_on_the_meta_device_then_built(family: str) -> None:
    """The meta build, the config bounds and the one-image forward size work for every family."""
    cls, config = FAMILIES.get(family), FAMILIES.get(family).example_config()
    check_config(config, family)
    meta = build_on_meta(lambda: cls.from_config(config), family)
    assert next(meta.parameters()).device.type == "meta"
    check_forward_size(meta, family)
    real = build_within_budget(lambda: cls.from_config(config), state_elements(meta), family)
    assert next(real.parameters()).device.type == "cpu" and state_elements(real) == state_elements(meta)


def test_a_model_larger_than_the_file_is_refused_before_allocation() -> None:
    with pytest.raises(CheckpointError, match="needs 400,000,000 weights but the file holds 1,000"):
        build_within_budget(lambda: nn.Linear(20_000, 20_000, bias=False), 1_000, "big.pth")


def test_a_huge_activation_is_refused_on_the_meta_device() -> None:
    config = FAMILIES.get("protopnet").example_config()
    config["backbone"] = "vgg:cfg=4096,M;bn=0"
    config["input"]["image_size"] = [1024, 1024]
    meta = build_on_meta(lambda: FAMILIES.get("protopnet").from_config(config), "wide")
    with pytest.raises(CheckpointError, match="one 1024x1024 image would need a tensor of 4,294,967,296 values"):
        check_forward_size(meta, "wide", DEFAULT_LIMITS)
