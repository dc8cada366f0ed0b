"""Project a point cloud into a camera with a z-buffer: the nearest point wins each pixel.

Without the z-buffer, returns from behind an object (seen by the LiDAR from a slightly
different viewpoint) overwrite the object's own pixels and the model sees the background
"through" a car. The z-buffer is one scatter-min over a 64-bit key per point,
``(float32 depth bits << 32) | point index``: positive float32 bit patterns sort like the
depths, so the minimum key of a pixel is its nearest point, and ties go to the lowest index.
numpy (``np.minimum.at``) and torch (``scatter_reduce(amin)``, CPU or CUDA) reduce the same
keys, so both paths give identical results. The geometry runs in float64 with the same
element-wise formulas on both paths for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.transforms import check_transform

# The z-buffer's key of a pixel no point landed on (the LiDAR image's dilation uses it too).
EMPTY_KEY = np.iinfo(np.int64).max
# Rays up to this factor beyond the image border's slope are still distorted and tested
# against the image bounds; farther ones are culled so lens polynomials cannot fold them in.
_RAY_SLOPE_MARGIN = 1.25


def _is_torch(array: Any) -> bool:
    return type(array).__module__.startswith("torch")


@dataclass
class LidarProjection:
    """Where each point lands and which points won their pixel.

    Per point (``N``): ``uv`` pixel coordinates (float64; NaN behind the camera or out of
    the depth range, outside the image where not ``valid``),
    ``depth`` camera-frame z in metres (float32), ``valid`` (in depth range, in front and
    inside the image), ``visible`` (valid and nearest in its pixel). Per winning point
    (``K``, ascending point order): ``point_index`` and ``pixel_index`` (``row * width +
    col``). Arrays are numpy or torch tensors (on the input's device), like the input.
    """

    height: int
    width: int
    uv: Any
    depth: Any
    valid: Any
    visible: Any
    point_index: Any
    pixel_index: Any
    value_image: Any = None
    candidates: Any = None
    """Indices of the ``valid`` points, ascending (``flatnonzero(valid)``)."""
    nearest: Any = None
    """Per candidate: the z-buffer depth of its pixel (float32), i.e. its pixel's winner's."""

    def scatter(self, values: Any, fill: float = 0) -> Any:
        """Dense ``(H, W, ...)`` image of per-point ``values`` of the winning points."""
        if _is_torch(self.uv):
            import torch

            values = torch.as_tensor(values, device=self.uv.device)
            shape = (self.height * self.width, *tuple(values.shape[1:]))
            image = torch.full(shape, fill, dtype=values.dtype, device=values.device)
        else:
            values = np.asarray(values)
            shape = (self.height * self.width, *values.shape[1:])
            image = np.full(shape, fill, dtype=values.dtype)
        image[self.pixel_index] = values[self.point_index]
        return image.reshape(self.height, self.width, *shape[1:])

    def depth_image(self) -> Any:
        """``(H, W)`` float32 z-buffered depth in metres, 0 where no point landed."""
        return self.scatter(self.depth, 0)

    def index_image(self) -> Any:
        """``(H, W)`` int64 index of the winning point per pixel, -1 where none."""
        if _is_torch(self.uv):
            import torch

            indices = torch.arange(self.uv.shape[0], device=self.uv.device)
        else:
            indices = np.arange(self.uv.shape[0], dtype=np.int64)
        return self.scatter(indices, -1)


def _flatnonzero(mask: Any) -> Any:
    return mask.nonzero(as_tuple=True)[0] if _is_torch(mask) else np.flatnonzero(mask)


def _row(x: Any, y: Any, z: Any, transform: np.ndarray, i: int) -> Any:
    """Row ``i`` of ``T @ p`` in float64, element-wise so numpy and torch round alike."""
    T = transform
    row = x * float(T[i, 0])  # in place, in the order of x*a + y*b + z*c + d: same rounding
    row += y * float(T[i, 1])
    row += z * float(T[i, 2])
    row += float(T[i, 3])
    return row


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
    import cv2

    points = np.asarray(points_xyz)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_xyz: expected (N, 3), got {points.shape}")
    if points.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    T = check_transform(T_camera_from_lidar, "T_camera_from_lidar")
    if camera.is_distorted:
        slope = camera.max_ray_slope * _RAY_SLOPE_MARGIN
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


def project_lidar(
    points_xyz: Any,
    T_camera_from_lidar: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    camera: CameraModel,
    values: Any = None,
    *,
    min_depth: float = 0.1,
    max_depth: float = float("inf"),
    rectified: bool = False,
) -> LidarProjection:
    """Project ``(N, 3)`` LiDAR-frame points into ``camera`` with a nearest-wins z-buffer.

    ``points_xyz`` is a numpy array or a torch tensor (any device; the result lives there).
    ``rectified`` projects into the rectified image (``P``, ``R``) instead of the raw one.
    ``values`` (``(N, ...)``), if given, is scattered with :meth:`LidarProjection.scatter`
    into ``value_image``.
    """
    T = check_transform(T_camera_from_lidar, "T_camera_from_lidar")
    if tuple(points_xyz.shape[1:]) != (3,) or len(points_xyz.shape) != 2:
        raise ValueError(f"points_xyz: expected (N, 3), got {tuple(points_xyz.shape)}")
    from mlesam_ros.geometry import compiled

    if compiled.supports(camera, points_xyz, rectified):
        uv, depth, valid, visible, winners, pixels, candidates, nearest = compiled.project(
            points_xyz, T, camera, min_depth, max_depth, _RAY_SLOPE_MARGIN
        )
        projection = LidarProjection(camera.height, camera.width, uv, depth, valid, visible,
                                     winners, pixels, candidates=candidates,
                                     nearest=nearest)  # fmt: skip
        if values is not None:
            projection.value_image = projection.scatter(values)
        return projection
    use_torch = _is_torch(points_xyz)
    if use_torch:
        import torch

        xp: Any = torch
        px, py, pz = points_xyz.to(torch.float64).T.contiguous()
        device = points_xyz.device
    else:
        xp = np
        # One converting copy into three contiguous float64 rows: every pass below reads a
        # plain array instead of a strided column of an (N, 3) array.
        px, py, pz = np.asarray(points_xyz).T.astype(np.float64, order="C")
    height, width = camera.height, camera.width
    count = points_xyz.shape[0]
    with np.errstate(all="ignore"):
        # Cull by depth first: a spinning LiDAR puts most points outside a camera's view,
        # and everything after this works on the survivors only.
        z_all = _row(px, py, pz, T, 2)
        front = _flatnonzero((z_all >= min_depth) & (z_all <= max_depth))
        if front.shape[0] < count:
            px, py, pz = px[front], py[front], pz[front]
        x, y, z = _row(px, py, pz, T, 0), _row(px, py, pz, T, 1), z_all[front]
        u, v = camera.project_xyz(x, y, z, rectified=rectified, xp=xp)
        # Pixel (row, col) = floor(v + 0.5), floor(u + 0.5): test the bounds on the shifted
        # coordinates (floor(a) >= 0 exactly when a >= 0) and round only the kept points.
        shifted_u, shifted_v = u + 0.5, v + 0.5
        inside = (shifted_u >= 0) & (shifted_u < width) & (shifted_v >= 0)
        inside &= shifted_v < height
        if not rectified and camera.is_distorted:
            limit = (camera.max_ray_slope * _RAY_SLOPE_MARGIN) ** 2
            inside &= (x * x + y * y) <= limit * (z * z)
    kept = _flatnonzero(inside)
    candidates = front[kept]
    if use_torch:
        depth = z_all.to(torch.float32)
        col = shifted_u[kept].to(torch.int64)
        pixel = shifted_v[kept].to(torch.int64) * width + col
        bits = depth[candidates].view(torch.int32).to(torch.int64)
        keys = (bits << 32) | candidates
        zbuffer = torch.full(
            (height * width,), EMPTY_KEY, dtype=torch.int64, device=device
        )
        zbuffer.scatter_reduce_(0, pixel, keys, reduce="amin")
        uv = torch.full((count, 2), float("nan"), dtype=torch.float64, device=device)
        valid = torch.zeros(count, dtype=torch.bool, device=device)
    else:
        depth = z_all.astype(np.float32, copy=False)
        pixel = shifted_v[kept].astype(np.int64) * width + shifted_u[kept].astype(np.int64)
        bits = depth[candidates].view(np.int32).astype(np.int64)
        keys = (bits << 32) | candidates
        zbuffer = np.full(height * width, EMPTY_KEY, dtype=np.int64)
        np.minimum.at(zbuffer, pixel, keys)
        uv = np.full((count, 2), np.nan)
        valid = np.zeros(count, dtype=bool)
    best = zbuffer[pixel]
    wins = best == keys
    point_index = candidates[wins]
    nearest = (best >> 32).to(torch.int32) if use_torch else (best >> 32).astype(np.int32)
    nearest = nearest.view(torch.float32 if use_torch else np.float32)
    uv[front, 0] = u
    uv[front, 1] = v
    valid[candidates] = True
    visible = xp.zeros_like(valid)
    visible[point_index] = True
    projection = LidarProjection(
        height, width, uv, depth, valid, visible, point_index, pixel[wins],
        candidates=candidates, nearest=nearest,
    )  # fmt: skip
    if values is not None:
        projection.value_image = projection.scatter(values)
    return projection

