"""The reference modifications against their definitions, and the fast ones against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageEnhance

from protoviz.errors import ConfigError
from protoviz.explain import modifications_fast as fast
from protoviz.explain import modifications_reference as ref
from protoviz.explain.params import CHARACTERISTICS, ModificationParams


def _image(seed: int = 0, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A smooth colourful image with some edges (h, w = size)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    channels = [127 + 100 * np.sin(xs / (5 + 3 * c) + ys / (7 + c) + rng.uniform(0, 6)) for c in range(3)]
    pixels = np.stack(channels, axis=-1)
    pixels[size[0] // 3: size[0] // 2, size[1] // 4: size[1] // 2] = (200, 40, 60)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _unit(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255


def test_hue_shift_is_25_steps_and_matches_torchvision() -> None:
    params = ModificationParams()
    assert params.hue_shift_steps == 25
    image = _image()
    expected = TF.adjust_hue(image, 0.1)
    assert np.array_equal(np.asarray(ref.hue(image, 25)), np.asarray(expected))
    assert ModificationParams(hue=-0.1).hue_shift_steps == 256 - 25


def test_enhance_operations_are_pil() -> None:
    image = _image(1)
    for ours, theirs, factor in ((ref.contrast, ImageEnhance.Contrast, 0.45), (ref.saturation, ImageEnhance.Color, 0.7),
                                 (ref.brightness, ImageEnhance.Brightness, 0.8)):
        assert np.array_equal(np.asarray(ours(image, factor)), np.asarray(theirs(image).enhance(factor)))


def test_shape_warp_equals_the_row_then_column_roll_loops() -> None:
    image = _image(2, (45, 37))
    pixels = np.asarray(image).copy()
    shift = lambda t: int(4 * np.sin(np.pi * 0.05 * t))
    for i in range(pixels.shape[0]):
        pixels[i] = np.roll(pixels[i], shift(i), axis=0)
    for j in range(pixels.shape[1]):
        pixels[:, j] = np.roll(pixels[:, j], shift(j), axis=0)
    assert np.array_equal(np.asarray(ref.shape(image, 4.0, 0.05)), pixels)
    assert ref.sine_shifts(40, 4.0, 0.05).tolist()[25:35] == [shift(t) for t in range(25, 35)]


def test_fast_blends_and_hue_match_reference_at_native_size() -> None:
    image = _image(3)
    params = ModificationParams()
    names = ("contrast", "saturation", "brightness", "hue", "shape")
    out = fast.modify_fast(_unit(image), names, params)[0]
    for name, tensor in zip(names, out):
        expected = _array(ref.reference_operations(params)[name](image))
        difference = np.abs(tensor.permute(1, 2, 0).numpy() - expected)
        if name == "hue":  # PIL quantises H, S and V to uint8 on the way; the fast path stays in float
            assert difference.mean() <= 1.5 / 255 and difference.max() <= 10 / 255, (difference.mean() * 255)
        else:
            assert difference.max() <= (0.0 if name == "shape" else 2.5 / 255), (name, difference.max() * 255)


def test_fast_texture_approximates_opencv_non_local_means() -> None:
    image = _image(4, (40, 40))
    params = ModificationParams()
    expected = _array(ref.texture(image, 4, 4, 7, 21))
    ours = fast.texture(_unit(image), 4.0, 4.0, 7, 21)[0].permute(1, 2, 0).numpy()
    original = _array(image)
    assert np.abs(expected - original).mean() > 0  # the filter does something here
    assert np.abs(ours - expected).mean() < 0.6 * np.abs(original - expected).mean()
    assert params.texture_search == 21


def test_fast_shape_amplitude_scales_with_input_size() -> None:
    unit = torch.rand(2, 3, 40, 40)
    scale = torch.tensor([[1.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    out = fast.shape(unit, 4.0, 0.05, scale)
    row_shift_full = fast._sine_shifts(40, torch.tensor([4.0], dtype=torch.float64), torch.tensor([0.05]))
    row_shift_half = fast._sine_shifts(40, torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.1]))
    assert row_shift_full.abs().max() == 3 and row_shift_half.abs().max() == 1  # trunc(4 sin) <= 3, trunc(2 sin) <= 1
    assert out.shape == unit.shape and not torch.equal(out[0], out[1])


def test_modify_fast_shapes_identity_and_errors() -> None:
    unit = torch.rand(3, 3, 32, 32)
    out = fast.modify_fast(unit, CHARACTERISTICS + ("identity",), ModificationParams())
    assert out.shape == (3, 7, 3, 32, 32)
    assert torch.allclose(out[:, -1], unit, atol=1e-5)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ConfigError):
        fast.modify_fast(unit, ("sharpness",), ModificationParams())
    with pytest.raises(ConfigError):
        fast.modify_fast(unit[0], ("hue",), ModificationParams())


def test_rgb_hsv_round_trip() -> None:
    unit = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(fast.hsv_to_rgb(fast.rgb_to_hsv(unit)), unit, atol=1e-12)
    lab = fast.rgb_to_lab8(unit)
    assert torch.allclose(fast.lab8_to_rgb(lab), unit, atol=1e-6)


def test_parameters_are_validated() -> None:
    with pytest.raises(ConfigError):
        ModificationParams(texture_template=6)
    with pytest.raises(ConfigError):
        ModificationParams(contrast=-1)


def test_opencv_and_tensor_texture_backends_agree() -> None:
    images = [_image(6, (48, 48)), _image(7, (48, 48))]
    unit = torch.cat([_unit(im) for im in images])
    scale = torch.ones(2, 2, dtype=torch.float64)
    params = ModificationParams()
    tensor = fast.texture_scaled(unit, params, scale, 7)
    opencv = fast.texture_opencv(unit, params, scale, 7)
    change = (opencv - unit).abs().mean()
    assert change > 0 and (tensor - opencv).abs().mean() < 0.6 * change  # mostly uint8 rounding
    assert fast.texture_backend("auto", torch.device("cpu")) == "opencv"
    assert fast.texture_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ConfigError):
        fast.texture_backend("gpu", torch.device("cpu"))
