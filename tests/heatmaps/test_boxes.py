"""The 95th-percentile box: batched torch version against ProtoPNet's numpy formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protoviz.heatmaps.boxes import batched_percentile, map_argmax, percentile_box, percentile_boxes


def reference_box(activation: np.ndarray, percentile: float = 95) -> tuple[int, int, int, int]:
    """ProtoPNet's find_high_activation_crop, written out literally."""
    threshold = np.percentile(activation, percentile)
    mask = np.ones(activation.shape)
    mask[activation < threshold] = 0
    lower_y, upper_y, lower_x, upper_x = 0, 0, 0, 0
    for i in range(mask.shape[0]):
        if np.amax(mask[i]) > 0.5:
            lower_y = i
            break
    for i in reversed(range(mask.shape[0])):
        if np.amax(mask[i]) > 0.5:
            upper_y = i
            break
    for j in range(mask.shape[1]):
        if np.amax(mask[:, j]) > 0.5:
            lower_x = j
            break
    for j in reversed(range(mask.shape[1])):
        if np.amax(mask[:, j]) > 0.5:
            upper_x = j
            break
    return lower_y, upper_y + 1, lower_x, upper_x + 1


def test_known_box() -> None:
    activation = np.zeros((10, 12))
    activation[2:5, 7:10] = 1.0
    assert percentile_box(activation, 95) == (2, 5, 7, 10)
    assert percentile_boxes(torch.from_numpy(activation), 95).tolist() == [2, 5, 7, 10]


@pytest.mark.parametrize("percentile", [95.0, 50.0, 99.9, 0.0, 100.0])
@pytest.mark.parametrize("shape", [(224, 224), (64, 48), (7, 7)])
def test_batched_matches_numpy_formula(shape: tuple[int, int], percentile: float) -> None:
    generator = torch.Generator().manual_seed(1)
    maps = torch.rand(3, 4, *shape, generator=generator, dtype=torch.float64) ** 3
    boxes = percentile_boxes(maps, percentile)
    assert boxes.shape == (3, 4, 4)
    for b in range(3):
        for p in range(4):
            expected = reference_box(maps[b, p].numpy(), percentile)
            assert percentile_box(maps[b, p].numpy(), percentile) == expected
            assert tuple(boxes[b, p].tolist()) == expected


def test_batched_percentile_equals_numpy_with_ties() -> None:
    values = torch.tensor([[1.0, 1.0, 2.0, 2.0, 2.0, 7.0, 7.0], [0.1, 0.5, 0.5, 0.2, 0.9, 0.9, 0.9]])
    for q in (0.0, 12.5, 50.0, 95.0, 100.0):
        expected = np.percentile(values.numpy(), q, axis=1)
        np.testing.assert_array_equal(batched_percentile(values, q).numpy(), expected)


def test_float32_upsampled_maps_match_numpy() -> None:
    torch.manual_seed(3)
    maps = torch.nn.functional.interpolate(torch.rand(2, 5, 7, 7), size=(224, 224), mode="bicubic")
    boxes = percentile_boxes(maps)
    for b in range(2):
        for p in range(5):
            assert tuple(boxes[b, p].tolist()) == percentile_box(maps[b, p].numpy())


def test_map_argmax() -> None:
    maps = torch.zeros(2, 3, 4, 5)
    maps[0, 1, 3, 2] = 1
    maps[1, 2, 0, 4] = 1
    locations = map_argmax(maps)
    assert locations[0, 1].tolist() == [3, 2]
    assert locations[1, 2].tolist() == [0, 4]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_boxes_equal_cpu_boxes() -> None:
    maps = torch.rand(4, 6, 224, 224, generator=torch.Generator().manual_seed(4)) ** 2
    torch.testing.assert_close(percentile_boxes(maps.cuda()).cpu(), percentile_boxes(maps))
