"""Local Delta: analytic hue model, one shared forward, same-location read-out, region-only perturbation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.data.transforms import preprocess
from protoviz.errors import ConfigError
from protoviz.explain import ExplainConfig, explain_images, top_prototype
from protoviz.explain.local import high_activation_masks, values_at
from protoviz.explain.modifications_reference import reference_operations
from protoviz.explain.params import CHARACTERISTICS, ModificationParams
from tests.conftest import make_tiny_model
from tests.explain.analytic import HueModel, hue_vector, log_sim

PROTOTYPE_HUES = [0.02, 0.3, 0.6]


def _red(size: int = 64) -> Image.Image:
    return Image.new("RGB", (size, size), (255, 0, 0))


def _expected_hue_delta(image_hue: float, shifted_hue: float, prototype_hue: float) -> float:
    """The spec's Delta = s(x) - s(x_m) with the log similarity of the squared distance, by hand."""
    before = float(((hue_vector(image_hue) - hue_vector(prototype_hue)) ** 2).sum())
    after = float(((hue_vector(shifted_hue) - hue_vector(prototype_hue)) ** 2).sum())
    return log_sim(before) - log_sim(after)


@pytest.mark.parametrize("mode, rel", [("reference", 1e-2), ("fast", 1e-4)])
def test_hue_only_model_matches_the_formula(mode: str, rel: float) -> None:
    model = HueModel(PROTOTYPE_HUES).eval()
    local = explain_images(model, [_red()], ExplainConfig(mode=mode))
    deltas = local.deltas[0].numpy()  # (M, P)
    hue_row = deltas[local.characteristics.index("hue")]
    expected = [_expected_hue_delta(0.0, 25 / 256, p) for p in PROTOTYPE_HUES]
    # reference: PIL rounds the shifted colour to uint8, so the shifted hue is 25/256 up to 1/1530
    assert hue_row == pytest.approx(expected, rel=rel, abs=1e-3)
    assert hue_row[0] > 1.0 and hue_row[1] < 0  # moving away lowers, moving toward raises the similarity
    others = np.delete(deltas, local.characteristics.index("hue"), axis=0)
    assert np.abs(others).max() < 1e-3 * np.abs(hue_row).max()  # hue-invariant characteristics give ~0


def test_delta_reads_the_modified_map_at_the_original_best_location() -> None:
    model = make_tiny_model(seed=1)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (80, 70, 3), dtype=np.uint8)) for _ in range(2)]
    config = ExplainConfig(mode="reference")
    local = explain_images(model, images, config)
    with torch.no_grad():
        original = model(preprocess(images, model.input_spec)).similarity_maps
        for m, name in enumerate(config.characteristics):
            changed = [reference_operations(config.params)[name](im) for im in images]
            maps = model(preprocess(changed, model.input_spec)).similarity_maps
            for b in range(2):
                for j in range(model.num_prototypes):
                    flat = original[b, j].flatten()
                    index = int(torch.nonzero(flat == flat.max())[0])  # first maximum, row-major
                    expected = float(flat[index] - maps[b, j].flatten()[index])
                    assert float(local.deltas[b, m, j]) == pytest.approx(expected, abs=2e-5)
                    assert tuple(local.locations[b, j].tolist()) == divmod(index, original.shape[-1])


def test_all_images_share_the_forward_passes() -> None:
    """The originals and all their modified versions go through the model together: on the CPU in 1 + M
    forwards of B images (cheaper per image there than one forward of (1 + M) B), elsewhere in one."""
    model = make_tiny_model()
    calls: list[int] = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    images = [_red(50), Image.new("RGB", (64, 40), (0, 200, 30)), _red(70)]
    local = explain_images(model, images, ExplainConfig(mode="fast"))
    assert calls == [3] * (1 + len(CHARACTERISTICS))
    assert local.deltas.shape == (3, 6, model.num_prototypes)


def test_values_at_takes_the_first_maximum() -> None:
    maps = torch.zeros(1, 1, 2, 3)
    maps[0, 0, 0, 2] = 1.0
    maps[0, 0, 1, 0] = 1.0
    index = maps.flatten(-2).argmax(dim=-1)
    assert int(index) == 2
    assert float(values_at(maps, index)[0, 0]) == 1.0


def test_region_only_perturbation_on_a_local_model() -> None:
    """The hue model's cell only sees its own 16x16 pixels: modifying only outside the box leaves the
    similarity at the best location unchanged; inside the box equals the whole-image change."""
    model = HueModel([0.0]).eval()
    pixels = np.full((64, 64, 3), (40, 90, 200), dtype=np.uint8)  # blue background
    pixels[16:32, 32:48] = (255, 0, 0)  # one red cell, the prototype's best location
    image = Image.fromarray(pixels)
    results = {r: explain_images(model, [image], ExplainConfig(mode="fast", region=r), prototypes=[0])
               for r in ("whole", "inside", "outside")}
    assert tuple(results["inside"].locations[0, 0].tolist()) == (1, 2)
    box = results["inside"].boxes[0, 0].tolist()
    assert box[0] <= 16 and box[1] >= 32 and box[2] <= 32 and box[3] >= 48
    hue = CHARACTERISTICS.index("hue")
    assert float(results["whole"].deltas[0, hue, 0]) > 1.0
    whole = float(results["whole"].deltas[0, hue, 0])
    assert float(results["inside"].deltas[0, hue, 0]) == pytest.approx(whole, rel=1e-4)
    assert abs(float(results["outside"].deltas[0, hue, 0])) < 1e-4


def test_high_activation_masks_match_boxes() -> None:
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0, 1, 2] = 5.0
    maps[0, 1, 3, 0] = 5.0
    boxes, masks = high_activation_masks(maps, (32, 32), 95.0)
    assert masks.shape == (1, 2, 1, 32, 32)
    for k in range(2):
        y0, y1, x0, x1 = boxes[0, k].tolist()
        assert int(masks[0, k, 0].sum()) == (y1 - y0) * (x1 - x0)


def test_top_prototype_and_errors() -> None:
    model = HueModel([0.0, 0.5, 0.1, 0.7]).eval()  # prototypes 0, 2 -> class a; 1, 3 -> class b
    local = explain_images(model, [_red()], ExplainConfig())
    assert top_prototype(model, local.similarities[0], 0) == 0
    assert top_prototype(model, local.similarities[0], 1) == 3  # hue 0.7 is nearer to red (0.0) than 0.5
    with pytest.raises(ConfigError):
        top_prototype(model, local.similarities[0], 5)
    with pytest.raises(ConfigError):
        explain_images(model, [], ExplainConfig())
    with pytest.raises(ConfigError):
        explain_images(model, [_red()], ExplainConfig(), prototypes=[9])
    with pytest.raises(ConfigError):
        ExplainConfig(mode="slow")
    assert ModificationParams().to_dict()["contrast"] == 0.45
