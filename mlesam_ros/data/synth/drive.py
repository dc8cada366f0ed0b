"""Drives through the synthetic street: per-frame sensor data, labels, calibration, stamps.

A drive is deterministic under its seed and random-access: frame ``i`` uses its own random
streams (``[seed, i, sensor]``), so a training set can render any frame without the ones
before it. All sensors are rendered at the frame's nominal time from the same geometry; the
per-sensor stamps then model message timing (fixed offsets plus jitter) as a robot records it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlesam_ros.data.synth import render
from mlesam_ros.data.synth.raycast import cast
from mlesam_ros.data.synth.scene import Scene, make_street
from mlesam_ros.data.synth.sensors import (
    CameraSpec,
    LidarSpec,
    RayBundle,
    SensorRig,
    default_rig,
    rotation_rpy,
)
from mlesam_ros.geometry import make_transform

SENSORS: tuple[str, ...] = ("rgb", "depth", "thermal", "lidar")
FAILURES: dict[str, tuple[str, ...]] = {
    "rgb": ("black", "frozen", "missing"),
    "depth": ("black", "frozen", "missing"),
    "thermal": ("black", "frozen", "missing"),
    "lidar": ("jitter", "frozen", "missing"),
}
"""Failure kinds each sensor can suffer: a black frame (all zeros), a frozen frame (the
previous frame's data with a new stamp), a missing message, LiDAR jitter (points shaken)."""

# Stamp offset of each sensor from the frame's nominal time (ns) and its jitter (std, ns).
# The LiDAR stamps the start of its sweep; cameras trail the trigger by their readout.
STAMP_OFFSET_NS = {"rgb": 0, "depth": 1_500_000, "thermal": 8_000_000, "lidar": -20_000_000}
STAMP_JITTER_NS = {"rgb": 400_000, "depth": 400_000, "thermal": 1_000_000, "lidar": 150_000}
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000


@dataclass
class SyntheticFrame:
    """One frame: sensor arrays (``None`` when the message went missing), labels, metadata.

    ``rgb`` (H, W, 3) uint8; ``depth`` (H, W) float32 metres along the optical axis, 0 = no
    return, registered to ``rgb``; ``thermal`` (h, w) uint16 centi-kelvin; ``lidar`` points
    (``render.LIDAR_DTYPE``: x, y, z, intensity float32, ring uint16) in the LiDAR frame;
    ``labels`` (H, W) uint8 DELIVER ids in the RGB camera; ``lidar_labels`` per point (255 for
    rain clutter). ``rig`` holds the calibration; ``world_from_base`` the ego pose.
    """

    index: int
    condition: str
    time_s: float
    rig: SensorRig
    world_from_base: np.ndarray
    labels: np.ndarray
    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None
    thermal: np.ndarray | None = None
    lidar: np.ndarray | None = None
    lidar_labels: np.ndarray | None = None
    stamps_ns: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def camera_from_lidar(self) -> np.ndarray:
        """Return the true LiDAR → RGB optical frame extrinsic (4x4)."""
        return self.rig.camera_from_lidar


def _view_key(spec: CameraSpec | LidarSpec, with_pose: bool = True) -> bytes:
    """Identify what a sensor sees: its intrinsics (and mount), not its name."""
    if isinstance(spec, LidarSpec):
        parts = [spec.name.encode()]
    else:
        camera = spec.camera
        parts = [camera.K.tobytes(), camera.D.tobytes(), camera.distortion_model.encode(),
                 np.array([camera.width, camera.height]).tobytes()]  # fmt: skip
    if with_pose:
        parts.append(np.asarray(spec.T_base_from_sensor).tobytes())
    return b"|".join(parts)


class SyntheticDrive:
    """A car driving down a procedural street under one condition, frame by frame.

    ``failure_rate`` is the per-frame, per-sensor probability of a failure drawn from
    ``failures`` (names from ``FAILURES``); 0 gives healthy sensors.
    """

    def __init__(
        self,
        seed: int = 0,
        condition: str = "sun",
        rig: SensorRig | None = None,
        speed_mps: float = 8.0,
        frame_period_ns: int = 100_000_000,
        start_ns: int = DEFAULT_START_NS,
        failure_rate: float = 0.0,
        failures: Sequence[str] = ("black", "frozen", "missing", "jitter"),
    ) -> None:
        self.condition = render.get_condition(condition)
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate: must be in [0, 1], got {failure_rate}")
        known = {kind for kinds in FAILURES.values() for kind in kinds}
        unknown = sorted(set(failures) - known)
        if unknown:
            raise ValueError(f"failures: unknown {unknown}; choose from {sorted(known)}")
        if frame_period_ns <= 0:
            raise ValueError(f"frame_period_ns: must be > 0, got {frame_period_ns}")
        self.seed = int(seed)
        self.rig = rig or default_rig()
        self.speed_mps = float(speed_mps)
        self.frame_period_ns = int(frame_period_ns)
        self.start_ns = int(start_ns)
        self.failure_rate = float(failure_rate)
        self.failures = tuple(failures)
        setup = np.random.default_rng([self.seed, 7])
        self._lane_phase = setup.uniform(0, 2 * np.pi)
        sun_azimuth = setup.uniform(-np.pi, np.pi)
        sun_elevation = np.deg2rad(setup.uniform(25, 60))
        self.sun_direction = np.array([np.cos(sun_elevation) * np.cos(sun_azimuth),
                                       np.cos(sun_elevation) * np.sin(sun_azimuth),
                                       np.sin(sun_elevation)])  # fmt: skip
        self._scene: Scene | None = None
        self._scene_end = 0.0
        self._last_cast: tuple | None = None
        self._bundles: dict[bytes, RayBundle] = {}

    def _rays(self, spec: CameraSpec | LidarSpec) -> RayBundle:
        """Return the sensor's rays, shared between sensors with identical intrinsics."""
        if isinstance(spec, LidarSpec):
            return spec.rays
        key = _view_key(spec, with_pose=False)
        return self._bundles.setdefault(key, spec.rays)

    def scene_for(self, x: float) -> Scene:
        """Return the street, extended (same street, longer) when the ego nears its end."""
        if self._scene is None or x + 250.0 > self._scene_end:
            self._scene_end = max(400.0, 2 * (x + 250.0))
            self._scene = make_street(self.seed, -60.0, self._scene_end)
        return self._scene

    def world_from_base(self, time_s: float) -> np.ndarray:
        """Return the ego pose: right lane, gentle lateral weave, heading along the road."""
        x = self.speed_mps * time_s
        y = -1.5 + 0.25 * np.sin(0.25 * time_s + self._lane_phase)
        dy_dx = 0.25 * 0.25 * np.cos(0.25 * time_s + self._lane_phase) / max(self.speed_mps, 1e-3)
        return make_transform(rotation_rpy(0.0, 0.0, np.arctan(dy_dx)), (x, y, 0.0))

    def time_of(self, index: int) -> float:
        """Return the nominal time (s since the drive start) of frame ``index``."""
        return index * self.frame_period_ns * 1e-9

    def _failure(self, index: int, sensor: str) -> str | None:
        rng = np.random.default_rng([self.seed, index, 99, SENSORS.index(sensor)])
        kinds = [kind for kind in FAILURES[sensor] if kind in self.failures]
        if not kinds or rng.random() >= self.failure_rate:
            return None
        return str(kinds[rng.integers(len(kinds))])

    def _render_sensor(self, index: int, sensor: str, jitter: bool = False):
        """Render one sensor at frame ``index`` (no failures applied)."""
        time_s = self.time_of(index)
        world_from_base = self.world_from_base(time_s)
        scene = self.scene_for(world_from_base[0, 3])
        centers = scene.centers_at(time_s)
        rng = np.random.default_rng([self.seed, index, SENSORS.index(sensor)])
        spec = getattr(self.rig, sensor)
        # A registered depth camera sees exactly what the RGB camera sees: cast once for both.
        key = (index, _view_key(spec))
        if self._last_cast is not None and self._last_cast[0] == key:
            hits, classes = self._last_cast[1]
        else:
            world_from_sensor = world_from_base @ spec.T_base_from_sensor
            max_distance = spec.max_range + 1.0 if sensor == "lidar" else 1000.0
            x = world_from_base[0, 3]
            nearby = scene.window(x - 80.0, x + min(max_distance, 300.0), time_s)
            rays = self._rays(spec)
            hits = cast(scene, centers, rays, world_from_sensor, max_distance, nearby)
            classes = render.surface_classes(hits, scene)
            self._last_cast = (key, (hits, classes))
        condition = self.condition
        if sensor == "rgb":
            shape = (spec.height, spec.width)
            image = render.render_rgb(
                hits, scene, classes, condition, self.sun_direction, shape, rng
            )
            return image, classes.reshape(shape)
        if sensor == "depth":
            depth = render.render_depth(
                hits, self._rays(spec).directions, (spec.height, spec.width),
                self.rig.depth_max_range, self.rig.depth_noise, rng,
            )  # fmt: skip
            return depth, None
        if sensor == "thermal":
            thermal = render.render_thermal(
                hits, scene, classes, centers, condition, self.sun_direction,
                (spec.height, spec.width), rng,
            )  # fmt: skip
            return thermal, None
        points, labels = render.render_lidar(
            hits, classes, spec, condition, rng, jitter_m=0.25 if jitter else 0.0
        )
        return points, labels

    def _sensor_output(self, index: int, sensor: str, failure: str | None, depth: int = 0):
        if failure == "frozen" and index > 0 and depth < 8:
            previous = self._failure(index - 1, sensor)
            return self._sensor_output(index - 1, sensor, previous, depth + 1)
        if failure == "missing":
            return None, None
        data, extra = self._render_sensor(index, sensor, jitter=failure == "jitter")
        if failure == "black":
            data = np.zeros_like(data)
        return data, extra

    def frame(self, index: int) -> SyntheticFrame:
        """Render frame ``index`` (any order; deterministic)."""
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        time_s = self.time_of(index)
        failures = {s: f for s in SENSORS if (f := self._failure(index, s)) is not None}
        # Labels are the truth of the scene, so they come from a healthy render of the RGB
        # camera even when the RGB message itself failed.
        rgb, labels = self._render_sensor(index, "rgb")
        if "rgb" in failures:
            rgb, _ = self._sensor_output(index, "rgb", failures["rgb"])
        frame = SyntheticFrame(
            index=index,
            condition=self.condition.name,
            time_s=time_s,
            rig=self.rig,
            world_from_base=self.world_from_base(time_s),
            labels=labels,
            rgb=rgb,
            failures=failures,
        )
        frame.depth, _ = self._sensor_output(index, "depth", failures.get("depth"))
        frame.thermal, _ = self._sensor_output(index, "thermal", failures.get("thermal"))
        frame.lidar, frame.lidar_labels = self._sensor_output(
            index, "lidar", failures.get("lidar")
        )
        stamp_rng = np.random.default_rng([self.seed, index, 42])
        nominal = self.start_ns + index * self.frame_period_ns
        for sensor in SENSORS:
            jitter = int(np.clip(stamp_rng.normal(0.0, STAMP_JITTER_NS[sensor]),
                                 -3 * STAMP_JITTER_NS[sensor], 3 * STAMP_JITTER_NS[sensor]))
            frame.stamps_ns[sensor] = nominal + STAMP_OFFSET_NS[sensor] + jitter  # fmt: skip
        return frame

    def frames(self, count: int, start: int = 0) -> Iterator[SyntheticFrame]:
        """Yield ``count`` consecutive frames from ``start``."""
        if count < 0:
            raise ValueError(f"frames: count must be >= 0, got {count}")
        for index in range(start, start + count):
            yield self.frame(index)
