"""Pinhole camera with the ROS CameraInfo distortion models.

Models: plumb_bob, rational_polynomial and equidistant (fisheye).
The distortion maths is written once with plain arithmetic plus an ``xp`` namespace (numpy or
torch), so the torch LiDAR path runs the very same formulas as the numpy path. It matches
OpenCV's ``projectPoints`` (tested); OpenCV itself is not used here because it works on one
image's points at a time on the CPU and cannot run inside the torch path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from mlesam_ros.text import quote

# Number of coefficients of each model, in CameraInfo ``D`` order.
DISTORTION_MODELS: dict[str, int] = {
    "plumb_bob": 5,  # k1, k2, p1, p2, k3
    "rational_polynomial": 8,  # k1, k2, p1, p2, k3, k4, k5, k6
    "equidistant": 4,  # fisheye k1, k2, k3, k4
}


def _quiet(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``method`` with numpy's floating-point warnings off.

    A valid but extreme lens model (a rational denominator crossing zero, coefficients near
    the float range) overflows or divides by zero far off axis. Those rays come out
    non-finite, and that is the answer: :attr:`CameraModel.unusable_ray_share` measures it
    and the node reports it once, instead of numpy printing ``RuntimeWarning``s per frame.
    """

    @functools.wraps(method)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return method(*args, **kwargs)

    return quiet


def _radial_and_tangential(
    x: Any, y: Any, coefficients: tuple[float, ...]
) -> tuple[Any, Any, Any]:
    """Radial factor and tangential offsets of the plumb_bob / rational_polynomial models."""
    k1, k2, p1, p2, k3 = coefficients[:5]
    k4, k5, k6 = coefficients[5:8] if len(coefficients) >= 8 else (0.0, 0.0, 0.0)
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if k4 or k5 or k6:  # plumb_bob's denominator is exactly 1: skip its passes
        radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return radial, dx, dy


def _equidistant(x: Any, y: Any, coefficients: tuple[float, ...], xp: Any) -> tuple[Any, Any]:
    k1, k2, k3, k4 = coefficients[:4]
    r = xp.sqrt(x * x + y * y)
    theta = xp.arctan(r)
    t2 = theta * theta
    theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    scale = xp.where(r > 1e-12, theta_d / xp.where(r > 1e-12, r, 1.0), 1.0)
    return x * scale, y * scale


@dataclass(eq=False)
class CameraModel:
    """Intrinsics of one camera as in ``sensor_msgs/CameraInfo``.

    ``K`` maps normalised coordinates of the raw (distorted) image to pixels; ``R`` and ``P``
    describe the rectified image (``P`` is ``None`` when the driver gave none). Pixel centres
    sit at integer coordinates, as in OpenCV and ROS.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    distortion_model: str = "plumb_bob"
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    P: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Validate and normalise so that a bad calibration fails here, not in a projection."""
        self.width, self.height = int(self.width), int(self.height)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"camera: width and height must be > 0, got {self.width}x{self.height}"
            )
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        if not np.any(self.K):
            raise ValueError("camera: K is all zeros (uncalibrated camera); calibrate it first")
        if not np.isfinite(self.K).all() or self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise ValueError(f"camera: K needs finite fx, fy > 0, got {self.K.tolist()}")
        model = self.distortion_model or "plumb_bob"
        D = np.asarray(self.D, dtype=np.float64).reshape(-1)
        if model not in DISTORTION_MODELS:
            raise ValueError(
                f"camera: unknown distortion_model {quote(model)}; supported: "
                f"{', '.join(DISTORTION_MODELS)}"
            )
        size = DISTORTION_MODELS[model]
        if D.size > size and np.any(D[size:]):
            raise ValueError(
                f"camera: distortion_model {quote(model)} takes {size} coefficients, got {D.size}"
            )
        self.D = np.pad(D[:size], (0, size - min(D.size, size)))
        self.distortion_model = model
        if not np.isfinite(self.D).all():
            raise ValueError(f"camera: D has non-finite values {self.D.tolist()}")
        self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        if self.P is not None:
            self.P = np.asarray(self.P, dtype=np.float64).reshape(3, 4)
            if not np.any(self.P):
                self.P = None

    @property
    def is_distorted(self) -> bool:
        """Whether any distortion coefficient is non-zero."""
        return bool(np.any(self.D))

    @cached_property
    def max_ray_slope(self) -> float:
        """Largest ``sqrt(x^2 + y^2)`` of an undistorted ray that still lands in the image.

        Lens polynomials fold far-off-axis rays back into the picture; projections cull rays
        beyond this slope (plus a margin) before distorting. Treat a model as immutable after
        first use: this value is cached.
        """
        w, h = self.width - 0.5, self.height - 0.5
        border = np.array(
            [
                [-0.5, -0.5],
                [w, -0.5],
                [-0.5, h],
                [w, h],
                [w / 2, -0.5],
                [w / 2, h],
                [-0.5, h / 2],
                [w, h / 2],
            ]
        )
        rays = self.pixels_to_rays(border)
        slopes = np.hypot(rays[:, 0], rays[:, 1])
        slopes = slopes[np.isfinite(slopes)]
        # No finite border ray (a diverging model): nothing is culled by slope.
        return float(slopes.max()) if slopes.size else float("inf")

    @cached_property
    def unusable_ray_share(self) -> float:
        """Share of the image (a 33 x 33 sample of pixels) without a usable undistorted ray.

        A ray is unusable when it is not finite or does not project back onto its pixel
        (within 1 px): the lens model diverges or overflows there (see :func:`_quiet`), and
        the pixel cannot be registered. 0 for any sane calibration.
        """
        cols = np.linspace(-0.5, self.width - 0.5, 33)
        rows = np.linspace(-0.5, self.height - 0.5, 33)
        uv = np.stack(np.meshgrid(cols, rows), -1).reshape(-1, 2)
        rays = self.pixels_to_rays(uv)
        with np.errstate(all="ignore"):
            back = np.stack(self.project_xyz(rays[:, 0], rays[:, 1], rays[:, 2]), -1)
            usable = np.isfinite(rays).all(axis=-1) & (np.abs(back - uv) <= 1.0).all(axis=-1)
        return float(np.mean(~usable))

    @cached_property
    def pixel_rays(self) -> np.ndarray:
        """Undistorted rays ``(H, W, 3)`` (``z = 1``) through every pixel centre, cached."""
        rows, cols = np.mgrid[0 : self.height, 0 : self.width]
        uv = np.stack([cols.ravel(), rows.ravel()], -1).astype(np.float64)
        return self.pixels_to_rays(uv).reshape(self.height, self.width, 3)

    def pixel_rays_every(self, stride: int) -> np.ndarray:
        """:attr:`pixel_rays` of every ``stride``-th row and column, contiguous and cached.

        The node registers a 1080p depth image from every 5th pixel: undistorting only those
        takes 1/25 of the time and memory of all rays, and a contiguous copy is gathered from
        several times faster than a strided view of the full table.
        """
        if stride == 1:
            return self.pixel_rays
        cache = self.__dict__.setdefault("_strided_rays", {})
        if stride not in cache:
            rows, cols = np.mgrid[0 : self.height : stride, 0 : self.width : stride]
            uv = np.stack([cols.ravel(), rows.ravel()], -1).astype(np.float64)
            cache[stride] = self.pixels_to_rays(uv).reshape(*rows.shape, 3)
        return cache[stride]

    @property
    def size(self) -> tuple[int, int]:
        """Image size as ``(height, width)``."""
        return self.height, self.width

    @_quiet
    def distort(self, xy: Any, xp: Any = np) -> Any:
        """Map undistorted normalised coordinates ``(N, 2)`` to distorted ones."""
        x, y = xy[..., 0], xy[..., 1]
        if not self.is_distorted:
            return xy
        coefficients = tuple(float(value) for value in self.D)
        if self.distortion_model == "equidistant":
            xd, yd = _equidistant(x, y, coefficients, xp)
        else:
            radial, dx, dy = _radial_and_tangential(x, y, coefficients)
            xd, yd = x * radial + dx, y * radial + dy
        return xp.stack([xd, yd], -1)

    @_quiet
    def undistort(self, xy_distorted: np.ndarray, iterations: int = 100) -> np.ndarray:
        """Invert :meth:`distort` by fixed-point iteration (numpy, float64).

        OpenCV's ``undistortPoints`` stops after 5 iterations by default and leaves pixel-size
        errors at the image edges of wide lenses; this iterates until converged.
        """
        target = np.asarray(xy_distorted, dtype=np.float64)
        if not self.is_distorted:
            return target.copy()
        coefficients = tuple(float(value) for value in self.D)
        if self.distortion_model == "equidistant":
            return self._undistort_equidistant(target, coefficients, iterations)
        # OpenCV's fixed point: x = (x_d - tangential(x)) / radial(x), run to convergence.
        x, y = target[..., 0].copy(), target[..., 1].copy()
        for _ in range(iterations):
            radial, dx, dy = _radial_and_tangential(x, y, coefficients)
            x_next = (target[..., 0] - dx) / radial
            y_next = (target[..., 1] - dy) / radial
            change = max(
                np.max(np.abs(x_next - x), initial=0.0), np.max(np.abs(y_next - y), initial=0.0)
            )
            x, y = x_next, y_next
            if change < 1e-14:
                break
        return np.stack([x, y], -1)

    @staticmethod
    @_quiet
    def _undistort_equidistant(
        target: np.ndarray, coefficients: tuple[float, ...], iterations: int
    ) -> np.ndarray:
        k1, k2, k3, k4 = coefficients
        theta_d = np.hypot(target[..., 0], target[..., 1])
        theta = theta_d.copy()
        for _ in range(iterations):  # Newton on theta * (1 + k1 t^2 + ...) = theta_d
            t2 = theta * theta
            f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d
            df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
            step = f / df
            theta -= step
            if np.max(np.abs(step), initial=0.0) < 1e-14:
                break
        scale = np.where(theta_d > 1e-12, np.tan(theta) / np.where(theta_d > 1e-12, theta_d, 1), 1)
        return target * scale[..., None]

    def project(self, points: Any, rectified: bool = False, xp: Any = np) -> Any:
        """Project camera-frame points ``(N, 3)`` to pixel coordinates ``(N, 2)``.

        ``rectified=False`` gives raw-image pixels (``K`` and distortion); ``True`` gives
        rectified-image pixels (``P @ [R X; 1]``). Points with ``z <= 0`` give meaningless
        coordinates: cull them first. ``xp`` is ``numpy`` or ``torch`` (for tensors).
        """
        u, v = self.project_xyz(points[..., 0], points[..., 1], points[..., 2], rectified, xp)
        return xp.stack([u, v], -1)

    @_quiet
    def project_xyz(
        self, x: Any, y: Any, z: Any, rectified: bool = False, xp: Any = np
    ) -> tuple[Any, Any]:
        """Column form of :meth:`project`: ``(u, v)`` from coordinate arrays, no stacking."""
        if rectified:
            P, R = self.rectified_projection(), self.R
            xr = R[0, 0] * x + R[0, 1] * y + R[0, 2] * z
            yr = R[1, 0] * x + R[1, 1] * y + R[1, 2] * z
            zr = R[2, 0] * x + R[2, 1] * y + R[2, 2] * z
            u = P[0, 0] * xr + P[0, 1] * yr + P[0, 2] * zr + P[0, 3]
            v = P[1, 0] * xr + P[1, 1] * yr + P[1, 2] * zr + P[1, 3]
            w = P[2, 0] * xr + P[2, 1] * yr + P[2, 2] * zr + P[2, 3]
            return u / w, v / w
        xn, yn = x / z, y / z
        if self.is_distorted:
            coefficients = tuple(float(value) for value in self.D)
            if self.distortion_model == "equidistant":
                xn, yn = _equidistant(xn, yn, coefficients, xp)
            else:
                radial, dx, dy = _radial_and_tangential(xn, yn, coefficients)
                xn, yn = xn * radial + dx, yn * radial + dy
        K = self.K
        return K[0, 0] * xn + K[0, 1] * yn + K[0, 2], K[1, 1] * yn + K[1, 2]

    @_quiet
    def pixels_to_rays(self, uv: np.ndarray) -> np.ndarray:
        """Undistorted rays ``(N, 3)`` with ``z = 1`` through raw-image pixels ``(N, 2)``."""
        uv = np.asarray(uv, dtype=np.float64)
        K = self.K
        y = (uv[..., 1] - K[1, 2]) / K[1, 1]
        x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
        xy = self.undistort(np.stack([x, y], -1))
        return np.concatenate([xy, np.ones_like(xy[..., :1])], -1)

    @_quiet
    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Camera-frame points ``(N, 3)`` at ``depth`` (z, metres) behind raw-image pixels."""
        return self.pixels_to_rays(uv) * np.asarray(depth, dtype=np.float64)[..., None]

    def rectified_projection(self) -> np.ndarray:
        """``P`` when given, else ``[K | 0]`` (an ideal camera with the same intrinsics)."""
        if self.P is not None:
            return self.P
        return np.concatenate([self.K, np.zeros((3, 1))], axis=1)

    def scaled(self, width: int, height: int) -> CameraModel:
        """Return this camera for an image resized to ``width`` x ``height``.

        Uses the pixel-centre convention ``u' = (u + 0.5) * s - 0.5`` that ``cv2.resize``
        follows, so labels and projections stay aligned after resizing.
        """
        sx, sy = width / self.width, height / self.height
        scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        P = None if self.P is None else scale @ self.P
        return CameraModel(
            width, height, scale @ self.K, self.D.copy(), self.distortion_model, self.R.copy(), P
        )
