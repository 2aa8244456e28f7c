"""Mask processing for stage 2: dilation, feathering, compositing, resizing (no torch)."""

import numpy as np
import pytest

from generation.masking import (
    composite,
    dilate_masks,
    feather_alpha,
    fit_to_area,
    resize_frames,
    resize_masks,
)


def test_dilation_grows_a_pixel_into_a_kernel_sized_square():
    mask = np.zeros((2, 60, 60), bool)
    mask[0, 30, 30] = True
    out = dilate_masks(mask, 24)
    ys, xs = np.nonzero(out[0])
    assert out[0].sum() == 24 * 24
    assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (24, 24)
    assert ys.min() <= 30 <= ys.max() and xs.min() <= 30 <= xs.max()
    assert not out[1].any()
    assert np.array_equal(dilate_masks(mask, 0), mask)       # 0: unchanged
    assert dilate_masks(mask[0], 3).shape == (60, 60)        # single frame in, single frame out


def test_feather_is_zero_outside_ramps_inside_and_one_in_the_core():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 5:35] = True
    alpha = feather_alpha(mask, 8)
    assert alpha.dtype == np.float32
    assert np.all(alpha[~mask] == 0.0)
    assert alpha[20, 20] == 1.0                              # 10 px from the edge
    row = alpha[20, 5:21]                                    # from the left edge inward
    assert np.all(np.diff(row) >= 0) and 0 < row[0] < 0.2 and row[-1] == 1.0
    assert np.array_equal(feather_alpha(mask, 0), mask.astype(np.float32))
    assert np.all(feather_alpha(np.ones((5, 5), bool), 8) == 1.0)


def test_composite_leaves_pixels_outside_the_mask_unchanged():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    generated = rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    mask = np.zeros((3, 32, 48), bool)
    mask[:, 8:30, 10:40] = True
    alpha = feather_alpha(dilate_masks(mask, 4), 3)
    out = composite(original, generated, alpha)
    outside = alpha == 0
    assert outside.any() and np.array_equal(out[outside], original[outside])
    core = alpha == 1
    assert core.any() and np.array_equal(out[core], generated[core])
    edge = (alpha > 0) & (alpha < 1)
    expected = np.rint(original[edge] * (1 - alpha[edge, None]) + generated[edge] * alpha[edge, None])
    assert np.array_equal(out[edge], expected.astype(np.uint8))


def test_composite_checks_shapes():
    with pytest.raises(ValueError):
        composite(np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 4, 5, 3), np.uint8), np.zeros((2, 4, 4)))


def test_resize_masks_stays_binary_and_frames_keep_dtype():
    mask = np.zeros((2, 48, 80), bool)
    mask[:, 10:40, 20:60] = True
    small = resize_masks(mask, (40, 24))
    assert small.shape == (2, 24, 40) and small.dtype == bool
    assert small[:, 5:20, 10:30].all() and not small[:, :4].any()
    frames = np.full((2, 48, 80, 3), 200, np.uint8)
    assert resize_frames(frames, (96, 64)).shape == (2, 64, 96, 3)
    assert resize_frames(frames, (40, 24)).dtype == np.uint8


@pytest.mark.parametrize("size, area, expected", [
    ((1920, 1080), 1920 * 1088, (1920, 1072)),
    ((1280, 720), 1920 * 1088, (1280, 720)),
    ((3840, 2160), 1920 * 1088, (1920, 1072)),
    ((100, 70), 96 * 64, (80, 64)),
])
def test_fit_to_area_keeps_multiples_of_16_under_the_cap(size, area, expected):
    w, h = fit_to_area(*size, area)
    assert (w, h) == expected and w % 16 == 0 and h % 16 == 0 and w * h <= area
