"""Sensor models of the synthetic robot: intrinsics, mounts and the rays each sensor casts.

Frames follow ROS conventions: ``base_link`` (x forward, y left, z up, on the ground), camera
optical frames (z forward, x right, y down) and a LiDAR frame like ``base_link``. Mounts are
``T_base_from_sensor`` 4x4 transforms. Rays are computed once per sensor and grouped into
tiles with a bounding cone, which is what lets the ray caster skip most ray/object pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mlesam_ros.geometry import CameraModel, invert_transform, make_transform

# Rotation taking optical-frame vectors (z fwd, x right, y down) to body vectors (x fwd, y
# left, z up), i.e. R_body_from_optical.
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation matrix R = Rz(yaw) @ Ry(pitch) @ Rx(roll) (REP 103 fixed-axis RPY)."""
    cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                              np.cos(yaw), np.sin(yaw))  # fmt: skip
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])  # fmt: skip


@dataclass(eq=False)
class RayBundle:
    """Unit ray directions (N, 3) in the sensor frame, laid out as a (rows, cols) grid.

    ``tile_rays`` (T, n) lists the ray indices of each tile (edge tiles repeat indices, which
    is harmless: a repeated ray gets the same answer twice); ``tile_axis`` (T, 3) and
    ``tile_cos``/``tile_sin`` (T,) describe the cone that contains every ray of the tile.
    """

    directions: np.ndarray
    rows: int
    cols: int
    tile_rays: np.ndarray = field(init=False)
    tile_axis: np.ndarray = field(init=False)
    tile_cos: np.ndarray = field(init=False)
    tile_sin: np.ndarray = field(init=False)
    tile_size: tuple[int, int] = (8, 16)

    def __post_init__(self) -> None:
        th, tw = self.tile_size
        grid = np.arange(self.rows * self.cols).reshape(self.rows, self.cols)
        pad_r, pad_c = -self.rows % th, -self.cols % tw
        grid = np.pad(grid, ((0, pad_r), (0, pad_c)), mode="edge")
        nr, nc = grid.shape[0] // th, grid.shape[1] // tw
        tiles = grid.reshape(nr, th, nc, tw).transpose(0, 2, 1, 3).reshape(nr * nc, th * tw)
        dirs = self.directions[tiles]  # (T, n, 3)
        axis = dirs.mean(axis=1)
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        cos_min = np.clip(np.einsum("tnk,tk->tn", dirs, axis).min(axis=1), -1.0, 1.0)
        # Widen a little so rounding never drops a ray on the cone's edge.
        half_angle = np.arccos(cos_min) + 1e-4
        self.tile_rays = tiles
        self.tile_axis = axis
        self.tile_cos = np.cos(half_angle)
        self.tile_sin = np.sin(half_angle)


@dataclass(eq=False)
class CameraSpec:
    """A camera of the rig: its ``CameraModel`` (intrinsics, distortion) and its mount."""

    name: str
    frame_id: str
    camera: CameraModel
    T_base_from_sensor: np.ndarray

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return self.camera.width

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return self.camera.height

    @cached_property
    def rays(self) -> RayBundle:
        """Return the unit ray through every pixel centre (row-major) in the optical frame."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        pixels = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
        # CameraModel.undistort iterates to convergence, so rays and the projection used by
        # the LiDAR code are exact inverses of each other.
        dirs = self.camera.pixels_to_rays(pixels)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        return RayBundle(dirs, self.height, self.width)


@dataclass(eq=False)
class LidarSpec:
    """A spinning LiDAR: ``beams`` rings evenly spread over ``vertical_fov_deg``.

    One revolution gives ``azimuth_steps`` columns. Noise is Gaussian range noise and random
    drop-outs; ``max_range`` clips returns like a real sensor's spec sheet.
    """

    name: str
    frame_id: str
    beams: int
    azimuth_steps: int
    T_base_from_sensor: np.ndarray
    vertical_fov_deg: tuple[float, float] = (-25.0, 5.0)
    max_range: float = 120.0
    min_range: float = 0.5
    range_noise_m: float = 0.02
    dropout: float = 0.02

    @cached_property
    def elevations(self) -> np.ndarray:
        """Return beam elevations (rad), ring 0 lowest as in Velodyne drivers."""
        lo, hi = np.deg2rad(self.vertical_fov_deg)
        return np.linspace(lo, hi, self.beams)

    @cached_property
    def rays(self) -> RayBundle:
        """Return rays on a (beams, azimuth_steps) grid; columns sweep azimuth +π → -π."""
        azimuth = np.pi - 2 * np.pi * (np.arange(self.azimuth_steps) + 0.5) / self.azimuth_steps
        el, az = np.meshgrid(self.elevations, azimuth, indexing="ij")
        dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
        return RayBundle(dirs.reshape(-1, 3), self.beams, self.azimuth_steps)


@dataclass(eq=False)
class SensorRig:
    """All sensors of the robot. ``depth`` is registered to ``rgb`` (same pose, intrinsics)."""

    rgb: CameraSpec
    depth: CameraSpec
    thermal: CameraSpec
    lidar: LidarSpec
    depth_max_range: float = 80.0
    depth_noise: float = 0.0005
    """Depth noise σ = depth_noise · z² (m), like a stereo camera; 0 for exact depth."""
    base_frame: str = "base_link"

    def transform(self, target: str, source: str) -> np.ndarray:
        """Return ``T_target_from_source`` between two named sensors (rgb, depth, ...)."""
        sensors = {"rgb": self.rgb, "depth": self.depth, "thermal": self.thermal,
                   "lidar": self.lidar}  # fmt: skip
        for name in (target, source):
            if name not in sensors:
                raise ValueError(f"sensor: unknown {name!r}; choose from {', '.join(sensors)}")
        return invert_transform(sensors[target].T_base_from_sensor) @ (
            sensors[source].T_base_from_sensor
        )

    @property
    def camera_from_lidar(self) -> np.ndarray:
        """Return the LiDAR → RGB optical frame extrinsic (the calibration users need)."""
        return self.transform("rgb", "lidar")


def _intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    f = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def default_rig(
    width: int = 640,
    height: int = 480,
    lidar_beams: int = 64,
    lidar_azimuth_steps: int = 1024,
    thermal_size: tuple[int, int] | None = None,
    distortion: bool = True,
    noise: bool = True,
) -> SensorRig:
    """Return a car-like rig: roof LiDAR, forward RGB-D camera and an offset thermal camera.

    ``thermal_size`` (width, height) defaults to half the RGB width at 5:4, like a 320x256
    microbolometer next to a VGA camera. ``distortion``/``noise`` off give an ideal rig (no lens
    distortion, exact depth and LiDAR ranges, no drop-outs) for exact geometry checks.
    """
    for label, value in (("width", width), ("height", height)):
        if int(value) < 8:
            raise ValueError(f"{label}: must be at least 8 pixels, got {value}")
    if lidar_beams < 2 or lidar_azimuth_steps < 8:
        raise ValueError("lidar: need at least 2 beams and 8 azimuth steps")
    pitch = np.deg2rad(3.0)  # cameras look slightly down at the road
    R_cam = rotation_rpy(0.0, pitch, 0.0) @ R_BODY_FROM_OPTICAL
    T_rgb = make_transform(R_cam, (1.6, 0.0, 1.5))
    K = _intrinsics(width, height, 80.0)
    D = np.array([-0.06, 0.012, 0.0004, -0.0003, 0.0]) if distortion else np.zeros(5)
    rgb = CameraSpec("rgb", "camera_optical_frame", CameraModel(width, height, K, D), T_rgb)
    depth = CameraSpec("depth", "depth_optical_frame", CameraModel(width, height, K, D),
                       T_rgb.copy())  # fmt: skip
    tw, th = thermal_size or (max(8, width // 2), max(8, round(width // 2 * 0.8)))
    R_thermal = rotation_rpy(0.0, pitch + np.deg2rad(1.0), np.deg2rad(-2.0)) @ R_BODY_FROM_OPTICAL
    thermal = CameraSpec("thermal", "thermal_optical_frame",
                         CameraModel(tw, th, _intrinsics(tw, th, 50.0)),
                         make_transform(R_thermal, (1.55, -0.25, 1.45)))  # fmt: skip
    lidar = LidarSpec(
        "lidar", "lidar", lidar_beams, lidar_azimuth_steps,
        make_transform(rotation_rpy(0.0, 0.0, np.deg2rad(1.5)), (1.2, 0.0, 1.95)),
        range_noise_m=0.02 if noise else 0.0, dropout=0.02 if noise else 0.0,
    )  # fmt: skip
    return SensorRig(rgb, depth, thermal, lidar, depth_noise=0.0005 if noise else 0.0)
