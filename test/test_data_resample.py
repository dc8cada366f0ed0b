"""The one resampler: sparse modalities never get values that were not measured."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mlesam_ros.data.resample import (
    _resize_sparse_windows,
    _shrink_sparse_by_blocks,
    area_resize,
    nearest_resize,
    nearest_upsample,
    repeat_counts,
    resample_mode,
    resize_image,
    resize_sparse,
    resize_with_holes,
    whole_shrink,
    window_bounds,
)
from mlesam_ros.data.transforms import resize


def _sparse(shape: tuple[int, int], density: float, seed: int) -> np.ndarray:
    """A LiDAR-like image: random 3-channel returns (1..255) at ``density``, 0 elsewhere."""
    rng = np.random.default_rng(seed)
    image = rng.integers(1, 256, (*shape, 3)).astype(np.uint8)
    image[rng.random(shape) >= density] = 0
    return image


def _windows(in_shape, out_shape):
    rows = window_bounds(out_shape[0], in_shape[0])
    cols = window_bounds(out_shape[1], in_shape[1])
    for i in range(out_shape[0]):
        for j in range(out_shape[1]):
            yield i, j, slice(rows[0][i], rows[1][i]), slice(cols[0][j], cols[1][j])


@pytest.mark.parametrize("out_shape", [(32, 32), (48, 40), (21, 37), (96, 100)])
@pytest.mark.parametrize("density", [0.05, 0.5])
def test_sparse_resize_outputs_only_pixels_of_its_input_window(out_shape, density) -> None:
    image = _sparse((64, 64), density, seed=out_shape[0])
    out = resize_sparse(image, out_shape)
    assert out.shape == (*out_shape, 3) and out.dtype == np.uint8
    for i, j, rows, cols in _windows(image.shape[:2], out_shape):
        window = image[rows, cols].reshape(-1, 3)
        valid = window[window.any(axis=1)]
        if not len(valid):
            assert not out[i, j].any()
            continue
        # A whole measured pixel (all three channels from the same return), never a blend,
        # and a footprint holding a return is never emptied.
        assert (valid == out[i, j]).all(axis=1).any(), (i, j, out[i, j])


def test_issue_example_lidar_of_value_200_stays_200() -> None:
    import cv2

    image = np.zeros((64, 64, 3), np.uint8)
    image[np.random.default_rng(0).random((64, 64)) < 0.05] = 200
    blended = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    assert set(np.unique(blended)) - {0, 200}  # what area interpolation invents (50, 100, ...)
    assert set(np.unique(resize_sparse(image, (32, 32)))) == {0, 200}


def test_holes_average_only_valid_pixels() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, 0] = 100
    image[0, 1] = 50  # the 2x2 footprint of output (0, 0) holds 100, 50 and two holes
    image[2:, 2:] = 30
    out = resize_with_holes(image, (2, 2))
    assert out[0, 0].tolist() == [75, 75, 75]  # not (100 + 50) / 4 = 37.5
    assert not out[0, 1].any() and not out[1, 0].any()  # only holes: stays a hole
    assert out[1, 1].tolist() == [30, 30, 30]
    big = resize_with_holes(image, (8, 8))
    assert not big[7, 0].any() and big[0, 0].any()  # enlarging keeps holes where they were


def test_resize_treats_each_modality_its_own_way() -> None:
    rng = np.random.default_rng(3)
    dense = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    lidar = _sparse((48, 64), 0.1, seed=4)
    sample = {"images": np.stack([dense, lidar]), "present": np.ones(2, bool),
              "labels": np.zeros((48, 64), np.int64)}  # fmt: skip
    out = resize(sample, (24, 32), ("rgb", "lidar"))
    np.testing.assert_array_equal(out["images"][1], resize_sparse(lidar, (24, 32)))
    np.testing.assert_array_equal(out["images"][0],
                                  cv2.resize(dense, (32, 24), interpolation=cv2.INTER_AREA))
    assert [resample_mode(m) for m in ("rgb", "thermal", "depth", "lidar", "event")] == [
        "dense", "dense", "holes", "sparse", "sparse"]  # fmt: skip
    with pytest.raises(ValueError, match="modalities: 1 names for 2 images"):
        resize(sample, (24, 32), ("rgb",))


@pytest.mark.parametrize("factors", [(2, 2), (3, 3), (2, 3), (4, 1), (1, 2)])
@pytest.mark.parametrize("density", [0.02, 0.3, 0.95])
@pytest.mark.parametrize("channels", [3, None])
def test_whole_block_shrink_equals_the_window_scan(factors, density, channels) -> None:
    image = _sparse((24, 36), density, seed=factors[0] * 10 + factors[1])
    # Ties on purpose: few distinct values, so equal candidates meet in a block.
    image = (image // 64) * 64
    if channels is None:
        image = image[:, :, 0]
    fy, fx = factors
    fast = _shrink_sparse_by_blocks(image, fy, fx)
    reference = _resize_sparse_windows(image.reshape(24, 36, -1), (24 // fy, 36 // fx))
    np.testing.assert_array_equal(fast, reference.reshape(fast.shape))
    if fy > 1 and fx > 1:  # resize_sparse takes the block path for these
        np.testing.assert_array_equal(resize_sparse(image, (24 // fy, 36 // fx)), fast)


def test_resize_takes_the_modalities_from_the_sample_by_default() -> None:
    """``resize(sample, size)`` of a sample that names its modalities: LiDAR stays sparse."""
    lidar = np.zeros((64, 64, 3), np.uint8)
    lidar[::2, ::2] = 200  # a return on every other pixel, nothing between them
    sample = {"images": lidar[None], "present": np.ones(1, bool), "modalities": ("lidar",)}
    shrunk = resize(sample, (32, 32))["images"][0]
    assert set(np.unique(shrunk)) == {200}  # one real return per pixel, no 50s or 100s
    assert set(np.unique(resize(sample, (48, 48))["images"][0])) <= {0, 200}


def test_resize_without_modality_names_refuses_to_guess() -> None:
    sample = {"images": np.zeros((2, 8, 8, 3), np.uint8), "present": np.ones(2, bool)}
    with pytest.raises(ValueError, match="modalities: resize needs the images' modality names"):
        resize(sample, (4, 4))
    dense = resize(sample, (4, 4), (None, None))  # dense by choice, named so
    assert dense["images"].shape == (2, 4, 4, 3)


def test_nearest_resize_samples_pixel_centres() -> None:
    labels = np.arange(12, dtype=np.int64).reshape(3, 4)
    np.testing.assert_array_equal(nearest_resize(labels, (3, 4)), labels)
    np.testing.assert_array_equal(nearest_resize(labels, (6, 8))[::2, ::2], labels)
    np.testing.assert_array_equal(nearest_resize(nearest_resize(labels, (6, 8)), (3, 4)), labels)
    np.testing.assert_array_equal(nearest_resize(labels, (1, 2)), [[5, 7]])  # the centres


def test_area_resize_is_one_area_step_for_whole_factors() -> None:
    image = np.random.default_rng(1).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    direct = cv2.resize(image, (128, 96), interpolation=cv2.INTER_AREA)
    # 768x1024 -> 384x512 -> 192x256 (exact 2x2 means) -> 96x128: within a rounding per step.
    assert np.abs(area_resize(image, (96, 128)).astype(int) - direct).max() <= 2
    assert area_resize(image, (768, 1024)) is image


def test_whole_shrink_factors() -> None:
    assert whole_shrink((192, 256), (96, 128)) == (2, 2)
    assert whole_shrink((96, 128), (96, 128)) == (1, 1)
    assert whole_shrink((240, 320), (96, 128)) is None
    assert whole_shrink((48, 64), (96, 128)) is None


def test_lidar_resize_never_mixes_in_empty_pixels() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, 0] = (200, 100, 50)  # one return in the top-left 2x2 block
    image[2:, 2:] = 10  # a full block
    out = resize_image(image, (2, 2), "lidar")
    np.testing.assert_array_equal(out[0, 0], (200, 100, 50))  # not dimmed to a quarter
    np.testing.assert_array_equal(out[1, 1], (10, 10, 10))
    assert not out[0, 1].any() and not out[1, 0].any()  # empty stays empty
    grown = resize_image(image, (8, 8), "lidar")  # growing samples, never interpolates
    assert set(np.unique(grown)) <= set(np.unique(image))


def test_label_upsampling_equals_pixel_centre_nearest() -> None:
    labels = np.random.default_rng(0).integers(0, 300, (96, 128)).astype(np.uint16)
    for size in ((1080, 1920), (240, 320), (50, 70)):
        counts = (repeat_counts(96, size[0]), repeat_counts(128, size[1]))
        np.testing.assert_array_equal(nearest_upsample(labels, counts),
                                      nearest_resize(labels, size))  # fmt: skip
