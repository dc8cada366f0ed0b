"""One LiDAR sweep for several cameras: decoded once, culled once, projected into each camera.

With one camera the LiDAR step decodes its sweep and projects every point (the compiled
projection culls as it goes). Around a rig of cameras the same sweep would be decoded and
pushed through every camera's projection in full, although each camera sees only its own
slice of the 360°. :class:`SweepCache` keeps the decoded sweep (keyed by the message object,
which the node hands every camera), and :meth:`Sweep.in_view` gives each camera only the
points in its horizontal sector, from azimuths computed once per sweep. The LiDAR step uses
that cull before its numpy passes only: the compiled projection rejects a point outside the
camera in a few nanoseconds, so there a sector cull (an azimuth pass plus a gather) costs
about what it saves (timed on a 4-camera rig with a 123k-point sweep).

The sector test is conservative (it never drops a point the camera's projection would keep):
the camera's border rays, taken into the LiDAR frame, span an azimuth interval as seen from
the camera's centre; a point seen from the LiDAR's origin at horizontal distance ``r`` is off
by at most ``asin(d / r)`` from its azimuth seen from the camera (``d``: the horizontal
distance between the two), so the interval is widened by that for ``r >= NEAR_FACTOR * d``,
and points nearer than that are kept for every camera. Cameras whose rays cannot be bounded
by one interval (a fisheye wider than :data:`MAX_SECTOR_RAD`, a camera looking straight up or
down) get the whole sweep.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesam_ros.geometry import CameraModel
from mlesam_ros.msgs import cloud_field, cloud_xyz, pointcloud2_to_array
from mlesam_ros.pipeline.grid import camera_fingerprint

NEAR_FACTOR = 10.0
"""Points nearer the LiDAR's axis than this many camera offsets are kept for every camera."""
MIN_NEAR_M = 1.0
"""... and never fewer metres than this."""
BORDER_SAMPLES = 64
"""Rays per image edge that bound a camera's sector."""
MARGIN_RAD = np.deg2rad(1.0)
"""Extra width on each side of a sector (float32 azimuths, border sampling)."""
MAX_SECTOR_RAD = np.deg2rad(300.0)
"""A wider sector is not worth a cull: such a camera gets the whole sweep."""
MIN_HORIZONTAL = 0.1
"""A border ray steeper than this (horizontal part of a unit ray) makes the sector unbounded."""


@dataclass(frozen=True)
class Sector:
    """Azimuth interval ``[low, high]`` (rad, LiDAR frame; may pass ±π) and the near radius."""

    low: float
    high: float
    near_m: float


def camera_sector(
    T_camera_from_lidar: np.ndarray,  # noqa: N803 (frame-naming convention, see transforms)
    camera: CameraModel,
) -> Sector | None:
    """Return the azimuth sector of the LiDAR's x-y plane where ``camera`` sees, or None.

    ``None``: the camera's view cannot be bounded by one sector (see the module docstring).
    """
    rotation = np.asarray(T_camera_from_lidar, np.float64)[:3, :3]
    translation = np.asarray(T_camera_from_lidar, np.float64)[:3, 3]
    width, height = camera.width, camera.height
    steps = np.linspace(0.0, 1.0, BORDER_SAMPLES)
    u = np.concatenate([steps * width, np.full_like(steps, width), steps * width,
                        np.zeros_like(steps)]) - 0.5  # fmt: skip
    v = np.concatenate([np.zeros_like(steps), steps * height, np.full_like(steps, height),
                        steps * height]) - 0.5  # fmt: skip
    rays = camera.pixels_to_rays(np.stack([u, v], axis=1))
    rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
    in_lidar = rays @ rotation  # R_lidar_from_camera @ ray, for row vectors
    horizontal = np.hypot(in_lidar[:, 0], in_lidar[:, 1])
    if not np.isfinite(in_lidar).all() or horizontal.min() < MIN_HORIZONTAL:
        return None
    azimuth = np.arctan2(in_lidar[:, 1], in_lidar[:, 0])
    centre = np.arctan2(np.mean(np.sin(azimuth)), np.mean(np.cos(azimuth)))
    relative = np.angle(np.exp(1j * (azimuth - centre)))  # wrapped to (-π, π]
    offset = -(rotation.T @ translation)  # the camera's centre in the LiDAR frame
    near = max(MIN_NEAR_M, NEAR_FACTOR * float(np.hypot(offset[0], offset[1])))
    widen = np.arcsin(min(1.0, float(np.hypot(offset[0], offset[1])) / near)) + MARGIN_RAD
    low, high = centre + relative.min() - widen, centre + relative.max() + widen
    if high - low > MAX_SECTOR_RAD:
        return None
    return Sector(float(low), float(high), near)


@dataclass
class Sweep:
    """One decoded LiDAR message: its points (a view of the message) and, once asked, azimuths.

    ``cull_ms`` adds up the time spent culling it for the cameras (diagnostics, benchmark).
    """

    message: Any
    cloud: np.ndarray
    xyz: np.ndarray
    intensity: np.ndarray | None
    decode_ms: float
    cull_ms: float = 0.0
    _azimuth: np.ndarray | None = None
    _radius2: np.ndarray | None = None
    _sectors: dict = field(default_factory=dict)

    def in_view(self, T_camera_from_lidar: np.ndarray, camera: CameraModel,  # noqa: N803
                cache: dict) -> np.ndarray | None:  # fmt: skip
        """Return the indices of the points ``camera`` may see (a superset); None: all.

        ``cache`` keeps each camera's sector across sweeps (it depends on calibration only).
        """
        started = time.perf_counter()
        key = (np.asarray(T_camera_from_lidar).tobytes(), camera_fingerprint(camera))
        if key not in cache:
            cache[key] = camera_sector(T_camera_from_lidar, camera)
        sector = cache[key]
        if sector is None or self.xyz.shape[0] == 0:
            return None
        if self._azimuth is None:  # once per sweep, shared by every camera
            x, y = self.xyz[:, 0], self.xyz[:, 1]
            self._azimuth = np.arctan2(y, x)
            self._radius2 = x * x + y * y
        azimuth = self._azimuth
        low, high = sector.low, sector.high
        inside = (azimuth >= low) & (azimuth <= high)
        if low < -np.pi:  # the sector passes -π: its other end sits near +π
            inside |= azimuth >= low + 2 * np.pi
        if high > np.pi:
            inside |= azimuth <= high - 2 * np.pi
        inside |= self._radius2 < np.float32(sector.near_m**2)
        indices = np.flatnonzero(inside)
        self.cull_ms += (time.perf_counter() - started) * 1e3
        return indices


class SweepCache:
    """The last few sweeps, decoded once for every camera that matched them.

    Keyed by the message object (the node decodes each LiDAR message once and offers that
    object to every camera); a reference to the message is kept so its identity stays unique.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._sweeps: OrderedDict[int, Sweep] = OrderedDict()
        self.sectors: dict = {}

    def decode(self, message: Any, topic: str) -> Sweep:
        """Return the decoded sweep of ``message`` (``ValueError`` naming ``topic``)."""
        sweep = self._sweeps.get(id(message))
        if sweep is not None and sweep.message is message:
            self._sweeps.move_to_end(id(message))
            return sweep
        started = time.perf_counter()
        cloud = pointcloud2_to_array(message, topic, skip_nans=False)
        sweep = Sweep(message, cloud, cloud_xyz(cloud), cloud_field(cloud, "intensity"), 0.0)
        sweep.decode_ms = (time.perf_counter() - started) * 1e3
        self._sweeps[id(message)] = sweep
        while len(self._sweeps) > self.size:
            self._sweeps.popitem(last=False)
        return sweep

    def get(self, message: Any) -> Sweep | None:
        """Return the sweep of ``message`` if it was decoded and is still kept."""
        sweep = self._sweeps.get(id(message))
        return sweep if sweep is not None and sweep.message is message else None
