"""Bring depth and thermal images from side-by-side cameras into the RGB camera's pixels.

Depth is reprojected exactly: every valid depth pixel becomes a 3-D point that goes through
the same z-buffered projection as LiDAR. Any other image (thermal) is resampled with
``cv2.remap`` through a per-pixel map: with a depth map in the RGB frame the map is exact,
otherwise it assumes a plane at ``plane_depth_m`` (infinity = rotation only, the usual choice
for distant scenes). :func:`homography_at_depth` gives the same plane mapping as a 3x3 matrix
for undistorted cameras, and :func:`crop_resize` covers configured crop-and-scale setups.
"""

from __future__ import annotations

import numpy as np

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.projection import project_lidar
from mlesam_ros.geometry.transforms import check_transform, invert_transform


def register_depth(
    depth_m: np.ndarray,
    depth_camera: CameraModel,
    rgb_camera: CameraModel,
    T_rgb_from_depth: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
) -> np.ndarray:
    """Reproject a depth image (metres, NaN/0 invalid) into the RGB camera.

    Returns ``(H, W)`` float32 depth along the RGB camera's z axis, NaN where no depth pixel
    landed; where several land on one pixel the nearest wins.
    """
    depth_m = np.asarray(depth_m, dtype=np.float32)
    if depth_m.shape != depth_camera.size:
        raise ValueError(
            f"depth image: shape {depth_m.shape} does not match its camera "
            f"{depth_camera.size} (height, width)"
        )
    valid = np.isfinite(depth_m) & (depth_m > 0)
    points = depth_camera.pixel_rays[valid] * depth_m[valid, None].astype(np.float64)
    projection = project_lidar(points, T_rgb_from_depth, rgb_camera, min_depth=1e-3)
    image = projection.scatter(projection.depth, np.nan)
    return image.astype(np.float32)


def _remap(image: np.ndarray, map_uv: np.ndarray, interpolation: str) -> np.ndarray:
    import cv2

    flags = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR}
    if interpolation not in flags:
        raise ValueError(f"interpolation: choose 'nearest' or 'linear', got '{interpolation}'")
    map_x = np.ascontiguousarray(map_uv[..., 0], dtype=np.float32)
    map_y = np.ascontiguousarray(map_uv[..., 1], dtype=np.float32)
    return cv2.remap(
        image, map_x, map_y, flags[interpolation], borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def register_image(
    image: np.ndarray,
    source_camera: CameraModel,
    rgb_camera: CameraModel,
    T_rgb_from_source: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    rgb_depth_m: np.ndarray | None = None,
    plane_depth_m: float = float("inf"),
    interpolation: str = "linear",
) -> np.ndarray:
    """Resample ``image`` (e.g. thermal) from its own camera into the RGB camera's pixels.

    ``rgb_depth_m`` (``(H, W)`` metres in the RGB frame, NaN unknown) makes the mapping exact
    where known; elsewhere a plane at ``plane_depth_m`` is assumed. Pixels that see nothing
    of the source image are 0.
    """
    image = np.asarray(image)
    if image.shape[:2] != source_camera.size:
        raise ValueError(
            f"source image: shape {image.shape[:2]} does not match its camera "
            f"{source_camera.size} (height, width)"
        )
    T_source_from_rgb = invert_transform(check_transform(T_rgb_from_source, "T_rgb_from_source"))
    rays = rgb_camera.pixel_rays.reshape(-1, 3)
    depth = np.full(rays.shape[0], float(plane_depth_m))
    if rgb_depth_m is not None:
        rgb_depth = np.asarray(rgb_depth_m, dtype=np.float64).reshape(-1)
        if rgb_depth.size != rays.shape[0]:
            raise ValueError(
                f"rgb_depth_m: shape {np.shape(rgb_depth_m)} does not match the RGB camera "
                f"{rgb_camera.size}"
            )
        known = np.isfinite(rgb_depth) & (rgb_depth > 0)
        depth[known] = rgb_depth[known]
    R, t = T_source_from_rgb[:3, :3], T_source_from_rgb[:3, 3]
    finite = np.isfinite(depth)
    # A point at infinity only rotates; finite depths also translate.
    points = rays @ R.T + np.where(finite[:, None], t / np.where(finite, depth, 1)[:, None], 0)
    map_uv = np.full((rays.shape[0], 2), -1.0)
    in_front = points[:, 2] > 1e-9
    if source_camera.is_distorted:
        slope = np.hypot(points[:, 0], points[:, 1]) / np.where(in_front, points[:, 2], 1)
        in_front &= slope <= source_camera.max_ray_slope * 1.25
    map_uv[in_front] = source_camera.project(points[in_front])
    return _remap(image, map_uv.reshape(*rgb_camera.size, 2), interpolation)


def homography_at_depth(
    source_camera: CameraModel,
    rgb_camera: CameraModel,
    T_rgb_from_source: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    plane_depth_m: float = float("inf"),
) -> np.ndarray:
    """3x3 homography mapping source pixels to RGB pixels for a fronto-parallel plane.

    The plane is ``z = plane_depth_m`` in the source camera frame; distortion is ignored, so
    use it for rectified or low-distortion cameras (``cv2.warpPerspective``).
    """
    T = check_transform(T_rgb_from_source, "T_rgb_from_source")
    R, t = T[:3, :3], T[:3, 3]
    plane = R.copy()
    if np.isfinite(plane_depth_m):
        plane += np.outer(t, [0.0, 0.0, 1.0 / plane_depth_m])
    H = rgb_camera.K @ plane @ np.linalg.inv(source_camera.K)
    return H / H[2, 2]


def crop_resize(
    image: np.ndarray, crop_xywh: tuple[int, int, int, int] | None, size_wh: tuple[int, int]
) -> np.ndarray:
    """Crop ``image`` to ``(x, y, width, height)`` (or not at all) and resize to ``size_wh``.

    For rigs calibrated by eye: a configured crop that matches the thermal field of view to
    the RGB one.
    """
    import cv2

    if crop_xywh is not None:
        x, y, w, h = (int(value) for value in crop_xywh)
        if x < 0 or y < 0 or w <= 0 or h <= 0 or y + h > image.shape[0] or x + w > image.shape[1]:
            raise ValueError(
                f"crop {crop_xywh} (x, y, width, height) is outside the image "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        image = image[y : y + h, x : x + w]
    return cv2.resize(np.ascontiguousarray(image), tuple(size_wh), interpolation=cv2.INTER_LINEAR)
