"""Step 1 of the frame path per optional sensor: its message → its image on the model grid.

Depth, thermal and LiDAR each come into the RGB camera on the working grid
(:mod:`mlesam_ros.pipeline.grid`) and leave as the model's 3-channel image at the model's
input size (:mod:`mlesam_ros.pipeline.fused`), with the encodings training uses. Each runs in
its own guard (:meth:`SensorInputs.run`): anything wrong with one sensor (bad encoding, no
CameraInfo, empty cloud, no extrinsics, wrong size, no valid pixel, any exception) becomes an
:class:`Issue` naming the sensor, the topic and the fix, and the frame goes on without it.
What depends only on the calibration (camera models, the working camera, registration
tables) is cached here and rebuilt when the calibration changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesam_ros.data.resample import area_resize
from mlesam_ros.geometry import CameraModel
from mlesam_ros.geometry.transforms import allclose
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.grid import CalibrationCache, camera_fingerprint
from mlesam_ros.pipeline.outputs import PaintableCloud

# Sensor input key → model modality.
MODALITY_OF_INPUT = {"rgb": "rgb", "depth": "depth", "thermal": "thermal", "points": "lidar"}
# Optional sensor input key → the modality it feeds (each is processed in its own guard).
OPTIONAL_SENSORS = ("depth", "thermal", "points")

Lookup = Callable[[str, str, int], np.ndarray]
"""``lookup(target_frame, source_frame, stamp_ns) -> T_target_from_source`` or ``LookupError``."""


@dataclass(frozen=True)
class Issue:
    """Why a sensor was left out of a frame (or the frame was skipped)."""

    sensor: str
    topic: str
    text: str

    def __str__(self) -> str:
        """One log line: topic first, then what is wrong and how to fix it."""
        return f"[{self.sensor} {self.topic}] {self.text}"


@dataclass
class FrameJob:
    """One synced frame waiting for the worker: messages by input key plus camera infos."""

    stamp_ns: int
    messages: dict[str, Any]
    infos: dict[str, Any]
    ready_ns: int
    ready_monotonic: float = field(default_factory=time.monotonic)


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

    def run(
        self, sensor: str, job: FrameJob, prepared: PreparedFrame, frame_id: str, lookup: Lookup
    ) -> None:
        """Run one optional sensor into ``prepared``; whatever goes wrong leaves only it out."""
        modality = MODALITY_OF_INPUT[sensor]
        step = {"depth": self._depth, "thermal": self._thermal, "points": self._points}[sensor]
        try:
            step(job, prepared, frame_id, lookup)
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
        return camera

    def scaled(self, camera: CameraModel, height: int, width: int, name: str) -> CameraModel:
        """``camera.scaled(width, height)``, cached per calibration (keeps its pixel rays)."""
        key = (camera_fingerprint(camera), height, width)
        return self.cache.get(name, key, lambda: camera.scaled(width, height))

    def grid(self, camera: CameraModel) -> CameraModel:
        """Return the RGB camera on the working grid (the camera itself for small cameras)."""
        from mlesam_ros.pipeline.grid import working_size

        height, width = working_size(camera.size, self.model_size)
        if (height, width) == camera.size:
            return camera
        return self.scaled(camera, height, width, "grid")

    def _extrinsic(
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

    def _sensor_camera(
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
        from mlesam_ros.msgs import camera_info_to_camera

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

    def _depth(
        self, job: FrameJob, prepared: PreparedFrame, rgb_frame: str, lookup: Lookup
    ) -> None:
        from mlesam_ros.geometry import register_depth
        from mlesam_ros.msgs import header_stamp_ns, image_to_depth_m, image_to_numpy
        from mlesam_ros.pipeline.fused import depth_model_image, sample_depth

        topic, msg, issues = self.config.topics["depth"], job.messages["depth"], prepared.issues
        try:
            # 32FC1 is already metres: a view of the message, not a camera-size copy; its
            # invalid pixels (0, NaN, inf; REP 118) become NaN once on the working grid.
            decode = image_to_numpy if str(msg.encoding) == "32FC1" else image_to_depth_m
            depth = decode(msg, topic)
        except ValueError as error:
            issues.append(Issue("depth", topic, f"{error}; depth left out of this frame"))
            return
        T = self._extrinsic("depth", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
        if T is None:
            return
        direct, depth_camera = self._sensor_camera("depth", depth.shape, T, job, prepared)
        grid = prepared.grid
        if direct:
            grid_size = grid.size if grid is not None else prepared.size
        elif depth_camera is None:
            return
        else:
            # Every stride-th depth pixel is enough to fill a grid that many times coarser.
            stride = max(1, min(depth.shape[0] // grid.height, depth.shape[1] // grid.width))
            depth = register_depth(depth, depth_camera, grid, T, stride=stride)
            grid_size = grid.size
        depth_grid, valid_count = sample_depth(depth, grid_size)
        if not valid_count:
            text = ("no valid depth pixel in the RGB camera's view (all 0, NaN or out of "
                    "view); depth left out of this frame")  # fmt: skip
            issues.append(Issue("depth", topic, text))
            return
        prepared.depth_grid = depth_grid
        if "depth" in self.used:
            prepared.images["depth"] = depth_model_image(depth_grid, self.model_size)

    def _thermal(
        self, job: FrameJob, prepared: PreparedFrame, rgb_frame: str, lookup: Lookup
    ) -> None:
        from mlesam_ros.geometry import ParallaxMap, remap
        from mlesam_ros.msgs import header_stamp_ns, image_to_numpy
        from mlesam_ros.pipeline.fused import positive_percentiles, thermal_model_image

        topic, msg, issues = (
            self.config.topics["thermal"],
            job.messages["thermal"],
            prepared.issues,
        )
        if str(msg.encoding) not in ("mono8", "mono16"):
            issues.append(
                Issue(
                    "thermal",
                    topic,
                    f"encoding '{msg.encoding}' is not a thermal "
                    "encoding; publish mono8 or mono16 (raw counts)",
                )
            )
            return
        try:
            thermal = image_to_numpy(msg, topic).astype(np.float32)
        except ValueError as error:
            issues.append(Issue("thermal", topic, f"{error}; thermal left out of this frame"))
            return
        T = self._extrinsic("thermal", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
        if T is None:
            return
        direct, thermal_camera = self._sensor_camera("thermal", thermal.shape, T, job, prepared)
        if "thermal" not in self.used:  # checked and reported, but nothing feeds on it
            return
        grid = prepared.grid
        if direct:
            warped = thermal if grid is None else area_resize(thermal, grid.size)
        elif thermal_camera is None:
            return
        else:
            import cv2

            key = (camera_fingerprint(thermal_camera), camera_fingerprint(grid),
                   np.asarray(T, np.float64).tobytes())  # fmt: skip
            parallax = self.cache.get(
                "thermal_rays", key, lambda: ParallaxMap(thermal_camera, grid, T)
            )
            if prepared.depth_grid is not None:
                # Exact parallax from this frame's depth: the tables change every frame, but
                # only the working grid's pixels, from rays rotated once per calibration.
                maps = parallax.maps(prepared.depth_grid)
            else:  # a plane at infinity: the tables are fixed, in OpenCV's fixed-point form
                maps = self.cache.get("thermal_map", key, lambda: cv2.convertMaps(
                    *parallax.maps(None), cv2.CV_16SC2))  # fmt: skip
            warped = remap(thermal, maps)
        # Contrast from the pixels the thermal camera sees, blank elsewhere: the same encoding
        # as training (``mlesam_ros.data.synthetic_dataset.frame_to_images``).
        value_range = positive_percentiles(warped, (1.0, 99.0))
        if value_range is None:
            text = ("no thermal pixel > 0 in the RGB camera's view (a black or covered "
                    "camera, or out of view); thermal left out")  # fmt: skip
            issues.append(Issue("thermal", topic, text))
            return
        prepared.images["thermal"] = thermal_model_image(warped, value_range, self.model_size)

    def _points(
        self, job: FrameJob, prepared: PreparedFrame, rgb_frame: str, lookup: Lookup
    ) -> None:
        from mlesam_ros.geometry import compiled, frustum_candidates, project_lidar
        from mlesam_ros.geometry.lidar_image import projection_keys
        from mlesam_ros.msgs import cloud_field, cloud_xyz, header_stamp_ns, pointcloud2_to_array
        from mlesam_ros.pipeline.fused import lidar_model_image

        topic, msg, issues = self.config.topics["points"], job.messages["points"], prepared.issues
        try:
            # A view of the message; points with a NaN coordinate fall out in the view cull.
            cloud = pointcloud2_to_array(msg, topic, skip_nans=False)
        except ValueError as error:
            issues.append(Issue("points", topic, f"{error}; LiDAR left out of this frame"))
            return
        empty = "empty point cloud (no finite x, y, z); LiDAR left out of this frame"
        if cloud.size == 0:
            issues.append(Issue("points", topic, empty))
            return
        if prepared.camera is None or prepared.grid is None:
            text = "cannot project the LiDAR without the RGB CameraInfo; LiDAR left out"
            issues.append(Issue("points", topic, text))
            return
        T = self._extrinsic("points", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
        if T is None:
            return
        sweep = cloud_xyz(cloud)
        xyz, intensity = sweep, cloud_field(cloud, "intensity")
        grid = prepared.grid
        if not compiled.supports(grid, xyz, rectified=False):
            # A spinning LiDAR puts most points outside a camera's view: for the numpy passes,
            # keep only those the exact projection may use (one float32 pass; the result equals
            # projecting them all). The compiled loop culls as it goes, faster than this pass.
            in_view = frustum_candidates(xyz, T, grid, min_depth=0.1)
            xyz = xyz[in_view]
            intensity = None if intensity is None else intensity[in_view]
        # One projection, on the working grid: the LiDAR image and the labelled points share it.
        projection = project_lidar(xyz, T, grid, min_depth=0.1)
        if projection.point_index.size == 0:
            if not np.isfinite(sweep).all(axis=1).any():  # judged on the whole sweep
                issues.append(Issue("points", topic, empty))
                return
            text = ("no LiDAR point lands in the RGB camera's view (check the extrinsic); "
                    "LiDAR left out of this frame")  # fmt: skip
            issues.append(Issue("points", topic, text))
            return
        if "lidar" in self.used:
            keys = projection_keys(
                projection, xyz, intensity,
                intensity_max=self.config.lidar_intensity_max,
                max_range=self.config.lidar_max_range_m,
            )  # fmt: skip
            prepared.images["lidar"] = lidar_model_image(
                keys, self.config.lidar_dilation, self.model_size
            )
        scale = (grid.width / prepared.size[1], grid.height / prepared.size[0])
        prepared.cloud = PaintableCloud(xyz, intensity, msg.header, projection, scale)

    # -- 2. model input -----------------------------------------------------------------------
