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
from numpy.lib.stride_tricks import as_strided

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.transforms import check_transform
from mlesam_ros.jit import kernel, warm_up_with

# The z-buffer's key of a pixel no point landed on (the LiDAR image's dilation uses it too).
EMPTY_KEY = np.iinfo(np.int64).max
# Rays up to this factor beyond the image border's slope are still distorted and tested
# against the image bounds; farther ones are culled so lens polynomials cannot fold them in.
RAY_SLOPE_MARGIN = 1.25


def _is_torch(array: Any) -> bool:
    return type(array).__module__.startswith("torch")


@dataclass
class LidarProjection:
    """Where each point lands and which points won their pixel.

    Per point (``N``): ``uv`` pixel coordinates (float64; NaN behind the camera or out of
    the depth range; defined for every ``valid`` point, while for other points they may be
    NaN or lie outside the image: the compiled loop skips the lens model beyond its cone),
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

    def candidates_and_nearest(self) -> tuple[Any, Any]:
        """``candidates`` and ``nearest``, derived (numpy) for a projection that lacks them.

        ``project_lidar`` records both; a projection built elsewhere gets them from ``valid``
        and the depth image at each candidate's pixel.
        """
        if self.candidates is not None:
            return self.candidates, self.nearest
        candidates = np.flatnonzero(self.valid)
        grid_pixels = np.floor(self.uv[candidates] + 0.5).astype(np.int64)
        return candidates, self.depth_image()[grid_pixels[:, 1], grid_pixels[:, 0]]

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
    if compiled_supports(camera, points_xyz, rectified):
        uv, depth, valid, visible, winners, pixels, candidates, nearest = _project_compiled(
            points_xyz, T, camera, min_depth, max_depth, RAY_SLOPE_MARGIN
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
            limit = (camera.max_ray_slope * RAY_SLOPE_MARGIN) ** 2
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


# -- the compiled projection ------------------------------------------------------------------
# numpy runs the projection as ~40 passes over the points (rows of ``T``, the lens polynomial,
# bounds, keys), each with its own temporary array: ~4 ms on one core for the ~37,000 points of
# a 131,072-point sweep that a camera sees. The same arithmetic per point, compiled, is one pass
# (~1 ms), in float64 with numpy's operand order (numba does not reorder floating-point
# operations without ``fastmath``). Written by hand because no library projects with ROS's lens
# models into a z-buffer; ``cv2.projectPoints`` was slower than numpy (9 ms) and has no
# z-buffer. The equidistant model's ``arctan`` is left to numpy.


def compiled_supports(camera: Any, points: Any, rectified: bool) -> bool:
    """Whether the compiled loop projects these inputs (numpy point arrays, ROS lens models)."""
    return (
        not rectified
        and isinstance(points, np.ndarray)
        and points.dtype in (np.float32, np.float64)
        and (not camera.is_distorted or camera.distortion_model != "equidistant")
        and _projection_kernels() is not None
    )


def _project_compiled(
    points: np.ndarray,
    T: np.ndarray,  # noqa: N803
    camera: Any,
    min_depth: float,
    max_depth: float,
    slope_margin: float,
) -> tuple[np.ndarray, ...]:
    """Run the compiled loops: the fields of a ``LidarProjection``, in its order."""
    count = points.shape[0]
    coefficients = np.zeros(8)
    distortion = np.asarray(camera.D, dtype=np.float64)[:8]
    coefficients[: distortion.size] = distortion
    rational = bool(camera.is_distorted and np.any(coefficients[5:8]))
    cone_limit = (camera.max_ray_slope * slope_margin) ** 2 if camera.is_distorted else 0.0
    uv = np.empty((count, 2))  # the loop writes every row (NaN where not in front)
    depth = np.empty(count, dtype=np.float32)
    candidates = np.empty(count, dtype=np.int64)
    pixels = np.empty(count, dtype=np.int64)
    zbuffer = np.full(camera.height * camera.width, EMPTY_KEY, dtype=np.int64)
    project_points, finish = _projection_kernels()
    kept = project_points(points, np.ascontiguousarray(T, dtype=np.float64),
                          np.array(camera.K, dtype=np.float64), coefficients, rational,
                          camera.width, camera.height, float(min_depth), float(max_depth),
                          float(cone_limit), uv, depth, candidates, pixels, zbuffer)  # fmt: skip
    candidates, pixels = candidates[:kept], pixels[:kept]
    valid = np.zeros(count, dtype=bool)
    visible = np.zeros(count, dtype=bool)
    nearest = np.empty(kept, dtype=np.float32)
    winners = np.empty(kept, dtype=np.int64)
    winner_pixels = np.empty(kept, dtype=np.int64)
    wins = finish(candidates, pixels, depth, zbuffer, valid, visible, nearest, winners,
                  winner_pixels)  # fmt: skip
    return uv, depth, valid, visible, winners[:wins], winner_pixels[:wins], candidates, nearest


@kernel
def _projection_kernels(njit: Any) -> Any:
    """``(project_points, finish)``: the projection and its z-buffer read-out, compiled."""

    @njit
    def project_points(points, t, k, dist, rational, width, height, min_depth, max_depth,
                       cone_limit, uv, depth, candidates, pixels, zbuffer):  # fmt: skip
        """Fill ``uv``/``depth`` per point; candidates, pixels, z-buffer; return the count.

        ``t``: camera from LiDAR (4x4), ``k``: intrinsics, ``dist``: 8 lens coefficients.
        """
        k1, k2, p1, p2, k3 = dist[0], dist[1], dist[2], dist[3], dist[4]
        k4, k5, k6 = dist[5], dist[6], dist[7]
        distorted = cone_limit > 0.0
        count = 0
        for i in range(points.shape[0]):
            px = np.float64(points[i, 0])
            py = np.float64(points[i, 1])
            pz = np.float64(points[i, 2])
            z = px * t[2, 0] + py * t[2, 1] + pz * t[2, 2] + t[2, 3]
            depth[i] = np.float32(z)
            if not (z >= min_depth and z <= max_depth):
                uv[i, 0] = np.nan
                uv[i, 1] = np.nan
                continue
            x = px * t[0, 0] + py * t[0, 1] + pz * t[0, 2] + t[0, 3]
            y = px * t[1, 0] + py * t[1, 1] + pz * t[1, 2] + t[1, 3]
            if distorted and not ((x * x + y * y) <= cone_limit * (z * z)):
                # Outside the lens model's cone: never in the image, so no distortion is
                # computed and its pixel coordinates stay undefined (NaN).
                uv[i, 0] = np.nan
                uv[i, 1] = np.nan
                continue
            xn = x / z
            yn = y / z
            if distorted:
                r2 = xn * xn + yn * yn
                radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
                if rational:
                    radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
                dx = 2 * p1 * xn * yn + p2 * (r2 + 2 * xn * xn)
                dy = p1 * (r2 + 2 * yn * yn) + 2 * p2 * xn * yn
                xn, yn = xn * radial + dx, yn * radial + dy
            u = k[0, 0] * xn + k[0, 1] * yn + k[0, 2]
            v = k[1, 1] * yn + k[1, 2]
            uv[i, 0] = u
            uv[i, 1] = v
            shifted_u = u + 0.5
            shifted_v = v + 0.5
            if not (shifted_u >= 0 and shifted_u < width and shifted_v >= 0
                    and shifted_v < height):  # fmt: skip
                continue
            pixel = np.int64(shifted_v) * width + np.int64(shifted_u)
            key = (np.int64(np.float32(z).view(np.int32)) << 32) | i
            if key < zbuffer[pixel]:
                zbuffer[pixel] = key
            candidates[count] = i
            pixels[count] = pixel
            count += 1
        return count

    @njit
    def finish(candidates, pixels, depth, zbuffer, valid, visible, nearest, winners,
               winner_pixels):  # fmt: skip
        """Mark valid/visible points, each candidate's pixel depth; return the winner count."""
        wins = 0
        for j in range(candidates.shape[0]):
            i = candidates[j]
            best = zbuffer[pixels[j]]
            valid[i] = True
            nearest[j] = np.int32(best >> 32).view(np.float32)
            if best == (np.int64(np.float32(depth[i]).view(np.int32)) << 32) | i:
                winners[wins] = i
                winner_pixels[wins] = pixels[j]
                visible[i] = True
                wins += 1
        return wins

    return project_points, finish


def point_views() -> list[np.ndarray]:
    """Points in every layout the node passes (each is its own compiled type).

    Contiguous float32 and float64, and read-only strided views of a cloud
    (``msgs.cloud_xyz``), 4-byte aligned or not.
    """
    views = [np.ones((1, 3), np.float32), np.ones((1, 3), np.float64)]
    for extra in ("<f4", "<u2"):  # x y z intensity (16 bytes), x y z ring (14 bytes)
        # Two points: numpy calls a one-point view contiguous, a different compiled type.
        cloud = np.ones(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("e", extra)])[1:]
        x = cloud["x"]
        views.append(as_strided(x, shape=(2, 3), strides=(x.strides[0], 4), writeable=False))
    return views


@warm_up_with(lambda: _projection_kernels())
def _warm_up(kernels: Any) -> None:
    camera = CameraModel(2, 2, [[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]], [0.1, 0, 0, 0, 0])
    for points in point_views():
        _project_compiled(points, np.eye(4), camera, 0.1, np.inf, RAY_SLOPE_MARGIN)
