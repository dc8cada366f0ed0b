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

_EMPTY_KEY = np.iinfo(np.int64).max
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


def _row(points: Any, transform: np.ndarray, i: int) -> Any:
    """Row ``i`` of ``T @ p`` in float64, element-wise so numpy and torch round alike."""
    T = transform
    px, py, pz = points[:, 0], points[:, 1], points[:, 2]
    return px * float(T[i, 0]) + py * float(T[i, 1]) + pz * float(T[i, 2]) + float(T[i, 3])


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
    use_torch = _is_torch(points_xyz)
    if use_torch:
        import torch

        xp: Any = torch
        points = points_xyz.to(torch.float64)
    else:
        xp = np
        points = np.asarray(points_xyz, dtype=np.float64)
    height, width = camera.height, camera.width
    count = points.shape[0]
    with np.errstate(all="ignore"):
        # Cull by depth first: a spinning LiDAR puts most points outside a camera's view,
        # and everything after this works on the survivors only.
        z_all = _row(points, T, 2)
        front = _flatnonzero((z_all >= min_depth) & (z_all <= max_depth))
        ahead = points[front]
        x, y, z = _row(ahead, T, 0), _row(ahead, T, 1), z_all[front]
        inside = xp.ones_like(z, dtype=xp.bool)
        if not rectified and camera.is_distorted:
            limit = (camera.max_ray_slope * _RAY_SLOPE_MARGIN) ** 2
            inside = (x * x + y * y) <= limit * (z * z)
        u, v = camera.project_xyz(x, y, z, rectified=rectified, xp=xp)
        col = xp.floor(u + 0.5)
        row = xp.floor(v + 0.5)
        inside = inside & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    kept = _flatnonzero(inside)
    candidates = front[kept]
    pixel = row[kept] * width + col[kept]
    if use_torch:
        depth = z_all.to(torch.float32)
        pixel = pixel.to(torch.int64)
        bits = depth[candidates].view(torch.int32).to(torch.int64)
        keys = (bits << 32) | candidates
        zbuffer = torch.full(
            (height * width,), _EMPTY_KEY, dtype=torch.int64, device=points.device
        )
        zbuffer.scatter_reduce_(0, pixel, keys, reduce="amin")
        uv = torch.full((count, 2), float("nan"), dtype=torch.float64, device=points.device)
        valid = torch.zeros(count, dtype=torch.bool, device=points.device)
    else:
        depth = z_all.astype(np.float32)
        pixel = pixel.astype(np.int64)
        bits = depth[candidates].view(np.int32).astype(np.int64)
        keys = (bits << 32) | candidates
        zbuffer = np.full(height * width, _EMPTY_KEY, dtype=np.int64)
        np.minimum.at(zbuffer, pixel, keys)
        uv = np.full((count, 2), np.nan)
        valid = np.zeros(count, dtype=bool)
    wins = zbuffer[pixel] == keys
    point_index = candidates[wins]
    uv[front, 0] = u
    uv[front, 1] = v
    valid[candidates] = True
    visible = xp.zeros_like(valid)
    visible[point_index] = True
    projection = LidarProjection(
        height, width, uv, depth, valid, visible, point_index, pixel[wins]
    )
    if values is not None:
        projection.value_image = projection.scatter(values)
    return projection
