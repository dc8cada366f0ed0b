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

import numpy as np

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.projection import EMPTY_KEY, LidarProjection, project_lidar
from mlesam_ros.geometry.transforms import transform_points

DEFAULT_MAX_RANGE_M = 80.0
DEFAULT_INTENSITY_MAX = 1.0
DEFAULT_HEIGHT_RANGE_M = (-3.0, 5.0)
# Below this, a packed key (empty: EMPTY_KEY, as in the z-buffer) holds a finite return.
EMPTY_FOUND = np.int64(0x7F800000) << 32


def check_range(low: float, high: float) -> None:
    """Refuse an encoding range that is empty or inverted."""
    if not high > low:
        raise ValueError(f"encode range: high ({high}) must be greater than low ({low})")


def encode_channel(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Encode values as uint8 ``1..255`` over ``[low, high]`` (clipped); 0 is kept for empty."""
    check_range(low, high)
    scaled = np.clip((np.asarray(values, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    return (1 + np.rint(254 * scaled)).astype(np.uint8)


def decode_channel(channel: np.ndarray, low: float, high: float) -> np.ndarray:
    """Invert :func:`encode_channel` to float32 (NaN where the pixel is empty)."""
    channel = np.asarray(channel)
    values = low + (channel.astype(np.float32) - 1) / 254 * (high - low)
    return np.where(channel == 0, np.float32(np.nan), values).astype(np.float32)


def dilation_targets(
    pixel_index: np.ndarray, depth: np.ndarray, height: int, width: int, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Empty pixels within ``radius`` of a return, and which return fills each of them.

    ``pixel_index`` (``K``, ``row * width + col``) and ``depth`` (``K``) describe the returns.
    Each return proposes its (2r+1)^2 - 1 neighbours; per empty neighbour the nearest
    proposal wins through the same depth-key scatter-min as the z-buffer. Work scales with
    the returns, not the image. Returns ``(target_pixels, source_positions)``, positions
    indexing ``pixel_index``.
    """
    if radius <= 0 or pixel_index.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = np.divmod(pixel_index.astype(np.int64), width)
    span = np.arange(-radius, radius + 1)
    dy, dx = (grid.ravel() for grid in np.meshgrid(span, span, indexing="ij"))
    keep = (dy != 0) | (dx != 0)
    dy, dx = dy[keep, None], dx[keep, None]
    target_rows, target_cols = rows[None] + dy, cols[None] + dx
    source = np.broadcast_to(np.arange(pixel_index.size, dtype=np.int64), target_rows.shape)
    target = target_rows * width + target_cols
    occupied = np.zeros(height * width, dtype=bool)
    occupied[pixel_index] = True
    inside = (target_rows >= 0) & (target_rows < height) & (target_cols >= 0)
    inside &= target_cols < width
    inside[inside] = ~occupied[target[inside]]
    target, source = target[inside], source[inside]
    keys = (np.asarray(depth, np.float32)[source].view(np.int32).astype(np.int64) << 32) | source
    best = np.full(height * width, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, target, keys)
    wins = best[target] == keys
    return target[wins], source[wins]


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
    from mlesam_ros.geometry import compiled

    winners = projection.point_index
    height, width = projection.height, projection.width
    if intensity is not None and np.shape(intensity) != (points.shape[0],):
        raise ValueError(
            f"intensity: expected ({points.shape[0]},) to match points, got {np.shape(intensity)}"
        )
    kernel = compiled.pack_kernel()
    if kernel is not None and T_ground_from_lidar is None and isinstance(points, np.ndarray):
        for low, high in ((0.0, max_range), (0.0, intensity_max), height_range):
            check_range(low, high)
        keys = np.full(height * width, EMPTY_KEY, dtype=np.int64)
        # In the intensity's own dtype, as encode_channel takes it (float64 maths either way).
        values = (np.zeros(0, np.float32) if intensity is None
                  else np.asarray(intensity)[winners])  # fmt: skip
        kernel(projection.pixel_index, projection.depth[winners], values,
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


def dilate_nearest(image: np.ndarray, depth: np.ndarray, radius: int) -> np.ndarray:
    """Fill empty pixels (``depth`` 0) from the nearest return within ``radius`` (a square).

    The dense form of :func:`dilation_targets`, for images where returns are not rare (see
    :func:`_nearest_within`); on an exact depth tie the first shift in row-major order wins.
    Pixels with a return keep it.
    """
    import cv2

    if radius <= 0:
        return image
    height, width = depth.shape
    filled = depth > 0
    # r, g, b in the low three bytes (RGBA's alpha byte masked off): one uint32 per pixel.
    colours = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2RGBA).view("<u4")
    keys = np.asarray(depth, np.float32).view(np.int32).astype(np.int64) << 32
    keys |= colours.reshape(height, width) & 0xFFFFFF
    return dilate_keys(np.where(filled, keys, EMPTY_KEY), radius)


def check_dilation(radius: int) -> None:
    """Refuse radii whose window ranks do not fit the 4 bits per axis of a packed key."""
    if 2 * radius + 1 > 16:
        raise ValueError(f"dilation radius {radius}: at most 7 (15 x 15 window)")


def dilate_keys(keys: np.ndarray, radius: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 image of packed ``keys``, empty pixels filled within ``radius``.

    ``_unpack(_nearest_within(keys, radius))``, by the compiled loop when numba is there.
    """
    from mlesam_ros.geometry import compiled

    check_dilation(radius)
    kernels = compiled.lidar_image_kernels()
    if kernels is None:
        return _unpack(_nearest_within(keys, radius))
    out = np.empty((*keys.shape, 3), dtype=np.uint8)
    one_pixel_blocks = np.zeros((1, 2), dtype=np.int64)
    kernels[0](np.ascontiguousarray(keys), radius, EMPTY_KEY, EMPTY_FOUND, 1, 1,
               one_pixel_blocks, out)  # fmt: skip
    return out


def _nearest_within(keys: np.ndarray, radius: int) -> np.ndarray:
    """Per pixel, its own key if it has a return, else the smallest key within ``radius``.

    Keys are ``depth bits << 32 | r | g << 8 | b << 16`` (``EMPTY_KEY`` where no return):
    positive float32 depths sort like their bits, so a square min filter, run separably as a
    row pass and a column pass of ``np.minimum`` over shifted views, finds the nearest return
    of every window together with its channels; each shift's rank rides in bits 24..31, so
    an exact depth tie goes to the first shift in row-major order. Returns ``0`` (no colour)
    where nothing is in reach. Written by hand because OpenCV's min filter (``cv2.erode``) has
    no 64-bit type to carry the channels along.
    """
    span = 2 * radius + 1
    height, width = keys.shape
    padded = np.full((height + 2 * radius, width + 2 * radius), EMPTY_KEY, dtype=np.int64)
    padded[radius : radius + height, radius : radius + width] = keys
    # Row pass over the padded rows (so the column pass can read its own border), then columns.
    rows = np.full((height + 2 * radius, width), EMPTY_KEY, dtype=np.int64)
    for dx in range(span):
        np.minimum(rows, padded[:, dx : dx + width] | (dx << 24), out=rows)
    best = np.full((height, width), EMPTY_KEY, dtype=np.int64)
    for dy in range(span):
        np.minimum(best, rows[dy : dy + height] | (dy << 28), out=best)
    # Whole-image selects (boolean indexing is several times slower here): own return, else
    # the window's nearest, else nothing.
    found = np.where(best < EMPTY_FOUND, best, 0)
    return np.where(keys != EMPTY_KEY, keys, found)


def _unpack(keys: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 r, g, b from the low three bytes of packed keys."""
    height, width = keys.shape
    rgba = (keys & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(height, width, 4)
    return np.ascontiguousarray(rgba[..., :3])
