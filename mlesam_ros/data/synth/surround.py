"""A surround rig on the synthetic street: several cameras around one roof LiDAR.

Each camera is an RGB camera with a registered depth camera (one ray cast serves both), its
own mount, frame names, exact labels and its own stamp jitter; the LiDAR is the single-rig
drive's, rendered once per frame. Neighbouring cameras overlap (each sees a little more than
its share of the 360°), so a LiDAR point can land in two images: the case the node's fused
labelled cloud resolves. Every camera is rendered by a :class:`SyntheticDrive` of the same
seed (same street, same ego motion), so frames stay deterministic and random-access.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mlesam_ros.data.synth.drive import STAMP_JITTER_NS, STAMP_OFFSET_NS, SyntheticDrive
from mlesam_ros.data.synth.sensors import (
    R_BODY_FROM_OPTICAL,
    CameraSpec,
    LidarSpec,
    SensorRig,
    _intrinsics,
    default_rig,
    rotation_rpy,
)
from mlesam_ros.geometry import CameraModel, make_transform

CAMERA_NAMES = ("front", "left", "rear", "right", "front_left", "rear_left", "rear_right",
                "front_right")  # fmt: skip
"""Camera names in the order ``surround_rig`` adds them (4 cameras: front, left, rear, right)."""
OVERLAP_DEG = 20.0
"""How much wider than its share of the 360° each camera sees (the overlap with a neighbour)."""


@dataclass(eq=False)
class SurroundRig:
    """Cameras (name → RGB spec; depth registered to it) around one LiDAR on ``base_link``."""

    cameras: dict[str, CameraSpec]
    depths: dict[str, CameraSpec]
    lidar: LidarSpec
    base_frame: str = "base_link"

    def camera_from_lidar(self, name: str) -> np.ndarray:
        """``T_camera_from_lidar`` of camera ``name``."""
        camera = self.cameras[name].T_base_from_sensor
        return np.linalg.inv(camera) @ self.lidar.T_base_from_sensor


def surround_rig(
    cameras: int = 4,
    width: int = 640,
    height: int = 480,
    lidar_beams: int = 64,
    lidar_azimuth_steps: int = 2048,
    noise: bool = True,
) -> SurroundRig:
    """Return ``cameras`` (1..8) cameras spread evenly around the car, plus the roof LiDAR.

    Camera ``k`` looks at yaw ``360° k / cameras`` (front first, then counter-clockwise:
    left, rear, right for four) with a horizontal field of view of its share plus
    :data:`OVERLAP_DEG` (at most 120°), mounted 1.6 m up, 0.4 m out from the roof centre.
    """
    if not 1 <= cameras <= len(CAMERA_NAMES):
        raise ValueError(f"cameras: choose 1..{len(CAMERA_NAMES)}, got {cameras}")
    single = default_rig(width, height, lidar_beams=lidar_beams,
                         lidar_azimuth_steps=lidar_azimuth_steps, noise=noise)  # fmt: skip
    hfov = min(120.0, 360.0 / cameras + OVERLAP_DEG) if cameras > 1 else 80.0
    K = _intrinsics(width, height, hfov)
    D = np.array([-0.06, 0.012, 0.0004, -0.0003, 0.0]) if noise else np.zeros(5)
    rgb, depth = {}, {}
    for k, name in enumerate(CAMERA_NAMES[:cameras]):
        yaw = 2 * np.pi * k / cameras
        R = rotation_rpy(0.0, np.deg2rad(3.0), yaw) @ R_BODY_FROM_OPTICAL
        position = (1.2 + 0.4 * np.cos(yaw), 0.4 * np.sin(yaw), 1.6)
        T = make_transform(R, position)
        rgb[name] = CameraSpec(name, f"{name}_camera_optical_frame",
                               CameraModel(width, height, K, D), T)  # fmt: skip
        depth[name] = CameraSpec(f"{name}_depth", f"{name}_depth_optical_frame",
                                 CameraModel(width, height, K, D), T.copy())  # fmt: skip
    return SurroundRig(rgb, depth, single.lidar, single.base_frame)


@dataclass
class SurroundFrame:
    """One frame of every camera: images, exact labels and stamps per camera, one sweep.

    ``rgb``/``depth``/``labels`` map camera name → array (``None`` for a camera whose
    message went missing); ``lidar``/``lidar_labels`` as in ``SyntheticFrame``.
    """

    index: int
    condition: str
    rig: SurroundRig
    rgb: dict[str, np.ndarray | None]
    depth: dict[str, np.ndarray | None]
    labels: dict[str, np.ndarray]
    lidar: np.ndarray | None
    lidar_labels: np.ndarray | None
    stamps_ns: dict[str, int] = field(default_factory=dict)


class SurroundDrive:
    """The street drive seen by a :class:`SurroundRig`; ``dead`` cameras stop from a frame.

    ``dead`` maps a camera name to the first frame it no longer publishes (a camera dying
    mid-drive).
    """

    def __init__(self, seed: int = 0, condition: str = "sun", rig: SurroundRig | None = None,
                 dead: dict[str, int] | None = None, **drive_options) -> None:  # fmt: skip
        self.rig = rig or surround_rig()
        self.seed = int(seed)
        self.dead = dict(dead or {})
        unknown = sorted(set(self.dead) - set(self.rig.cameras))
        if unknown:
            raise ValueError(f"dead: unknown camera {unknown}; the rig has "
                             f"{', '.join(self.rig.cameras)}")  # fmt: skip
        self.drives = {}
        for name, camera in self.rig.cameras.items():
            rig = SensorRig(camera, self.rig.depths[name], dataclasses.replace(camera),
                            self.rig.lidar)  # fmt: skip
            self.drives[name] = SyntheticDrive(seed, condition, rig=rig, **drive_options)
        self.condition = next(iter(self.drives.values())).condition.name
        self.frame_period_ns = next(iter(self.drives.values())).frame_period_ns
        self.start_ns = next(iter(self.drives.values())).start_ns

    def frame(self, index: int) -> SurroundFrame:
        """Render frame ``index`` of every camera and the sweep (any order; deterministic)."""
        rgb, depth, labels = {}, {}, {}
        first = next(iter(self.drives.values()))
        for drive in self.drives.values():
            drive.start_ns = self.start_ns
        for name, drive in self.drives.items():
            image, truth = drive._render_sensor(index, "rgb")
            labels[name] = truth
            alive = index < self.dead.get(name, index + 1)
            rgb[name] = image if alive else None
            depth[name] = drive._render_sensor(index, "depth")[0] if alive else None
        points, point_labels = first._render_sensor(index, "lidar")
        stamp_rng = np.random.default_rng([self.seed, index, 43])
        nominal = self.start_ns + index * self.frame_period_ns

        def jitter(sensor: str) -> int:
            spread = STAMP_JITTER_NS[sensor]
            return int(np.clip(stamp_rng.normal(0.0, spread), -3 * spread, 3 * spread))

        stamps = {"lidar": nominal + STAMP_OFFSET_NS["lidar"] + jitter("lidar")}
        for name in self.rig.cameras:
            stamps[name] = nominal + STAMP_OFFSET_NS["rgb"] + jitter("rgb")
            stamps[f"{name}/depth"] = stamps[name] + STAMP_OFFSET_NS["depth"]
        return SurroundFrame(index, self.condition, self.rig, rgb, depth, labels, points,
                             point_labels, stamps)  # fmt: skip

    def frames(self, count: int, start: int = 0) -> Iterator[SurroundFrame]:
        """Yield ``count`` consecutive frames from ``start``."""
        if count < 0:
            raise ValueError(f"frames: count must be >= 0, got {count}")
        for index in range(start, start + count):
            yield self.frame(index)
