"""The published characteristics path against Nauta et al.'s formulas plus the stated on-disk round trip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance

from protoviz.data.transforms import preprocess
from protoviz.explain import ExplainConfig, explain_dataset
from protoviz.explain.params import CHARACTERISTICS
from tests.conftest import make_tiny_model
from tests.explain.test_modifications import _image


def _written_like_the_reference(image: Image.Image, name: str, folder: Path) -> Image.Image:
    """create_modified_datasets.py, written out by hand: PIL transforms saved with Image.save, the texture
    and shape variants made with OpenCV on the BGR image and saved with cv2.imwrite; read back with PIL."""
    path = folder / f"{name}.jpg"
    bgr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
    if name == "texture":
        cv2.imwrite(str(path), cv2.fastNlMeansDenoisingColored(bgr, None, templateWindowSize=7, searchWindowSize=21,
                                                               h=4, hColor=4))
    elif name == "shape":
        img = bgr.copy()
        shift = lambda x: 4 * np.sin(np.pi * x * 0.05)
        for i in range(img.shape[0]):
            img[i, :, :] = np.roll(img[i, :, :], int(shift(i)), axis=0)
        for i in range(img.shape[1]):
            img[:, i, :] = np.roll(img[:, i, :], int(shift(i)), axis=0)
        cv2.imwrite(str(path), img)
    else:
        h, s, v = image.convert("HSV").split()
        hue = np.asarray(h, dtype=np.uint8) + np.uint8(0.1 * 255)
        changed = {"contrast": lambda: ImageEnhance.Contrast(image).enhance(0.45),
                   "saturation": lambda: ImageEnhance.Color(image).enhance(0.7),
                   "brightness": lambda: ImageEnhance.Brightness(image).enhance(0.8),
                   "hue": lambda: Image.merge("HSV", (Image.fromarray(hue, "L"), s, v)).convert("RGB")}[name]()
        changed.save(path)
    return Image.open(path).convert("RGB")


def test_published_global_importance_is_the_weighted_formula_on_reread_images(tmp_path: Path) -> None:
    model = make_tiny_model().eval()
    images = [_image(11, (70, 58)), _image(12, (64, 64)), _image(13, (50, 77))]
    result = explain_dataset(model, images, ExplainConfig(mode="reference", path="published"), batch_size=2)
    weighted = np.zeros((model.num_prototypes, len(CHARACTERISTICS)))
    weights = np.zeros(model.num_prototypes)
    with torch.no_grad():
        for k, image in enumerate(images):
            original = model.similarity_maps(preprocess([image], model.input_spec))[0].flatten(1).double()  # (P, hw)
            where = original.argmax(dim=1)
            s = original.gather(1, where[:, None])[:, 0]
            for m, name in enumerate(CHARACTERISTICS):
                folder = tmp_path / str(k)
                folder.mkdir(exist_ok=True)
                changed = _written_like_the_reference(image, name, folder)
                maps = model.similarity_maps(preprocess([changed], model.input_spec))[0].flatten(1).double()
                weighted[:, m] += (s * (s - maps.gather(1, where[:, None])[:, 0])).numpy()
            weights += s.numpy()
    expected = weighted / weights[:, None]
    np.testing.assert_allclose(result.importance, expected, rtol=1e-4, atol=1e-6)
    clean = explain_dataset(model, images, ExplainConfig(mode="reference", path="clean"), batch_size=2)
    assert not np.allclose(clean.importance, expected, rtol=1e-4, atol=1e-6)  # the round trip matters
