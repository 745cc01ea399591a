"""Contract tests generated from the characteristics and regions registries (x every model family)."""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.errors import ConfigError
from protoviz.explain import ExplainConfig, explain_images
from protoviz.explain.characteristics import (
    PAPER,
    FastContext,
    get_characteristic,
    list_characteristics,
    list_regions,
    register_characteristic,
)
from protoviz.explain.params import ModificationParams
from protoviz.models import build_model, list_families
from protoviz.models.registry import FAMILIES
from tests.explain.test_modifications import _array, _image, _unit

EXACT = {"contrast": 2.5 / 255, "saturation": 2.5 / 255, "brightness": 2.5 / 255, "shape": 0.0}
"""Fast vs reference at native size: max |difference| where both compute the same thing (uint8 rounding)."""
DERIVED = ("hue+shape", "texture+contrast", "floor:hue", "floor:texture")


def _example(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(family, FAMILIES.get(family).example_config()).eval()


def test_registry_lists_the_paper_six_first_and_refuses_duplicates() -> None:
    names = list_characteristics()
    assert tuple(names[:6]) == PAPER and {"identity", "blur"} <= set(names)
    assert list_characteristics(paper_only=True) == list(PAPER)
    with pytest.raises(ConfigError, match="already registered"):
        register_characteristic("hue", "Hue")(type("Again", (), {"fast": staticmethod(lambda u, c: u),
                                                                  "reference": staticmethod(lambda i, p: i)}))
    with pytest.raises(ConfigError, match="unknown characteristic"):
        get_characteristic("sharpness")
    with pytest.raises(ConfigError):
        get_characteristic("hue+hue")
    assert list_regions()[0] == "whole" and {"inside", "outside", "focus", "dual"} <= set(list_regions())


@pytest.mark.parametrize("name", list_characteristics() + list(DERIVED))
def test_fast_modification_contract(name: str) -> None:
    """Shape, range, dtype; deterministic; batched equals one image at a time; float64 works."""
    characteristic = get_characteristic(name)
    unit = torch.cat([_unit(_image(1)), _unit(_image(2))])
    context = FastContext(ModificationParams(), torch.ones(2, 2, dtype=torch.float64))
    out = characteristic.fast(unit, context)
    assert out.shape == unit.shape and out.dtype == unit.dtype and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, characteristic.fast(unit, context))
    single = characteristic.fast(unit[1:], dataclasses.replace(context, scale=context.scale[1:]))
    assert torch.allclose(out[1:], single, atol=1e-6)
    assert characteristic.fast(unit.double(), context).dtype == torch.float64
    assert set(characteristic.parameters) <= {f.name for f in dataclasses.fields(ModificationParams)}
    assert characteristic.description and characteristic.published.quality in (75, 95)


@pytest.mark.parametrize("name", list_characteristics() + list(DERIVED))
def test_reference_modification_and_its_published_round_trip(name: str, tmp_path) -> None:
    """The reference keeps the size and mode; the published image is the reference written to a .jpg file
    by the stated library with its defaults and read back with Image.open(...).convert('RGB')."""
    characteristic = get_characteristic(name)
    image = _image(3, (41, 37))
    out = characteristic.reference(image, ModificationParams())
    assert out.size == image.size and out.mode == "RGB"
    path = tmp_path / "modified.jpg"
    if characteristic.published.library == "pil":
        out.save(path)  # Pillow's defaults for a .jpg name: JPEG quality 75
    else:
        cv2.imwrite(str(path), cv2.cvtColor(np.asarray(out), cv2.COLOR_RGB2BGR))  # OpenCV's default quality 95
    expected = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(np.asarray(characteristic.published_image(image, ModificationParams())), expected)


@pytest.mark.parametrize("name", [n for n in list_characteristics() if n != "identity"])
def test_fast_follows_the_reference_at_native_size(name: str) -> None:
    characteristic = get_characteristic(name)
    image = _image(4, (40, 40))
    params = ModificationParams()
    fast = characteristic.fast(_unit(image), FastContext(params, torch.ones(1, 2, dtype=torch.float64),
                                                         max_search=21))[0].permute(1, 2, 0).numpy()
    reference = _array(characteristic.reference(image, params))
    original = _array(image)
    gap = np.abs(fast - reference)
    if name in EXACT:
        assert gap.max() <= EXACT[name], gap.max() * 255
    else:  # hue (PIL's uint8 HSV), texture (OpenCV's fixed-point weights), blur (uint8 rounding)
        assert gap.mean() < 0.6 * np.abs(reference - original).mean(), (gap.mean() * 255)


@pytest.mark.parametrize("name", [n for n in list_characteristics() if n != "identity"])
def test_every_characteristic_has_a_noise_floor_below_its_change(name: str) -> None:
    """floor:NAME runs the same path at the neutral parameters: it changes the image less than NAME."""
    image = _image(5, (40, 40))
    unit = _unit(image)
    context = FastContext(ModificationParams(), torch.ones(1, 2, dtype=torch.float64))
    change = (get_characteristic(name).fast(unit, context) - unit).abs().mean()
    floor = (get_characteristic("floor:" + name).fast(unit, context) - unit).abs().mean()
    # texture's floor is its uint8 Lab round trip: about half of the whole change on this smooth image
    assert floor < (0.6 if name == "texture" else 0.5) * change, (float(floor), float(change))
    if name in ("contrast", "saturation", "brightness", "shape", "blur"):
        assert floor < 1e-6  # the neutral parameters are an exact identity on this path


@pytest.mark.parametrize("family", list_families())
@pytest.mark.parametrize("name", list_characteristics() + ["hue+blur"])
def test_every_characteristic_explains_every_family(family: str, name: str) -> None:
    model = _example(family)
    h, w = model.input_spec.image_size
    images = [_image(6, (h + 5, w - 3)), _image(7, (h, w))]
    local = explain_images(model, images, ExplainConfig(names=(name,)), prototypes=[0, 1])
    assert local.modified.shape == (2, 1, 2) and torch.isfinite(local.deltas).all()
    assert local.characteristics == (name,)


@pytest.mark.parametrize("family", list_families())
@pytest.mark.parametrize("region", list_regions())
def test_every_region_explains_every_family(family: str, region: str) -> None:
    model = _example(family)
    h, w = model.input_spec.image_size
    config = ExplainConfig(names=("hue", "blur"), region=region)
    local = explain_images(model, [_image(8, (h, w))], config, prototypes=[1])
    assert local.modified.shape == (1, 2, 1) and torch.isfinite(local.deltas).all()
    if region != "whole":
        assert local.weights is not None and local.weights.shape == (1, 1, h, w)
        assert 0 <= float(local.weights.min()) and float(local.weights.max()) <= 1


def test_published_codecs_are_those_of_the_reference_code() -> None:
    """create_modified_datasets.py saves colour variants with PIL and texture / shape with cv2.imwrite."""
    for name in ("hue", "contrast", "saturation", "brightness"):
        assert get_characteristic(name).published.library == "pil" and get_characteristic(name).published.quality == 75
    for name in ("texture", "shape"):
        assert get_characteristic(name).published.library == "opencv"
        assert get_characteristic(name).published.quality == 95
    image = _image(9, (30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")  # Pillow's default quality
    assert np.array_equal(np.asarray(get_characteristic("identity").published.round_trip(image)),
                          np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))


def test_combination_applies_its_parts_in_order() -> None:
    image = _image(10, (32, 32))
    params = ModificationParams()
    combined = get_characteristic("hue+contrast").reference(image, params)
    by_hand = get_characteristic("contrast").reference(get_characteristic("hue").reference(image, params), params)
    assert np.array_equal(np.asarray(combined), np.asarray(by_hand))
    unit = _unit(image)
    context = FastContext(params, torch.ones(1, 2, dtype=torch.float64))
    fast = get_characteristic("hue+contrast").fast(unit, context)
    fast_by_hand = get_characteristic("contrast").fast(get_characteristic("hue").fast(unit, context), context)
    assert torch.allclose(fast, fast_by_hand)


@pytest.mark.parametrize("method", __import__("protoviz.heatmaps.methods", fromlist=["list_methods"]).list_methods())
def test_focus_and_dual_work_with_every_heatmap_method(method: str) -> None:
    """focus blends with weight w (the normalised heatmap), dual with 1 - w: the two weights sum to one."""
    model = _example("protopnet")
    h, w = model.input_spec.image_size
    image = _image(12, (h, w))
    torch.manual_seed(0)  # smoothgrad draws its noise from the global generator
    focus = explain_images(model, [image], ExplainConfig(names=("hue",), region="focus", heatmap_method=method),
                           prototypes=[0, 2])
    torch.manual_seed(0)
    dual = explain_images(model, [image], ExplainConfig(names=("hue",), region="dual", heatmap_method=method),
                          prototypes=[0, 2])
    assert focus.weights is not None and dual.weights is not None
    assert torch.allclose(focus.weights + dual.weights, torch.ones_like(focus.weights), atol=1e-6)
    assert torch.isfinite(focus.deltas).all() and torch.isfinite(dual.deltas).all()
    with pytest.raises(ConfigError):
        ExplainConfig(region="focus", heatmap_method="nope")
