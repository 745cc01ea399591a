"""Safe decoding of awkward image files: each either decodes correctly or raises a clear ImageError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.data.images import ImageLimits, load_image, to_rgb
from protoviz.data.transforms import denormalize, normalize, preprocess, to_uint8_image
from protoviz.errors import ImageError
from protoviz.models.base import InputSpec


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 40, height: int = 30) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 90)], axis=2)
    return Image.fromarray(rgb.astype(np.uint8))


def test_rgb_png_round_trip_from_path_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    gradient().save(path)
    from_path = load_image(path)
    from_bytes = load_image(path.read_bytes(), name="ok.png")
    assert from_path.mode == "RGB" and from_path.size == (40, 30)
    np.testing.assert_array_equal(np.asarray(from_path), np.asarray(gradient()))
    np.testing.assert_array_equal(np.asarray(from_bytes), np.asarray(from_path))


def test_non_image_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageError, match="notes.txt: not an image"):
        load_image(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_a_clear_error(fmt: str) -> None:
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    data = encode(noisy, fmt)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2], name=f"cut.{fmt.lower()}")


def test_one_pixel_image_decodes_and_preprocesses() -> None:
    image = load_image(encode(Image.new("RGB", (1, 1), (10, 200, 30))), name="dot.png")
    assert image.size == (1, 1)
    batch = preprocess([image], InputSpec(image_size=(64, 64)))
    assert batch.shape == (1, 3, 64, 64) and torch.isfinite(batch).all()
    shown = to_uint8_image(denormalize(batch, InputSpec(image_size=(64, 64)))[0])
    assert tuple(shown[32, 32]) == (10, 200, 30)


def test_greyscale_becomes_three_equal_channels() -> None:
    grey = Image.fromarray(np.arange(0, 240, dtype=np.uint8).reshape(12, 20), mode="L")
    rgb = np.asarray(load_image(encode(grey), name="grey.png"))
    assert rgb.shape == (12, 20, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], np.asarray(grey))


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    rgb = np.asarray(load_image(encode(Image.fromarray(rgba, mode="RGBA")), name="alpha.png"))
    assert tuple(rgb[0, 0]) == (200, 0, 0)
    assert tuple(rgb[3, 3]) == (255, 255, 255)


def test_sixteen_bit_greyscale_is_rescaled_to_its_range() -> None:
    values = np.linspace(1000, 50000, 8 * 8).reshape(8, 8).astype(np.uint16)
    sixteen = Image.fromarray(values)  # mode I;16
    data = encode(sixteen)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    rgb = np.asarray(load_image(data, name="deep.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    assert np.all(np.diff(rgb[..., 0].reshape(-1).astype(int)) >= 0)


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    rgb = np.asarray(load_image(encode(cmyk, "JPEG", quality=95), name="print.jpg"))
    assert rgb.shape == (16, 16, 3)
    red, green, blue = rgb[8, 8].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (60, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    upright = np.asarray(load_image(data, name="phone.jpg"))
    assert upright.shape == (60, 20, 3)  # width and height swapped
    top_red = upright[:5, :, 0].mean()
    assert top_red > 200 and upright[-5:, :, 0].mean() < 60  # stored left strip is now at the top


def test_palette_with_transparency() -> None:
    palette = Image.new("P", (6, 6), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 1
    rgb = np.asarray(load_image(encode(palette, transparency=1), name="palette.png"))
    assert tuple(rgb[0, 0]) == (255, 255, 255)


def test_huge_image_is_refused_before_decoding() -> None:
    """20000 x 20000 (400 megapixels), stored cheaply as a 1-bit PNG."""
    data = encode(Image.new("1", (20000, 20000)), optimize=True)
    assert len(data) < 5_000_000
    with pytest.raises(ImageError, match="huge.png: image is too large"):
        load_image(data, name="huge.png")


def test_limits_are_configurable() -> None:
    data = encode(gradient(40, 30))
    with pytest.raises(ImageError, match="megapixels"):
        load_image(data, limits=ImageLimits(max_pixels=100))
    with pytest.raises(ImageError, match="MB"):
        load_image(data, limits=ImageLimits(max_bytes=10))
    with pytest.raises(ImageError, match="at least 50"):
        load_image(data, limits=ImageLimits(min_side=50))


def test_float_image_mode() -> None:
    floats = Image.fromarray(np.array([[0.0, 0.5], [1.0, 2.0]], dtype=np.float32), mode="F")
    rgb = np.asarray(to_rgb(floats))
    assert rgb[0, 0, 0] == 0 and rgb[1, 1, 0] == 255


def test_normalize_round_trip() -> None:
    spec = InputSpec(image_size=(8, 8))
    unit = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(denormalize(normalize(unit, spec), spec), unit)


ALLOWED = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")


@pytest.mark.parametrize("fmt", ALLOWED)
def test_every_promised_format_decodes(fmt: str) -> None:
    image = load_image(encode(gradient(), fmt), name=f"x.{fmt.lower()}")
    assert image.mode == "RGB" and image.size == (40, 30)


@pytest.mark.parametrize("fmt", ["EPS", "ICO", "PPM", "TGA", "PCX", "SGI", "IM", "MSP", "XBM", "PDF"])
def test_other_formats_are_never_decoded(fmt: str) -> None:
    """EPS would start Ghostscript; every format outside the promise is refused before any decoder runs."""
    image = gradient().convert("1") if fmt in ("MSP", "XBM") else gradient()
    data = encode(image, fmt)
    with pytest.raises(ImageError, match="accepted format"):
        load_image(data, name=f"x.{fmt.lower()}")


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    rgb = np.asarray(load_image(buffer.getvalue(), name="anim.gif"))
    assert tuple(rgb[4, 4]) == (255, 0, 0)


def test_deep_images_match_the_rescaling_formula() -> None:
    """16-bit (lookup table), 32-bit and float (row chunks) equal round((v - min) * 255 / (max - min))."""
    rng = np.random.default_rng(3)
    for values, mode in ((rng.integers(300, 60000, (17, 23)).astype(np.uint16), None),
                         (rng.integers(-70000, 90000, (17, 23)).astype(np.int32), "I"),
                         (rng.normal(size=(17, 23)).astype(np.float32), "F")):
        image = Image.fromarray(values, mode=mode) if mode else Image.fromarray(values)
        v = values.astype(np.float64)
        expected = np.clip((v - v.min()) * (255.0 / (v.max() - v.min())), 0, 255).round().astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(to_rgb(image))[..., 0], expected)


def test_decoded_size_is_bounded_by_mode() -> None:
    data = encode(Image.new("RGBA", (100, 100)))
    with pytest.raises(ImageError, match="mode RGBA"):
        load_image(data, limits=ImageLimits(max_decoded_bytes=100 * 100 * 3))
    load_image(data, limits=ImageLimits(max_decoded_bytes=100 * 100 * 4))


def test_devices_and_pipes_are_refused(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        load_image("/dev/zero")
