"""Depth: the depth image → the RGB camera's working grid → the model's depth image.

A depth image registered to the RGB camera is sampled onto the working grid directly; another
is reprojected first (:func:`~mlesam_ros.geometry.register_depth`). On the grid it is encoded
as training encodes it (:func:`~mlesam_ros.data.encode.encode_depth`) and shrunk over its
valid pixels only (:func:`~mlesam_ros.data.resample.resize_with_holes`). The grid's depth in
metres also goes to the thermal registration (its parallax).

numpy encodes in ~10 whole-grid passes (a temporary per operation, three channels each) and
then shrinks, where three of every four encoded pixels are averaged away; the compiled loops
here encode in one pass and shrink whole-number factors in another, in numpy's precision, so
the model input equals the numpy path, which stays as the reference and the fallback
without numba. Written by hand because no library fuses a per-pixel encoding with a masked
resize; other factors leave the area weights to OpenCV.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from mlesam_ros.data.encode import DEFAULT_DEPTH_RANGE_M, encode_depth
from mlesam_ros.data.resample import resize_image, resize_indices, whole_shrink
from mlesam_ros.geometry import register_depth
from mlesam_ros.jit import inline, kernel, warm_up_with
from mlesam_ros.msgs import header_stamp_ns, image_to_depth_m, image_to_numpy
from mlesam_ros.pipeline.sensors import FrameJob, Issue, Lookup, PreparedFrame, SensorInputs

# resize_with_holes: a footprint with a total valid weight above this is not a hole.
_MIN_WEIGHT = 1e-6


def prepare_depth(
    inputs: SensorInputs, job: FrameJob, prepared: PreparedFrame, rgb_frame: str,
    lookup: Lookup,
) -> None:
    """Register and encode the depth image of ``job`` into ``prepared`` (issues on failure)."""
    topic, msg, issues = inputs.config.topics["depth"], job.messages["depth"], prepared.issues
    try:
        # 32FC1 is already metres: a view of the message, not a camera-size copy; its
        # invalid pixels (0, NaN, inf; REP 118) become NaN once on the working grid.
        decode = image_to_numpy if str(msg.encoding) == "32FC1" else image_to_depth_m
        depth = decode(msg, topic)
    except ValueError as error:
        issues.append(Issue("depth", topic, f"{error}; depth left out of this frame"))
        return
    T = inputs.extrinsic("depth", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
    if T is None:
        return
    direct, depth_camera = inputs.sensor_camera("depth", depth.shape, T, job, prepared)
    grid = prepared.grid
    if direct:
        grid_size = grid.size if grid is not None else prepared.size
    elif depth_camera is None:
        return
    else:
        # Every stride-th depth pixel is enough to fill a grid that many times coarser.
        stride = max(1, min(depth.shape[0] // grid.height, depth.shape[1] // grid.width))
        depth = register_depth(depth, depth_camera, grid, T, stride=stride)
        grid_size = grid.size
    depth_grid, valid_count = sample_depth(depth, grid_size)
    if not valid_count:
        text = ("no valid depth pixel in the RGB camera's view (all 0, NaN or out of "
                "view); depth left out of this frame")  # fmt: skip
        issues.append(Issue("depth", topic, text))
        return
    prepared.depth_grid = depth_grid
    if "depth" in inputs.used:
        prepared.images["depth"] = depth_model_image(depth_grid, inputs.model_size)


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


@kernel
def _depth_kernels(njit: Any) -> Any:
    """``(sample, clip_depth, encode, shrink)``: depth onto the grid, encoded and shrunk."""
    inline(_average)

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


@warm_up_with(lambda: _depth_kernels())
def _warm_up(kernels: Any) -> None:
    grid = np.ones((2, 2), np.float32)
    message_view = grid.copy()
    message_view.flags.writeable = False  # a 32FC1 depth image is a view of its message
    sample_depth(message_view, (2, 2))
    depth_model_image(sample_depth(grid, (2, 2))[0], (1, 1))
    depth_model_image(grid, (96, 128))  # not a whole factor
