"""Which points of a sweep can land in a camera: a cheap cull before the exact projection.

A spinning LiDAR puts most of a sweep outside any one camera; :func:`frustum_candidates`
drops them with one float32 pass, so the numpy projection works on the survivors only (the
compiled projection culls as it goes and does not need it).
"""

from __future__ import annotations

import numpy as np

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.projection import RAY_SLOPE_MARGIN
from mlesam_ros.geometry.transforms import check_transform


def frustum_candidates(
    points_xyz: np.ndarray,
    T_camera_from_lidar: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    camera: CameraModel,
    min_depth: float = 0.0,
) -> np.ndarray:
    """Return the indices of the points :func:`project_lidar` may keep (a cheap superset).

    A spinning LiDAR puts most of a sweep outside any one camera; this drops them with one
    float32 pass before the exact float64 projection. Each point goes through the near plane
    and four half-spaces of a box in normalised image coordinates (``x / z`` and
    ``y / z``): the image's own pixel bounds plus a pixel of margin for a pinhole camera, the
    slope limit :func:`project_lidar` applies for a distorted one. ``cv2.transform`` evaluates
    all four planes per point and ``cv2.inRange`` tests them, each one SIMD pass (numpy's
    column-wise version was 3x slower). Points nearer than ``min_depth`` and points with a
    NaN coordinate fail the tests too.
    """
    import cv2  # on first use: importing geometry (and msgs) stays free of OpenCV

    points = np.asarray(points_xyz)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_xyz: expected (N, 3), got {points.shape}")
    if points.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    T = check_transform(T_camera_from_lidar, "T_camera_from_lidar")
    if camera.is_distorted:
        slope = camera.max_ray_slope * RAY_SLOPE_MARGIN
        low_x = low_y = -slope
        high_x = high_y = slope
    else:
        # Pixel bounds (-0.5 .. W - 0.5) plus one pixel, through the inverse intrinsics.
        K = camera.K
        high_y = (camera.height + 0.5 - K[1, 2]) / K[1, 1]
        low_y = (-1.5 - K[1, 2]) / K[1, 1]
        skew = abs(K[0, 1]) * max(abs(low_y), abs(high_y))
        high_x = (camera.width + 0.5 - K[0, 2] + skew) / K[0, 0]
        low_x = (-1.5 - K[0, 2] - skew) / K[0, 0]
    # 1 % wider than the bounds: float32 rounding (relative ~1e-7) never culls a border point.
    widen = 0.01
    high_x, low_x = high_x + widen * abs(high_x), low_x - widen * abs(low_x)
    high_y, low_y = high_y + widen * abs(high_y), low_y - widen * abs(low_y)
    # Half-spaces over camera coordinates (x, y, z, 1), each >= 0 inside: high·z - x,
    # x - low·z (and the same in y), and the near plane z - min_depth (twice: two 3-row sets).
    planes = np.array([[-1, 0, high_x, 0], [1, 0, -low_x, 0], [0, -1, high_y, 0],
                       [0, 1, -low_y, 0], [0, 0, 1, -min_depth], [0, 0, 1, -min_depth]],
                      dtype=np.float64)  # fmt: skip
    matrix = (planes @ T).astype(np.float32)  # the same planes over LiDAR coordinates
    source = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 1, 3)
    # Two 3-row transforms: OpenCV vectorises 3-channel to 3-channel, not 3 to 6 (or 4).
    inside = cv2.inRange(cv2.transform(source, matrix[:3]), (0.0,) * 3, (np.inf,) * 3)
    inside &= cv2.inRange(cv2.transform(source, matrix[3:]), (0.0,) * 3, (np.inf,) * 3)
    return np.flatnonzero(inside.reshape(-1) != 0)
