"""Working grid → model input for depth, LiDAR and thermal, one compiled pass per sensor.

On the working grid (:mod:`mlesam_ros.pipeline.grid`, 2x the model input) numpy encodes a
modality in ~10 whole-grid passes (a temporary per operation, three channels each) and then
shrinks it to the model input, where three of every four encoded pixels are averaged or thrown
away. The numba loops here encode on the grid in one pass and shrink in another (or
encode-and-shrink one block at a time), keeping numpy's arithmetic, operand order and
precision (float32 where numpy computes in
float32, float64 where it promotes), so the model input is *bit-identical* to the numpy path
it replaces, which stays as the reference and as the fallback without numba (``test_fused``
compares both on random and edge-case data):

- depth: :func:`~mlesam_ros.data.encode.encode_depth` then the hole-aware area average of
  :func:`~mlesam_ros.data.resample.resize_with_holes`;
- LiDAR: the nearest-return dilation of :func:`~mlesam_ros.geometry.lidar_image.dilate_keys`
  then :func:`~mlesam_ros.data.resample.resize_sparse`, dilating only the pixels the shrink
  looks at;
- thermal: :func:`~mlesam_ros.data.encode.encode_thermal`'s grey level times the "seen" mask,
  on one channel (the three are equal) before the area resize.

Written by hand because no library fuses a per-pixel encoding with a masked resize; cv2 and
numpy would each need their full-size intermediates. Whole-number shrinks (the 2x working
grid) are compiled end to end; other sizes (a small camera used as its own grid) compile the
encoding and the LiDAR window scan, and leave depth's area weights to OpenCV.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np

from mlesam_ros.data.encode import DEFAULT_DEPTH_RANGE_M
from mlesam_ros.data.resample import (
    area_resize,
    block_rank,
    resize_image,
    resize_indices,
    whole_shrink,
    window_bounds,
)
from mlesam_ros.geometry import compiled
from mlesam_ros.geometry.compiled import numba_jit

# resize_with_holes: a footprint with a total valid weight above this is not a hole.
_MIN_WEIGHT = 1e-6


# -- depth ------------------------------------------------------------------------------------


def sample_depth(depth: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """``(grid, valid_count)``: float32 depth on a ``size`` grid, NaN where invalid.

    Nearest samples at pixel centres (never an average: a depth between an edge and the
    background behind it would be a surface that is not there); 0, NaN and inf are invalid
    (REP 118).
    """
    rows = resize_indices(depth.shape[0], size[0])
    cols = resize_indices(depth.shape[1], size[1])
    kernels = _depth_kernels()
    if kernels is None or depth.dtype != np.float32:  # (a big-endian float32 too)
        grid = np.asarray(np.take(np.take(depth, rows, axis=0), cols, axis=1), np.float32)
        valid = np.isfinite(grid) & (grid > 0)
        return np.where(valid, grid, np.float32(np.nan)), int(np.count_nonzero(valid))
    grid = np.empty(size, dtype=np.float32)
    return grid, int(kernels[0](depth, rows, cols, grid))


def depth_model_image(
    grid: np.ndarray,
    size: tuple[int, int],
    depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M,
) -> np.ndarray:
    """``resize_image(encode_depth(grid), size, "depth")``, compiled when it can.

    The encoding is always compiled (with numba); the shrink too for whole-number factors,
    other factors take ``resize_image``'s (OpenCV's) area weights.
    """
    from mlesam_ros.data.encode import encode_depth

    kernels = _depth_kernels()
    near, far = depth_range_m
    if kernels is None or not 0 < near < far or grid.dtype != np.float32 or grid.ndim != 2:
        return resize_image(encode_depth(grid, depth_range_m), size, "depth")
    clip_depth, encode, shrink = kernels[1:]
    z = np.empty_like(grid)
    clip_depth(grid, np.float32(near), np.float32(far), z)
    log_z = np.log(z / near)  # numpy's own (SIMD) float32 log, as encode_depth takes it
    codes = np.empty((3, *grid.shape), dtype=np.int16)
    # encode_depth's constants as numpy applies them: Python floats become float32 next to a
    # float32 array; np.log(far / near) is a float64 scalar and promotes the log channel.
    inverse_far, inverse_span = np.float32(1.0 / far), np.float32(1.0 / near - 1.0 / far)
    encode(grid, z, log_z, inverse_far, inverse_span, np.log(far / near), np.float32(near),
           np.float32(far - near), codes)  # fmt: skip
    factors = whole_shrink(grid.shape, size)
    if factors is None:
        if size[0] < grid.shape[0] and size[1] < grid.shape[1]:
            return _area_average_codes(codes, size)
        return resize_image(np.moveaxis(codes, 0, -1).astype(np.uint8), size, "depth")
    out = np.empty((*size, 3), dtype=np.uint8)
    fy, fx = factors
    shrink(codes, fy, fx, np.float32(1.0 / (fy * fx)), np.float32(_MIN_WEIGHT), out)
    return out


def _area_average_codes(codes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``resize_with_holes`` (shrinking) of int16 code planes, in one OpenCV call.

    The three codes and the validity weight are one 4-channel image: INTER_AREA treats
    channels alike, so this equals the two resizes of ``resize_with_holes`` (tested).
    """
    import cv2

    height, width = codes.shape[1:]
    stacked = np.empty((height, width, 4), dtype=np.float32)
    stacked[:, :, :3] = np.moveaxis(codes, 0, -1)
    stacked[:, :, 3] = codes[0] > 0
    area = cv2.resize(stacked, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    summed, weight = area[:, :, :3], area[:, :, 3:]
    averaged = summed / np.maximum(weight, np.float32(_MIN_WEIGHT))
    result = np.where(weight > np.float32(_MIN_WEIGHT), np.clip(np.rint(averaged), 1, 255), 0)
    return result.astype(np.uint8)


def _average(total, scale, weight):
    """``clip(rint(total * scale / weight), 1, 255)`` in float32."""
    value = np.rint((np.float32(total) * scale) / weight)
    return np.uint8(min(max(value, np.float32(1.0)), np.float32(255.0)))


@cache
def _depth_kernels() -> Any:
    njit = numba_jit()
    if njit is None:
        return None
    from numba.extending import register_jitable

    register_jitable(_average)  # compiled into its caller: see geometry.compiled

    @njit
    def sample(depth, rows, cols, grid):
        """Nearest samples, NaN where invalid; return how many are valid."""
        count = 0
        for i in range(rows.shape[0]):
            for j in range(cols.shape[0]):
                value = np.float32(depth[rows[i], cols[j]])
                if np.isfinite(value) and value > 0:
                    grid[i, j] = value
                    count += 1
                else:
                    grid[i, j] = np.nan
        return count

    @njit
    def clip_depth(grid, near, far, z):
        """``np.clip(np.where(valid, grid, far), near, far)`` in float32."""
        height, width = grid.shape
        for i in range(height):
            for j in range(width):
                value = grid[i, j]
                if not (np.isfinite(value) and value > 0):
                    value = far
                z[i, j] = min(max(value, near), far)

    @njit
    def encode(grid, z, log_z, inverse_far, inverse_span, log_span, near, linear_span, codes):
        """encode_depth's three codes per pixel (0 where invalid), as int16 planes.

        Inverse and linear in float32, log in float64 (numpy promotes it by a float64
        scalar), each ``1 + rint(254 * channel)`` in float64. Branch-free, so it vectorises.
        """
        one = np.float32(1.0)
        for row in range(grid.shape[0]):
            for col in range(grid.shape[1]):
                value = grid[row, col]
                keep = 1.0 if (np.isfinite(value) and value > 0) else 0.0
                zz = z[row, col]
                inverse = (one / zz - inverse_far) / inverse_span
                log = np.float64(log_z[row, col]) / log_span
                linear = (zz - near) / linear_span
                codes[0, row, col] = np.int16((np.rint(np.float64(inverse) * 254.0) + 1.0) * keep)
                codes[1, row, col] = np.int16((np.rint(log * 254.0) + 1.0) * keep)
                codes[2, row, col] = np.int16((np.rint(np.float64(linear) * 254.0) + 1.0) * keep)

    @njit
    def shrink(codes, fy, fx, scale, min_weight, out):
        """resize_with_holes of the codes, per model pixel.

        cv2's whole-factor area sum times ``1 / area`` in float32 (sums of codes are exact),
        over the valid weight, rounded, clipped to 1..255; 0 where the block has no valid pixel.
        """
        for orow in range(out.shape[0]):
            for ocol in range(out.shape[1]):
                s0, s1, s2, count = 0, 0, 0, 0
                for dy in range(fy):
                    row = orow * fy + dy
                    for dx in range(fx):
                        col = ocol * fx + dx
                        s0 += codes[0, row, col]
                        s1 += codes[1, row, col]
                        s2 += codes[2, row, col]
                        count += codes[0, row, col] > 0
                weight = np.float32(count) * scale
                if not weight > min_weight:
                    out[orow, ocol, 0] = 0
                    out[orow, ocol, 1] = 0
                    out[orow, ocol, 2] = 0
                    continue
                out[orow, ocol, 0] = _average(s0, scale, weight)
                out[orow, ocol, 1] = _average(s1, scale, weight)
                out[orow, ocol, 2] = _average(s2, scale, weight)

    return sample, clip_depth, encode, shrink


# -- LiDAR ------------------------------------------------------------------------------------


def lidar_model_image(keys: np.ndarray, radius: int, size: tuple[int, int]) -> np.ndarray:
    """``resize_image(dilate_keys(keys, radius), size, "lidar")``, in one pass when it can.

    ``keys`` are :func:`~mlesam_ros.geometry.lidar_image.projection_keys` on the working grid.
    The shrink keeps one pixel per footprint (the valid one nearest its centre), so only the
    pixels it looks at are dilated, nearest the centre first, until one has a return in reach.
    """
    from mlesam_ros.geometry.lidar_image import EMPTY_FOUND, check_dilation, dilate_keys
    from mlesam_ros.geometry.projection import EMPTY_KEY

    kernels = compiled.lidar_image_kernels()
    if kernels is None:
        return resize_image(dilate_keys(keys, radius), size, "lidar")
    check_dilation(radius)
    keys = np.ascontiguousarray(keys)
    out = np.empty((*size, 3), dtype=np.uint8)
    factors = whole_shrink(keys.shape, size)
    if factors is not None:  # blocks: one candidate order for all of them
        fy, fx = factors
        order = np.array([divmod(k, fx) for k in block_rank(fy, fx)], dtype=np.int64)
        kernels[0](keys, radius, EMPTY_KEY, EMPTY_FOUND, fy, fx, order, out)
    else:  # footprints of varying size (resize_sparse's window scan)
        rows, cols = window_bounds(size[0], keys.shape[0]), window_bounds(size[1], keys.shape[1])
        kernels[1](keys, radius, EMPTY_KEY, EMPTY_FOUND, *rows, *cols, out)
    return out


# -- thermal ----------------------------------------------------------------------------------


def thermal_model_image(
    warped: np.ndarray, value_range: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    """``area_resize(encode_thermal(warped, value_range) * (warped > 0), size)``, cheaper.

    The three channels of the encoding are equal and an area resize treats channels alike,
    so one channel is encoded, masked and shrunk, and replicated at the model size.
    """
    from mlesam_ros.data.encode import encode_thermal

    kernel = _thermal_kernel()
    low, high = value_range
    if kernel is None or warped.ndim != 2 or warped.dtype != np.float32:
        image = encode_thermal(warped, value_range)
        image *= (warped > 0)[:, :, None]
        return area_resize(image, size)
    if not high > low:
        high = low + 1.0  # as encode_thermal: a flat frame encodes as uniform 0
    grey = np.empty(warped.shape, dtype=np.uint8)
    kernel(warped, np.float32(low), np.float32(high - low), grey)
    return np.repeat(area_resize(grey, size)[:, :, None], 3, axis=2)


@cache
def _thermal_kernel() -> Any:
    njit = numba_jit()
    if njit is None:
        return None

    @njit
    def encode_seen(values, low, span, grey):
        """``rint(255 * clip((v - low) / span, 0, 1))`` in float32 where ``v > 0``, else 0."""
        zero, one = np.float32(0.0), np.float32(1.0)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values[i, j]
                if value > 0:
                    scaled = min(max((value - low) / span, zero), one)
                    grey[i, j] = np.uint8(np.rint(np.float32(255.0) * scaled))
                else:
                    grey[i, j] = 0

    return encode_seen


def positive_percentiles(
    values: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)
) -> tuple[float, float] | None:
    """``np.percentile(values[values > 0], percentiles)`` of a float32 image; None if none.

    Exact order statistics without sorting: a positive float32 sorts like its bits, so one
    pass counts values per top-16-bit bucket and a second sorts only the few buckets holding
    the wanted ranks; then numpy's "linear" interpolation between neighbours, in its dtypes.
    """
    kernels = _percentile_kernels()
    if kernels is None or values.dtype != np.float32:
        positive = values[values > 0]
        if positive.size == 0:
            return None
        # Sorted first: numpy's SIMD sort plus a percentile of sorted values is ~3x faster
        # than the selection np.percentile runs on unsorted ones, with the same result.
        low, high = np.percentile(np.sort(positive), percentiles)
        return float(low), float(high)
    histogram = np.zeros(1 << 15, dtype=np.int64)
    count = kernels[0](values, histogram)
    if count == 0:
        return None
    # numpy's "linear" method, in its dtypes: the virtual index (n - 1) * q in float64, the
    # neighbours' difference in float32, the interpolation in float64 (Python floats are
    # float64, so scalars here reproduce the array arithmetic).
    virtual = [(count - 1) * (q / 100) for q in percentiles]
    below = [min(math.floor(v), count - 1) for v in virtual]
    ranks = np.array(sorted({*below, *(min(b + 1, count - 1) for b in below)}), np.int64)
    stats = np.empty(ranks.size, dtype=np.float32)
    kernels[1](values, histogram, ranks, stats)
    value_of = dict(zip(ranks.tolist(), stats, strict=True))
    result = []
    for v, b in zip(virtual, below, strict=True):
        low, high, gamma = value_of[b], value_of[min(b + 1, count - 1)], v - b
        difference = float(high - low)  # float32 subtraction
        result.append(float(high) - difference * (1 - gamma) if gamma >= 0.5
                      else float(low) + difference * gamma)  # fmt: skip
    return result[0], result[1]


@cache
def _percentile_kernels() -> Any:
    njit = numba_jit()
    if njit is None:
        return None

    @njit
    def histogram(values, counts):
        """Count the positive values per top-16-bit bucket; return how many are positive."""
        total = 0
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values[i, j]
                if value > 0:
                    counts[np.float32(value).view(np.int32) >> 16] += 1
                    total += 1
        return total

    @njit
    def select(values, counts, ranks, out):
        """``out[r]`` = the ``ranks[r]``-th smallest positive value (``ranks`` ascending)."""
        # The bucket of each rank and how many values lie in lower buckets.
        wanted = ranks.shape[0]
        buckets = np.empty(wanted, np.int64)
        before = np.empty(wanted, np.int64)
        seen, r = 0, 0
        for bucket in range(counts.shape[0]):
            while r < wanted and ranks[r] < seen + counts[bucket]:
                buckets[r] = bucket
                before[r] = seen
                r += 1
            seen += counts[bucket]
        # One pool slice per distinct bucket, filled in one pass through a bucket → slot table.
        slot_of = np.full(counts.shape[0], -1, np.int64)
        start = np.zeros(wanted + 1, np.int64)
        slots = 0
        for r in range(wanted):
            if slot_of[buckets[r]] < 0:
                slot_of[buckets[r]] = slots
                start[slots + 1] = start[slots] + counts[buckets[r]]
                slots += 1
        pool = np.empty(start[slots], np.float32)
        filled = start[:slots].copy()
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values[i, j]
                if value > 0:
                    slot = slot_of[np.float32(value).view(np.int32) >> 16]
                    if slot >= 0:
                        pool[filled[slot]] = value
                        filled[slot] += 1
        for slot in range(slots):
            pool[start[slot] : start[slot + 1]].sort()
        for r in range(wanted):
            out[r] = pool[start[slot_of[buckets[r]]] + ranks[r] - before[r]]

    return histogram, select


def warm_up() -> None:
    """Compile (or load from numba's cache) the loops now, not on the first frame."""
    if numba_jit() is None:
        return
    grid = np.ones((2, 2), np.float32)
    message_view = grid.copy()
    message_view.flags.writeable = False  # a 32FC1 depth image is a view of its message
    sample_depth(message_view, (2, 2))
    depth_model_image(sample_depth(grid, (2, 2))[0], (1, 1))
    depth_model_image(grid, (96, 128))  # not a whole factor
    keys = np.zeros((2, 2), np.int64)
    lidar_model_image(keys, 1, (1, 1))
    lidar_model_image(keys, 1, (3, 3))
    thermal_model_image(grid, (0.0, 1.0), (1, 1))
    positive_percentiles(grid)
