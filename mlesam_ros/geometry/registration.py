"""Bring depth and thermal images from side-by-side cameras into the RGB camera's pixels.

Depth is reprojected exactly: every valid depth pixel becomes a 3-D point that goes through
the same z-buffered projection as LiDAR. Any other image (thermal) is resampled with
``cv2.remap`` through a per-pixel map: with a depth map in the RGB frame the map is exact,
otherwise it assumes a plane at ``plane_depth_m`` (infinity = rotation only, the usual choice
for distant scenes). :func:`homography_at_depth` gives the same plane mapping as a 3x3 matrix
for undistorted cameras, and :func:`crop_resize` covers configured crop-and-scale setups.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.projection import project_lidar
from mlesam_ros.geometry.transforms import check_transform, invert_transform
from mlesam_ros.jit import kernel, warm_up_with


def register_depth(
    depth_m: np.ndarray,
    depth_camera: CameraModel,
    rgb_camera: CameraModel,
    T_rgb_from_depth: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    stride: int = 1,
) -> np.ndarray:
    """Reproject a depth image (metres, NaN/0 invalid) into the RGB camera.

    Returns ``(H, W)`` float32 depth along the RGB camera's z axis, NaN where no depth pixel
    landed; where several land on one pixel the nearest wins (a z-buffer, never an average,
    so no depth is invented between a foreground edge and the background behind it).
    ``stride`` reprojects every ``stride``-th pixel of each row and column only: enough when
    ``rgb_camera`` is a grid much coarser than the depth image (the node's model grid).
    """
    depth_m = np.asarray(depth_m, dtype=np.float32)
    if depth_m.shape != depth_camera.size:
        raise ValueError(
            f"depth image: shape {depth_m.shape} does not match its camera "
            f"{depth_camera.size} (height, width)"
        )
    if stride < 1:
        raise ValueError(f"stride: must be >= 1, got {stride}")
    sampled = depth_m[::stride, ::stride]
    valid = np.isfinite(sampled) & (sampled > 0)
    rays = depth_camera.pixel_rays_every(stride)
    points = rays[valid] * sampled[valid, None].astype(np.float64)
    projection = project_lidar(points, T_rgb_from_depth, rgb_camera, min_depth=1e-3)
    image = projection.scatter(projection.depth, np.nan)
    return image.astype(np.float32)


def registration_map(
    source_camera: CameraModel,
    rgb_camera: CameraModel,
    T_rgb_from_source: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    rgb_depth_m: np.ndarray | None = None,
    plane_depth_m: float = float("inf"),
) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` tables ``(map_x, map_y)`` (float32, ``rgb_camera.size``) into the source.

    Each RGB pixel's ray meets the scene at ``rgb_depth_m`` where known (NaN/0 unknown), else at
    a plane at ``plane_depth_m``; the tables hold where that point lands in the source image,
    -1 where it cannot be seen. Without ``rgb_depth_m`` the tables depend on the calibration
    only: compute them once per calibration (the node caches them).
    """
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
    map_uv = np.full((rays.shape[0], 2), -1.0)
    # Non-finite rays (an extreme RGB lens model) and projections far off the float32 range
    # (an extreme source lens) see nothing: -1, without numpy warnings on the way.
    with np.errstate(all="ignore"):
        # A point at infinity only rotates; finite depths also translate.
        points = rays @ R.T + np.where(finite[:, None], t / np.where(finite, depth, 1)[:, None], 0)
        in_front = points[:, 2] > 1e-9
        if source_camera.is_distorted:
            slope = np.hypot(points[:, 0], points[:, 1]) / np.where(in_front, points[:, 2], 1)
            in_front &= slope <= source_camera.max_ray_slope * 1.25
        map_uv[in_front] = source_camera.project(points[in_front])
        map_uv[~(np.abs(map_uv) < 1e7).all(axis=-1)] = -1.0
    map_uv = map_uv.reshape(*rgb_camera.size, 2)
    return (np.ascontiguousarray(map_uv[..., 0], dtype=np.float32),
            np.ascontiguousarray(map_uv[..., 1], dtype=np.float32))  # fmt: skip


class ParallaxMap:
    """:func:`registration_map` split into a per-calibration part and a cheap per-frame part.

    With a depth image in the RGB frame the tables change every frame (parallax), but the
    rotated pixel rays do not: they are computed once here, so each frame costs a few float32
    operations per pixel. Matches :func:`registration_map` to float32 rounding (< 1e-3 px)
    for an undistorted source camera; a distorted one falls back to it.
    """

    def __init__(
        self,
        source_camera: CameraModel,
        rgb_camera: CameraModel,
        T_rgb_from_source: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    ) -> None:
        self.source_camera, self.rgb_camera = source_camera, rgb_camera
        self.T_rgb_from_source = check_transform(T_rgb_from_source, "T_rgb_from_source")
        T_source_from_rgb = invert_transform(self.T_rgb_from_source)
        rays = rgb_camera.pixel_rays.reshape(-1, 3)
        # A non-finite ray (an extreme RGB lens model) points nowhere: behind the source.
        rays = np.where(np.isfinite(rays).all(axis=-1, keepdims=True), rays, [0.0, 0.0, -1.0])
        rotated = rays @ T_source_from_rgb[:3, :3].T
        self.rays = [np.ascontiguousarray(rotated[:, axis], dtype=np.float32) for axis in range(3)]
        self.t = T_source_from_rgb[:3, 3].astype(np.float32)

    def maps(self, rgb_depth_m: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(map_x, map_y)`` for this frame's depth (m, NaN/0 unknown = at infinity)."""
        if self.source_camera.is_distorted:
            return registration_map(self.source_camera, self.rgb_camera, self.T_rgb_from_source,
                                    rgb_depth_m)  # fmt: skip
        shape = self.rgb_camera.size
        rx, ry, rz = self.rays
        kernel = _parallax_kernel()
        if kernel is not None and rgb_depth_m is not None and np.size(rgb_depth_m) == rz.size:
            depth = np.ascontiguousarray(rgb_depth_m, dtype=np.float32).reshape(-1)
            map_x, map_y = np.empty_like(rz), np.empty_like(rz)
            K = self.source_camera.K
            kernel(depth, rx, ry, rz, *self.t, *K[0].astype(np.float32), K[1, 1].astype(
                np.float32), K[1, 2].astype(np.float32), map_x, map_y)  # fmt: skip
            return map_x.reshape(shape), map_y.reshape(shape)
        if rgb_depth_m is None:
            x, y, z = rx, ry, rz
        else:
            depth = np.asarray(rgb_depth_m, dtype=np.float32).reshape(-1)
            if depth.size != rz.size:
                raise ValueError(
                    f"rgb_depth_m: shape {np.shape(rgb_depth_m)} does not match the RGB camera "
                    f"{shape}"
                )
            with np.errstate(divide="ignore", invalid="ignore"):
                inverse = np.where(np.isfinite(depth) & (depth > 0), 1.0 / depth, 0.0)
            inverse = inverse.astype(np.float32, copy=False)
            x, y, z = (r + np.float32(t) * inverse for r, t in zip(self.rays, self.t, strict=True))
        K = self.source_camera.K
        in_front = z > 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse_z = np.where(in_front, 1.0 / z, 0.0).astype(np.float32)
            xn, yn = x * inverse_z, y * inverse_z
        map_x = np.float32(K[0, 0]) * xn + np.float32(K[0, 1]) * yn + np.float32(K[0, 2])
        map_y = np.float32(K[1, 1]) * yn + np.float32(K[1, 2])
        map_x[~in_front] = -1.0
        map_y[~in_front] = -1.0
        return map_x.reshape(shape), map_y.reshape(shape)


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
    map_x, map_y = registration_map(
        source_camera, rgb_camera, T_rgb_from_source, rgb_depth_m, plane_depth_m
    )
    return remap(image, (map_x, map_y), interpolation)


def remap(image: np.ndarray, maps: tuple[np.ndarray, Any], interpolation: str = "linear") -> Any:
    """Apply ``cv2.remap`` with a 0 border.

    ``maps`` as from :func:`registration_map` or ``cv2.convertMaps`` (fixed point, faster).
    """
    import cv2

    flags = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR}
    if interpolation not in flags:
        raise ValueError(f"interpolation: choose 'nearest' or 'linear', got '{interpolation}'")
    return cv2.remap(
        image, maps[0], maps[1], flags[interpolation], borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


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


# -- the compiled parallax --------------------------------------------------------------------


@kernel
def _parallax_kernel(njit: Any) -> Any:
    """Compile the per-frame part of :meth:`ParallaxMap.maps` as one loop.

    numpy's float32 passes (inverse depth, ray offsets, perspective division, intrinsics)
    in one loop, operation for operation in float32: no library offsets per-pixel rays by a
    per-pixel inverse depth before projecting them.
    """

    @njit
    def parallax(depth, rx, ry, rz, tx, ty, tz, fx, skew, cx, fy, cy, map_x, map_y):
        """Fill the remap tables: ``-1`` behind the source camera."""
        one, zero, tiny = np.float32(1.0), np.float32(0.0), np.float32(1e-9)
        for i in range(depth.shape[0]):
            d = depth[i]
            inverse = one / d if (np.isfinite(d) and d > 0) else zero
            z = rz[i] + tz * inverse
            if not z > tiny:
                map_x[i] = -1.0
                map_y[i] = -1.0
                continue
            inverse_z = one / z
            xn = (rx[i] + tx * inverse) * inverse_z
            yn = (ry[i] + ty * inverse) * inverse_z
            map_x[i] = fx * xn + skew * yn + cx
            map_y[i] = fy * yn + cy

    return parallax


@warm_up_with(lambda: _parallax_kernel())
def _warm_up(parallax: Any) -> None:
    rays = np.ones(1, np.float32)
    t, k = np.float32(0.1), np.float32(1.0)
    parallax(rays, rays, rays, rays, t, t, t, k, k, k, k, k, rays.copy(), rays.copy())
