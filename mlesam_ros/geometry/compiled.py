"""The z-buffered projection of :func:`~mlesam_ros.geometry.project_lidar` as one compiled loop.

numpy runs the projection as ~40 passes over the points (rows of ``T``, the lens polynomial,
bounds, keys), each with its own temporary array; on one CPU core that costs ~4 ms for the
~37,000 points of a 131,072-point sweep that a camera sees. The same arithmetic, written per
point and compiled by numba, is one pass (~1 ms): every expression keeps numpy's operand order
and float64 precision, and numba does not contract or reorder floating-point operations
without ``fastmath``, so the results are bit-identical (``test_geometry`` compares every
field). Written by hand because no library projects with ROS's lens models into a z-buffer;
``cv2.projectPoints`` was slower than numpy (9 ms) and has no z-buffer.

Used for numpy float inputs with the pinhole, plumb_bob or rational_polynomial model (the
equidistant model's ``arctan`` is left to numpy, whose implementation may round differently).
Without numba, :func:`kernel` returns ``None`` and the numpy passes run.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from mlesam_ros.geometry.projection import EMPTY_KEY


@cache
def numba_jit() -> Any:
    """``numba.njit`` with numpy's float semantics (x / 0 is inf, no check), or ``None``."""
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True, error_model="numpy")


# Helpers the kernels call. They are module-level functions that numba compiles into each
# caller (``register_jitable``): a jitted function captured in a kernel's closure would make
# numba's on-disk cache miss on every start (the closure is keyed by the dispatcher's
# per-process identity), recompiling and adding cache files each time the node starts.


@cache
def _register_helpers() -> None:
    from numba.extending import register_jitable

    for helper in (_nearest_key, _nothing_in_reach, _write, _code):
        register_jitable(helper)


def _nearest_key(keys, row, col, radius, empty):
    """Return the pixel's own key, else the smallest (key | dy << 28 | dx << 24) in reach."""
    key = keys[row, col]
    if key != empty:
        return key
    height, width = keys.shape
    for dy in range(2 * radius + 1):
        r = row + dy - radius
        if r < 0 or r >= height:
            continue
        for dx in range(2 * radius + 1):
            c = col + dx - radius
            if c < 0 or c >= width:
                continue
            candidate = keys[r, c] | (dy << 28) | (dx << 24)
            if candidate < key:
                key = candidate
    return key


def _nothing_in_reach(keys, top, bottom, left, right, radius, empty):
    """Whether no return lies within ``radius`` of rows [top, bottom) x cols [left, right)."""
    height, width = keys.shape
    for r in range(max(top - radius, 0), min(bottom + radius, height)):
        for c in range(max(left - radius, 0), min(right + radius, width)):
            if keys[r, c] != empty:
                return False
    return True


def _write(out, orow, ocol, key):
    out[orow, ocol, 0] = key & 255
    out[orow, ocol, 1] = (key >> 8) & 255
    out[orow, ocol, 2] = (key >> 16) & 255


def _code(value, low, high):
    """``encode_channel`` of one value; NaN gives 0, as numpy's uint8 cast does on x86."""
    scaled = min(max((np.float64(value) - low) / (high - low), 0.0), 1.0)
    if scaled != scaled:
        return np.int64(0)
    return np.int64(1 + np.rint(254 * scaled))


@cache
def kernel() -> Any:
    """Return the compiled per-point loop, or ``None`` when numba is not installed."""
    njit = numba_jit()
    if njit is None:
        return None

    @njit
    def project_points(points, T, K, D, rational, width, height, min_depth, max_depth,  # noqa: N803
                       cone_limit, uv, depth, candidates, pixels, zbuffer):  # fmt: skip
        """Fill ``uv``/``depth`` per point; candidates, pixels, z-buffer; return the count."""
        k1, k2, p1, p2, k3 = D[0], D[1], D[2], D[3], D[4]
        k4, k5, k6 = D[5], D[6], D[7]
        distorted = cone_limit > 0.0
        count = 0
        for i in range(points.shape[0]):
            px = np.float64(points[i, 0])
            py = np.float64(points[i, 1])
            pz = np.float64(points[i, 2])
            z = px * T[2, 0] + py * T[2, 1] + pz * T[2, 2] + T[2, 3]
            depth[i] = np.float32(z)
            if not (z >= min_depth and z <= max_depth):
                uv[i, 0] = np.nan
                uv[i, 1] = np.nan
                continue
            x = px * T[0, 0] + py * T[0, 1] + pz * T[0, 2] + T[0, 3]
            y = px * T[1, 0] + py * T[1, 1] + pz * T[1, 2] + T[1, 3]
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
            u = K[0, 0] * xn + K[0, 1] * yn + K[0, 2]
            v = K[1, 1] * yn + K[1, 2]
            uv[i, 0] = u
            uv[i, 1] = v
            shifted_u = u + 0.5
            shifted_v = v + 0.5
            if not (shifted_u >= 0 and shifted_u < width and shifted_v >= 0
                    and shifted_v < height):  # fmt: skip
                continue
            if distorted and not ((x * x + y * y) <= cone_limit * (z * z)):
                continue
            pixel = np.int64(shifted_v) * width + np.int64(shifted_u)
            key = (np.int64(np.float32(z).view(np.int32)) << 32) | i
            if key < zbuffer[pixel]:
                zbuffer[pixel] = key
            candidates[count] = i
            pixels[count] = pixel
            count += 1
        return count

    return project_points


@cache
def finish_kernel() -> Any:
    """Return the compiled z-buffer read-out of :func:`project` (numba present)."""

    @numba_jit()
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

    return finish


@cache
def lidar_image_kernels() -> Any:
    """Return the compiled LiDAR dilation + sparse shrink loops, or ``None`` (no numba).

    ``(dilate_blocks, dilate_windows)``: the nearest-return dilation of
    ``lidar_image.dilate_keys`` evaluated only where ``data.resample.resize_sparse`` looks
    (whole-factor blocks in their rank order; any other size by its window scan). Blocks of
    1 x 1 are the dilation alone.
    """
    njit = numba_jit()
    if njit is None:
        return None
    _register_helpers()

    @njit
    def dilate_blocks(keys, radius, empty, reachable, fy, fx, order, out):
        """Per block: the first pixel in ``order`` with its own or a dilated return."""
        for orow in range(out.shape[0]):
            for ocol in range(out.shape[1]):
                top, left = orow * fy, ocol * fx
                found = 0
                # Skip blocks with no return anywhere in reach (the sky, the far left and
                # right of a LiDAR image): one scan instead of a window per pixel.
                if keys[top + order[0, 0], left + order[0, 1]] != empty or not _nothing_in_reach(
                        keys, top, top + fy, left, left + fx, radius, empty):  # fmt: skip
                    for k in range(order.shape[0]):
                        key = _nearest_key(keys, top + order[k, 0], left + order[k, 1], radius,
                                          empty)  # fmt: skip
                        if key < reachable:
                            found = key
                            break
                _write(out, orow, ocol, found)

    @njit
    def dilate_windows(keys, radius, empty, reachable, row_start, row_stop, col_start,
                       col_stop, out):  # fmt: skip
        """Per footprint: the pixel with a return nearest its centre.

        Float64 squared distance, the first in row-major order on a tie, as
        ``_resize_sparse_windows``.
        """
        for orow in range(out.shape[0]):
            top, bottom = row_start[orow], row_stop[orow]
            row_centre = (top + bottom) / 2.0
            for ocol in range(out.shape[1]):
                left, right = col_start[ocol], col_stop[ocol]
                col_centre = (left + right) / 2.0
                found = 0
                if not _nothing_in_reach(keys, top, bottom, left, right, radius, empty):
                    best = np.inf
                    for r in range(top, bottom):
                        row_offset = r + 0.5 - row_centre
                        for c in range(left, right):
                            col_offset = c + 0.5 - col_centre
                            distance = row_offset * row_offset + col_offset * col_offset
                            if not distance < best:  # cannot win: skip its dilation
                                continue
                            key = _nearest_key(keys, r, c, radius, empty)
                            if key < reachable:
                                best = distance
                                found = key
                _write(out, orow, ocol, found)

    return dilate_blocks, dilate_windows


@cache
def paint_kernel() -> Any:
    """Return the compiled loop of ``pipeline.outputs.paint_points``, or ``None`` (no numba).

    Per point in view: the surface test against its pixel's z-buffer depth (float32, as numpy
    evaluates it), its camera pixel, its label, and its row of the output table, in one pass
    instead of ~15 numpy passes and gathers.
    """
    njit = numba_jit()
    if njit is None:
        return None

    @njit
    def paint(candidates, nearest, depth, uv, xyz, intensity, labels, width, height,
              scale_x, scale_y, factor, margin, table, table_labels, rows, cols):  # fmt: skip
        """Fill the table of kept points and their camera pixels; return how many."""
        count = 0
        for j in range(candidates.shape[0]):
            i = candidates[j]
            if not (depth[i] <= nearest[j] * factor + margin):
                continue
            col = min(max(np.floor((uv[i, 0] + 0.5) / scale_x), 0.0), width - 1.0)
            row = min(max(np.floor((uv[i, 1] + 0.5) / scale_y), 0.0), height - 1.0)
            c, r = np.int64(col), np.int64(row)
            table[count, 0] = xyz[i, 0]
            table[count, 1] = xyz[i, 1]
            table[count, 2] = xyz[i, 2]
            if intensity.shape[0] > 0:
                table[count, 3] = intensity[j]  # gathered per candidate
            table_labels[count] = labels[r * width + c]
            rows[count] = r
            cols[count] = c
            count += 1
        return count

    return paint


@cache
def pack_kernel() -> Any:
    """Return the compiled form of ``lidar_image.projection_keys``, or ``None`` (no numba).

    Per z-buffer winner (its values gathered contiguous, so one compiled type serves every
    cloud layout): its three codes (``encode_channel`` in float64: depth, intensity, height)
    and its depth bits, packed into the winner's pixel of the key image.
    """
    njit = numba_jit()
    if njit is None:
        return None
    _register_helpers()

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


@cache
def parallax_kernel() -> Any:
    """Return the compiled per-frame part of ``registration.ParallaxMap.maps``, or ``None``.

    numpy's float32 passes (inverse depth, ray offsets, perspective division, intrinsics)
    in one loop, operation for operation in float32.
    """
    njit = numba_jit()
    if njit is None:
        return None

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


def supports(camera: Any, points: Any, rectified: bool) -> bool:
    """Whether :func:`project` reproduces :func:`project_lidar` for these inputs."""
    return (
        not rectified
        and isinstance(points, np.ndarray)
        and points.dtype in (np.float32, np.float64)
        and (not camera.is_distorted or camera.distortion_model != "equidistant")
        and kernel() is not None
    )


def project(
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
    kept = kernel()(points, np.ascontiguousarray(T, dtype=np.float64),
                    np.array(camera.K, dtype=np.float64), coefficients, rational,
                    camera.width, camera.height, float(min_depth), float(max_depth),
                    float(cone_limit), uv, depth, candidates, pixels, zbuffer)  # fmt: skip
    candidates, pixels = candidates[:kept], pixels[:kept]
    valid = np.zeros(count, dtype=bool)
    visible = np.zeros(count, dtype=bool)
    nearest = np.empty(kept, dtype=np.float32)
    winners = np.empty(kept, dtype=np.int64)
    winner_pixels = np.empty(kept, dtype=np.int64)
    wins = finish_kernel()(candidates, pixels, depth, zbuffer, valid, visible, nearest, winners,
                           winner_pixels)  # fmt: skip
    return uv, depth, valid, visible, winners[:wins], winner_pixels[:wins], candidates, nearest


def _point_views() -> list[np.ndarray]:
    """Points in every layout the node passes (each is its own compiled type).

    Contiguous float32 and float64, and read-only strided views of a cloud
    (``msgs.cloud_xyz``), 4-byte aligned or not.
    """
    from numpy.lib.stride_tricks import as_strided

    views = [np.ones((1, 3), np.float32), np.ones((1, 3), np.float64)]
    for extra in ("<f4", "<u2"):  # x y z intensity (16 bytes), x y z ring (14 bytes)
        # Two points: numpy calls a one-point view contiguous, a different compiled type.
        cloud = np.ones(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("e", extra)])[1:]
        x = cloud["x"]
        views.append(as_strided(x, shape=(2, 3), strides=(x.strides[0], 4), writeable=False))
    return views


def warm_up() -> None:
    """Compile (or load from numba's cache) every point layout now, not on the first frame."""
    if kernel() is None:
        return
    from mlesam_ros.geometry.camera import CameraModel

    camera = CameraModel(2, 2, [[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]], [0.1, 0, 0, 0, 0])
    # Two rows: a one-row table's label column would be a contiguous ("C") view, another type.
    one, table = np.zeros(1, np.int64), np.zeros((2, 5), np.float32)
    keys, values = np.zeros(4, np.int64), np.zeros(1, np.float32)
    for points in _point_views():
        project(points, np.eye(4), camera, 0.1, np.inf, 1.25)
        for label_type in (np.uint8, np.uint16):  # mono8 and mono16 label images
            paint_kernel()(one, values, values, np.zeros((1, 2)), points, values,
                           np.zeros(1, label_type), 1, 1, 1.0, 1.0, np.float32(1.05),
                           np.float32(0.2), table, table.view(np.uint32)[:, -1], one.copy(),
                           one.copy())  # fmt: skip
    for height in (values, np.zeros(1)):  # float32 and float64 points
        pack_kernel()(one, values, values, height, 1.0, 1.0, 0.0, 1.0, keys)
    rays = np.ones(1, np.float32)
    t, k = np.float32(0.1), np.float32(1.0)
    parallax_kernel()(rays, rays, rays, rays, t, t, t, k, k, k, k, k, rays.copy(), rays.copy())
