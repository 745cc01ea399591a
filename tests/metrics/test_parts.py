"""Region and part-hit computations against the reference's formulas and edge cases."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from protoviz.errors import ConfigError
from protoviz.metrics.parts import (
    merge_matrix,
    merge_parts,
    part_hits,
    peak_locations,
    prototype_classes,
    scaled_half_size,
    select_pairs,
)
from tests.conftest import make_tiny_model


def test_half_size_is_scaled_from_224_and_rounded_half_up() -> None:
    assert scaled_half_size(36, (224, 224)) == (36, 36)
    assert scaled_half_size(36, (64, 128)) == (10, 21)  # 10.29 -> 10, 20.57 -> 21
    assert scaled_half_size(14, (16, 16)) == (1, 1)  # 1.0
    assert scaled_half_size(7, (16, 16)) == (1, 1)  # 0.5 rounds up
    with pytest.raises(ConfigError):
        scaled_half_size(-1, (224, 224))


@pytest.mark.parametrize("shape, size", [((7, 7), (224, 224)), ((4, 4), (64, 64)), ((14, 14), (224, 224)),
                                         ((5, 9), (60, 100))])
def test_peaks_equal_cv2_and_numpy_argmax_on_random_maps(shape: tuple[int, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    maps = (rng.standard_normal((40, *shape)) * 3).astype(np.float32)
    ours = peak_locations(torch.from_numpy(maps), size).numpy()
    for m, (r, c) in zip(maps, ours):
        up = cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        assert np.unravel_index(np.argmax(up), up.shape) == (r, c)


def test_all_equal_map_peaks_at_origin_and_ties_go_to_first_in_row_major() -> None:
    flat = torch.full((2, 7, 7), 1.0)
    flat[1] = 3.7  # OpenCV's float32 sums perturb this plateau; the exact values are all equal
    assert peak_locations(flat, (224, 224)).tolist() == [[0, 0], [0, 0]]
    up = cv2.resize(flat[0].numpy(), (224, 224), interpolation=cv2.INTER_CUBIC)
    assert np.unravel_index(np.argmax(up), up.shape) == (0, 0)
    ties = torch.zeros(1, 7, 7)
    ties[0, 4, 1] = ties[0, 1, 4] = ties[0, 4, 4] = 5.0  # three identical interior peaks
    r, c = peak_locations(ties, (224, 224))[0].tolist()
    assert 32 <= r < 64 and 128 <= c < 160  # the peak of cell (1, 4), first in row-major order


def test_region_is_inclusive_and_clamped_to_the_image_size() -> None:
    peaks = torch.tensor([[100, 100], [100, 100], [200, 200], [10, 10]])
    parts = torch.tensor([
        [[64.0, 136.0, 1.0], [64.0, 137.0, 1.0], [63.0, 100.0, 1.0]],  # edges: inside, below, left of box
        [[136.0, 64.0, 1.0], [100.0, 100.0, 0.0], [137.0, 100.0, 1.0]],  # inside, invisible, right of box
        [[224.0, 224.0, 1.0], [236.0, 200.0, 1.0], [200.0, 164.0, 1.0]],  # upper bound is 224, not 236
        [[0.0, 0.0, 1.0], [46.0, 46.0, 1.0], [47.0, 0.0, 1.0]],
    ])
    hits = part_hits(peaks, parts, (36, 36), (224, 224))
    assert hits.tolist() == [[True, False, False], [True, False, False], [True, False, True], [True, True, False]]


def test_left_right_merge() -> None:
    names = ("back", "left eye", "right eye", "beak", "Left wing", "right wing")
    matrix, merged = merge_matrix(names)
    assert merged == ("back", "eye", "beak", "wing")
    hits = torch.tensor([[False, True, False, False, False, True], [False, False, False, False, False, False]])
    assert merge_parts(hits, matrix).tolist() == [[False, True, False, True], [False, False, False, False]]
    assert merge_matrix(("head", "beak"))[1] == ("head", "beak")


def test_prototype_classes_specific_and_shared() -> None:
    model = make_tiny_model(classes=3, per_class=2)
    relevance = prototype_classes(model)
    assert relevance.tolist() == model.prototype_class_identity.bool().tolist()
    with torch.no_grad():
        model.class_identity[0] = torch.tensor([1.0, 1.0, 0.0])  # shared between classes 0 and 1
        model.last_layer.weight[:, 0] = torch.tensor([0.5, -0.1, 2.0])
    assert prototype_classes(model)[0].tolist() == [True, False, True]  # positive weights decide
    image_idx, proto_idx = select_pairs(torch.tensor([2, 0]), prototype_classes(model))
    assert list(zip(image_idx.tolist(), proto_idx.tolist())) == [(0, 0), (0, 4), (0, 5), (1, 0), (1, 1)]


def test_upsampling_matches_opencv_values() -> None:
    from protoviz.metrics.parts import first_argmax, upsample_bicubic

    maps = torch.from_numpy(np.random.default_rng(2).standard_normal((6, 7, 5)).astype(np.float32))
    ours = upsample_bicubic(maps, (50, 90)).numpy()
    for m, up in zip(maps.numpy(), ours):
        np.testing.assert_allclose(up, cv2.resize(m, (90, 50), interpolation=cv2.INTER_CUBIC), atol=1e-5)
    flat = torch.from_numpy(ours).flatten(1).argmax(1)
    assert first_argmax(torch.from_numpy(ours)).tolist() == [[int(i) // 90, int(i) % 90] for i in flat]
