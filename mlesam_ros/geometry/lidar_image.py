"""The model's LiDAR modality: a z-buffered ``(H, W, 3)`` uint8 image in the RGB camera.

Channels (DELIVER-style depth, intensity, height), each encoded as ``0`` = no return and
``1 + round(254 * clip((value - low) / (high - low), 0, 1))`` for a return, so "nothing here"
never looks like a valid near or dark or low point:

- 0 depth: camera-frame z in metres over ``(0, max_range)`` (default 80 m);
- 1 intensity: over ``(0, intensity_max)`` (default 1.0, CARLA/DELIVER's reflectance range;
  use 255 for Velodyne-style or the sensor's maximum for Ouster-style intensities);
- 2 height: z in the LiDAR frame, or in ``T_ground_from_lidar``'s frame when given, over
  ``height_range`` (default -3 m .. 5 m).

``dilation`` fills empty pixels from the nearest (smallest depth) return within that many
pixels (a square window), densifying sparse beams without letting background bleed onto
foreground; pixels with their own return keep it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.lidar_dilation import dilate_keys
from mlesam_ros.geometry.projection import EMPTY_KEY, LidarProjection, project_lidar
from mlesam_ros.geometry.transforms import transform_points
from mlesam_ros.jit import inline, kernel, warm_up_with

DEFAULT_MAX_RANGE_M = 80.0
DEFAULT_INTENSITY_MAX = 1.0
DEFAULT_HEIGHT_RANGE_M = (-3.0, 5.0)


def check_range(low: float, high: float) -> None:
    """Refuse an encoding range that is empty or inverted."""
    if not high > low:
        raise ValueError(f"encode range: high ({high}) must be greater than low ({low})")


def encode_channel(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Encode values as uint8 ``1..255`` over ``[low, high]`` (clipped); NaN encodes as 0."""
    check_range(low, high)
    scaled = np.clip((np.asarray(values, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return np.where(np.isnan(scaled), 0.0, 1 + np.rint(254 * scaled)).astype(np.uint8)


def decode_channel(channel: np.ndarray, low: float, high: float) -> np.ndarray:
    """Invert :func:`encode_channel` to float32 (NaN where the pixel is empty)."""
    channel = np.asarray(channel)
    values = low + (channel.astype(np.float32) - 1) / 254 * (high - low)
    return np.where(channel == 0, np.float32(np.nan), values).astype(np.float32)


def lidar_image(
    points: np.ndarray,
    intensity: np.ndarray | None,
    T_camera_from_lidar: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    camera: CameraModel,
    *,
    max_range: float = DEFAULT_MAX_RANGE_M,
    intensity_max: float = DEFAULT_INTENSITY_MAX,
    height_range: tuple[float, float] = DEFAULT_HEIGHT_RANGE_M,
    T_ground_from_lidar: np.ndarray | None = None,  # noqa: N803
    dilation: int = 0,
    min_depth: float = 0.1,
) -> np.ndarray:
    """Render ``(N, 3)`` LiDAR-frame points as the model's ``(H, W, 3)`` uint8 LiDAR image.

    ``intensity`` is ``(N,)`` or ``None`` (channel 1 is then 0 everywhere). Points beyond
    ``max_range`` are clipped to 255 rather than dropped, so far returns still occlude.
    """
    points = np.asarray(points, dtype=np.float32)
    projection = project_lidar(points, T_camera_from_lidar, camera, min_depth=min_depth)
    return projection_image(
        projection, points, intensity, max_range=max_range, intensity_max=intensity_max,
        height_range=height_range, T_ground_from_lidar=T_ground_from_lidar, dilation=dilation,
    )  # fmt: skip


def projection_image(
    projection: LidarProjection,
    points: np.ndarray,
    intensity: np.ndarray | None,
    *,
    max_range: float = DEFAULT_MAX_RANGE_M,
    intensity_max: float = DEFAULT_INTENSITY_MAX,
    height_range: tuple[float, float] = DEFAULT_HEIGHT_RANGE_M,
    T_ground_from_lidar: np.ndarray | None = None,  # noqa: N803
    dilation: int = 0,
) -> np.ndarray:
    """Render :func:`lidar_image` from a projection already made.

    The node reuses its projection for the labelled points instead of projecting twice.
    """
    keys = projection_keys(
        projection, points, intensity, max_range=max_range, intensity_max=intensity_max,
        height_range=height_range, T_ground_from_lidar=T_ground_from_lidar,
    )  # fmt: skip
    return dilate_keys(keys, dilation)


def projection_keys(
    projection: LidarProjection,
    points: np.ndarray,
    intensity: np.ndarray | None,
    *,
    max_range: float = DEFAULT_MAX_RANGE_M,
    intensity_max: float = DEFAULT_INTENSITY_MAX,
    height_range: tuple[float, float] = DEFAULT_HEIGHT_RANGE_M,
    T_ground_from_lidar: np.ndarray | None = None,  # noqa: N803
) -> np.ndarray:
    """``(H, W)`` int64 packed keys of the z-buffer winners (``EMPTY_KEY`` elsewhere).

    A key is ``depth bits << 32 | r | g << 8 | b << 16`` (r, g, b = the depth, intensity and
    height codes): one int64 scatter places all three channels, and :func:`dilate_keys` finds
    the nearest return of a window with one comparison per pixel.
    """
    winners = projection.point_index
    height, width = projection.height, projection.width
    if intensity is not None and np.shape(intensity) != (points.shape[0],):
        raise ValueError(
            f"intensity: expected ({points.shape[0]},) to match points, got {np.shape(intensity)}"
        )
    pack = _pack_kernel()
    if pack is not None and T_ground_from_lidar is None and isinstance(points, np.ndarray):
        for low, high in ((0.0, max_range), (0.0, intensity_max), height_range):
            check_range(low, high)
        keys = np.full(height * width, EMPTY_KEY, dtype=np.int64)
        # In the intensity's own dtype, as encode_channel takes it (float64 maths either way).
        values = (np.zeros(0, np.float32) if intensity is None
                  else np.asarray(intensity)[winners])  # fmt: skip
        pack(projection.pixel_index, projection.depth[winners], values,
             np.asarray(points)[winners, 2], float(max_range), float(intensity_max),
             float(height_range[0]), float(height_range[1]), keys)  # fmt: skip
        return keys.reshape(height, width)
    if T_ground_from_lidar is None:
        height_values = np.asarray(points)[winners, 2]
    else:
        height_values = transform_points(T_ground_from_lidar, points[winners])[:, 2]
    depth = projection.depth[winners]
    packed = encode_channel(depth, 0.0, max_range).astype(np.int64)
    if intensity is not None:
        packed |= encode_channel(intensity[winners], 0.0, intensity_max).astype(np.int64) << 8
    packed |= encode_channel(height_values, *height_range).astype(np.int64) << 16
    keys = np.full(height * width, EMPTY_KEY, dtype=np.int64)
    keys[projection.pixel_index] = (depth.view(np.int32).astype(np.int64) << 32) | packed
    return keys.reshape(height, width)


# -- the compiled packing ---------------------------------------------------------------------
# numpy encodes the three channels in ~12 passes over the winners; one compiled pass writes the
# packed keys directly. Written by hand: no library packs several encodings into one key.


def _code(value, low, high):
    """``encode_channel`` of one value (NaN gives 0)."""
    scaled = min(max((np.float64(value) - low) / (high - low), 0.0), 1.0)
    if scaled != scaled:
        return np.int64(0)
    return np.int64(1 + np.rint(254 * scaled))


@kernel
def _pack_kernel(njit: Any) -> Any:
    """Compile :func:`projection_keys` as one loop.

    Per z-buffer winner (its values gathered contiguous, so one compiled type serves every
    cloud layout): its three codes (``encode_channel`` in float64: depth, intensity, height)
    and its depth bits, packed into the winner's pixel of the key image.
    """
    inline(_code)

    @njit
    def pack(pixels, depth, intensity, height, max_range, intensity_max, height_low,
             height_high, keys):  # fmt: skip
        """Write winner j's ``depth bits << 32 | r | g << 8 | b << 16`` at ``pixels[j]``."""
        for j in range(pixels.shape[0]):
            packed = _code(depth[j], 0.0, max_range)
            if intensity.shape[0] > 0:
                packed |= _code(intensity[j], 0.0, intensity_max) << 8
            packed |= _code(height[j], height_low, height_high) << 16
            keys[pixels[j]] = (np.int64(np.float32(depth[j]).view(np.int32)) << 32) | packed

    return pack


@warm_up_with(lambda: _pack_kernel())
def _warm_up(pack: Any) -> None:
    one, keys, values = np.zeros(1, np.int64), np.zeros(4, np.int64), np.zeros(1, np.float32)
    for height in (values, np.zeros(1)):  # float32 and float64 points
        pack(one, values, values, height, 1.0, 1.0, 0.0, 1.0, keys)
