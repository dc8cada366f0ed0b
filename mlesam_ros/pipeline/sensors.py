"""What every optional sensor's step shares: the frame's records, the guard, calibration.

Depth, thermal and LiDAR (``pipeline/depth.py``, ``thermal.py``, ``lidar.py``: one module per
sensor) each come into the RGB camera on the working grid (:mod:`mlesam_ros.pipeline.grid`)
and leave as the model's 3-channel image at the model's input size, with the encodings
training uses. Each runs in its own guard (:meth:`SensorInputs.run`): anything wrong with one
sensor (bad encoding, no CameraInfo, empty cloud, no extrinsics, wrong size, no valid pixel,
any exception) becomes an :class:`Issue` naming the sensor, the topic and the fix, and the
frame goes on without it. What depends only on the calibration (camera models, the working
camera, registration tables) is cached here and rebuilt when the calibration changes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesam_ros.geometry import CameraModel
from mlesam_ros.geometry.transforms import allclose
from mlesam_ros.msgs import camera_info_to_camera
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.grid import CalibrationCache, camera_fingerprint, working_size
from mlesam_ros.text import bounded

_NUMBER = re.compile(r"[-+]?\d[\d.eE+-]*")

# Sensor input key → model modality.
MODALITY_OF_INPUT = {"rgb": "rgb", "depth": "depth", "thermal": "thermal", "points": "lidar"}
# Optional sensor input key → the modality it feeds (each is processed in its own guard).
OPTIONAL_SENSORS = ("depth", "thermal", "points")

Lookup = Callable[[str, str, int], np.ndarray]
"""``lookup(target_frame, source_frame, stamp_ns) -> T_target_from_source`` or ``LookupError``."""
SensorStep = Callable[["SensorInputs", "FrameJob", "PreparedFrame", str, Lookup], None]
"""``step(inputs, job, prepared, rgb_frame, lookup)``: one sensor into ``prepared`` (issues)."""


@dataclass(frozen=True)
class Issue:
    """Why a sensor was left out of a frame (or the frame was skipped)."""

    sensor: str
    topic: str
    text: str

    def __str__(self) -> str:
        """One log line: topic first, then what is wrong and how to fix it."""
        return f"[{self.sensor} {bounded(self.topic, 120)}] {bounded(self.text, 600)}"

    @property
    def kind(self) -> str:
        """The issue without its numbers: what the log repeats once per kind, not per value.

        ("header.stamp is -96418427.8 s from the node clock" changes every frame.)
        """
        return f"{self.sensor}:{_NUMBER.sub('#', self.text)[:80]}"


@dataclass
class FrameJob:
    """One synced frame waiting for the worker: messages by input key plus camera infos."""

    stamp_ns: int
    messages: dict[str, Any]
    infos: dict[str, Any]
    ready_ns: int
    ready_monotonic: float = field(default_factory=time.monotonic)
    rgb_arrival_ns: int | None = None
    """Node clock when the RGB message arrived (the start of the frame's sync wait)."""


@dataclass
class PreparedFrame:
    """A frame's modality images in the RGB camera, already on the model's input grid."""

    stamp_ns: int
    header: Any
    size: tuple[int, int]  # (H, W) of the outputs (the RGB camera)
    camera: CameraModel | None
    rgb: np.ndarray | None
    images: dict[str, np.ndarray]  # modality → (h, w, 3) uint8 at the model's input size
    issues: list[Issue]
    cloud: Any = None
    """:class:`PaintableCloud` when the LiDAR was usable (reused for the labelled points)."""
    grid: CameraModel | None = None
    """The RGB camera on the working grid (``mlesam_ros.pipeline.grid``) when it is known."""
    depth_grid: np.ndarray | None = None
    """Depth (m, NaN unknown) on the working grid, for the thermal registration."""
    degraded: dict[str, str] = field(default_factory=dict)
    """Input key → what it lacks that the model's encoding uses (still fused, but not as in
    training): no LiDAR intensity, a calibration with non-finite rays. Reported once."""


_EYE4 = np.eye(4)


def _is_identity(transform: np.ndarray) -> bool:
    return allclose(transform, _EYE4, atol=1e-9)


def _same_camera(a: CameraModel, b: CameraModel) -> bool:
    return (
        a.size == b.size
        and a.distortion_model == b.distortion_model
        and allclose(a.K, b.K)
        and np.array_equal(np.asarray(a.D), np.asarray(b.D))
    )


class SensorInputs:
    """Registers and encodes the optional sensors of one frame for one model.

    ``used``: the model modalities fed (others are checked and reported, not encoded);
    ``model_size``: the model's ``(H, W)`` input. The frame path swaps ``config`` when a
    run-time parameter changes.
    """

    def __init__(self, config: NodeConfig, used: tuple[str, ...],
                 model_size: tuple[int, int]) -> None:  # fmt: skip
        self.config = config
        self.used = used
        self.model_size = model_size
        self.cache = CalibrationCache()
        self._cameras: dict[str, tuple[tuple, CameraModel]] = {}
        self.calibration_notes: dict[str, str] = {}
        """Input key → what is wrong with its current calibration (unusable rays)."""
        self.sweeps: Any = None
        """A :class:`~mlesam_ros.pipeline.sweep.SweepCache` the cameras of a rig share."""

    def run(
        self,
        sensor: str,
        step: SensorStep,
        job: FrameJob,
        prepared: PreparedFrame,
        frame_id: str,
        lookup: Lookup,
    ) -> None:
        """Run one optional sensor's ``step`` into ``prepared``; a failure leaves only it out."""
        modality = MODALITY_OF_INPUT[sensor]
        try:
            step(self, job, prepared, frame_id, lookup)
        except Exception as error:  # per-sensor isolation: never lose the frame
            prepared.images.pop(modality, None)
            if sensor == "depth":
                prepared.depth_grid = None
            if sensor == "points":
                prepared.cloud = None
            prepared.issues.append(
                Issue(
                    sensor,
                    self.config.topics[sensor],
                    f"{type(error).__name__}: {error}; {sensor} left out of this frame",
                )
            )

    def camera(self, info: Any, sensor: str, issues: list[Issue], convert) -> CameraModel | None:
        """``convert(info, topic)``, reused while the calibration is unchanged; None + issue."""
        topic = self.config.info_topics[sensor]
        if info is None:
            issues.append(
                Issue(
                    sensor,
                    topic,
                    "no CameraInfo received; publish it on this "
                    f"topic or set topics.{sensor}_info (needed to register "
                    "depth, thermal and LiDAR into the RGB camera)",
                )
            )
            return None
        # Drivers resend the same calibration with every image; reusing the CameraModel keeps
        # its cached per-pixel rays (an iterative undistortion of every pixel) across frames.
        calibration = (np.asarray(getattr(info, name), np.float64).tobytes() for name in "kdrp")
        key = (
            *calibration,
            int(info.width),
            int(info.height),
            str(info.distortion_model),
            int(getattr(info, "binning_x", 0)),
            int(getattr(info, "binning_y", 0)),
            repr(getattr(info, "roi", None)),
        )
        cached = self._cameras.get(sensor)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            camera = convert(info, topic)
        except ValueError as error:
            issues.append(Issue(sensor, topic, str(error)))
            return None
        self._cameras[sensor] = (key, camera)
        share = camera.unusable_ray_share
        if share > 0:
            coefficients = ", ".join(f"{value:.4g}" for value in camera.D)
            self.calibration_notes[sensor] = (
                f"CameraInfo ({camera.distortion_model}, D=[{coefficients}]) "
                f"gives no usable ray for {share:.0%} of the image (its lens model cannot be "
                "inverted there: it diverges, overflows or folds back); those pixels get no "
                "registered depth, thermal or LiDAR: check the calibration"
            )
        else:
            self.calibration_notes.pop(sensor, None)
        return camera

    def scaled(self, camera: CameraModel, height: int, width: int, name: str) -> CameraModel:
        """``camera.scaled(width, height)``, cached per calibration (keeps its pixel rays)."""
        key = (camera_fingerprint(camera), height, width)
        return self.cache.get(name, key, lambda: camera.scaled(width, height))

    def grid(self, camera: CameraModel) -> CameraModel:
        """Return the RGB camera on the working grid (the camera itself for small cameras)."""
        height, width = working_size(camera.size, self.model_size)
        if (height, width) == camera.size:
            return camera
        return self.scaled(camera, height, width, "grid")

    def extrinsic(
        self,
        key: str,
        rgb_frame: str,
        msg: Any,
        stamp_ns: int,
        lookup: Lookup,
        issues: list[Issue],
    ) -> np.ndarray | None:
        """``T_rgb_from_sensor`` from tf (at the sensor stamp) or the configured value."""
        topic = self.config.topics[key]
        if self.config.extrinsics_source == "config":
            return self.config.configured_extrinsics[key]
        source = str(msg.header.frame_id)
        if not source or not rgb_frame:
            issues.append(
                Issue(
                    key,
                    topic,
                    "empty header.frame_id: cannot look up tf; set the "
                    "driver's frame_id or extrinsics.source: config",
                )
            )
            return None
        try:
            return lookup(rgb_frame, source, stamp_ns)
        except LookupError as error:
            issues.append(Issue(key, topic, f"{error}"))
            return None

    def sensor_camera(
        self,
        sensor: str,
        image_size: tuple[int, int],
        T: np.ndarray,  # noqa: N803 (frame-naming convention, see geometry.transforms)
        job: FrameJob,
        prepared: PreparedFrame,
    ) -> tuple[bool, CameraModel | None]:
        """``(direct, sensor_camera)``: direct when the image is already the RGB camera's.

        Returns ``(False, None)`` after noting an issue when the sensor cannot be registered.
        """
        topic, issues = self.config.topics[sensor], prepared.issues
        info = job.infos.get(sensor)
        sensor_camera = (
            None if info is None else self.camera(info, sensor, issues, camera_info_to_camera)
        )
        rgb_camera = prepared.camera
        if (
            _is_identity(T)
            and image_size == prepared.size
            and (
                sensor_camera is None
                or rgb_camera is None
                or _same_camera(sensor_camera, rgb_camera)
            )
        ):
            return True, sensor_camera
        if sensor_camera is None or rgb_camera is None:
            issues.append(
                Issue(
                    sensor,
                    topic,
                    f"{sensor} is not registered to the RGB camera "
                    f"and a CameraInfo is missing; {sensor} left out",
                )
            )
            return False, None
        if image_size != sensor_camera.size:
            issues.append(
                Issue(
                    sensor,
                    topic,
                    f"image {image_size[::-1]} does not match "
                    f"its CameraInfo {sensor_camera.size[::-1]} (width, height)",
                )
            )
            return False, None
        return False, sensor_camera
