"""Bicubic upsampling equals OpenCV's INTER_CUBIC (ProtoPNet's reference) within 1e-5.

OpenCV may route float resizes through Intel IPP, whose own float32 rounding differs from OpenCV's
reference code by up to ~1e-5; the reference path (IPP off) is the one compared at 1e-5.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import torch

from protoviz.errors import ConfigError
from protoviz.heatmaps.upsample import cubic_weights, upsample_maps


@pytest.fixture(autouse=True)
def opencv_reference_path() -> Iterator[None]:
    previous = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    yield
    cv2.ipp.setUseIPP(previous)


@pytest.mark.parametrize(("small", "large"), [((7, 7), (224, 224)), ((4, 4), (64, 64)), ((8, 8), (128, 128)),
                                              ((5, 9), (80, 100)), ((14, 3), (50, 200)), ((6, 6), (4, 5))])
def test_matches_cv2_inter_cubic(small: tuple[int, int], large: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    maps = (rng.normal(size=(2, 3, *small)) * 4).astype(np.float32)
    out = upsample_maps(torch.from_numpy(maps), large).numpy()
    assert out.shape == (2, 3, *large)
    for b in range(2):
        for p in range(3):
            reference = cv2.resize(maps[b, p], (large[1], large[0]), interpolation=cv2.INTER_CUBIC)
            np.testing.assert_allclose(out[b, p], reference, atol=1e-5, rtol=0)


def test_borders_match_cv2_on_a_spike_at_the_corner() -> None:
    spike = np.zeros((7, 7), np.float32)
    spike[0, 0] = 1.0
    spike[6, 3] = -2.0
    out = upsample_maps(torch.from_numpy(spike), (224, 224)).numpy()
    reference = cv2.resize(spike, (224, 224), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(out, reference, atol=1e-5, rtol=0)
    # overshoot near the spike is the cubic kernel's signature, not a bug
    assert out.max() > 1.0


def test_similarity_range_maps_match_cv2() -> None:
    """log similarities lie in [0, log(1e4)] ~ [0, 9.2]; that is the range the app upsamples."""
    rng = np.random.default_rng(5)
    maps = rng.uniform(0, 9.2, size=(4, 7, 7)).astype(np.float32)
    out = upsample_maps(torch.from_numpy(maps)[None], (224, 224))[0].numpy()
    for p in range(4):
        reference = cv2.resize(maps[p], (224, 224), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(out[p], reference, atol=1e-5, rtol=0)


def test_weight_rows_sum_to_one() -> None:
    for in_size, out_size in ((7, 224), (3, 50), (9, 4)):
        weights = cubic_weights(in_size, out_size)
        assert weights.shape == (out_size, in_size)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)


def test_constant_map_stays_constant_and_shapes_are_kept() -> None:
    maps = torch.full((3, 4, 4), 2.5)
    out = upsample_maps(maps, (16, 12))
    assert out.shape == (3, 16, 12)
    torch.testing.assert_close(out, torch.full((3, 16, 12), 2.5))


def test_float64_stays_float64_and_rejects_bad_size() -> None:
    maps = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    assert upsample_maps(maps, (9, 9)).dtype == torch.float64
    with pytest.raises(ConfigError):
        upsample_maps(maps, (0, 9))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cv2() -> None:
    maps = np.random.default_rng(6).uniform(0, 9, size=(3, 7, 7)).astype(np.float32)
    out = upsample_maps(torch.from_numpy(maps).cuda(), (224, 224)).cpu().numpy()
    for p in range(3):
        reference = cv2.resize(maps[p], (224, 224), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(out[p], reference, atol=1e-5, rtol=0)
