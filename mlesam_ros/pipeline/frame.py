"""The frame path: synced messages → modality images on the model's grid → model → outputs.

One synced RGB frame goes through four steps, each a method of :class:`FramePath`:

1. ``prepare``: decode every message (``mlesam_ros.msgs``), bring depth, thermal and LiDAR
   into the RGB camera (``mlesam_ros.geometry``) on a working grid near the model's input
   (``mlesam_ros.pipeline.grid``: the camera itself for small cameras) and encode each as the
   model's 3-channel image with the same functions training uses (``mlesam_ros.data.encode``),
   so the robot feeds the model what it was trained on. Each optional sensor runs in its own
   guard: anything wrong with it (bad encoding, no CameraInfo, empty cloud, no extrinsics,
   wrong size, no valid pixel, any exception) becomes an :class:`Issue` naming the sensor,
   the topic and the fix, and the frame goes on without that modality.
2. ``model_input``: stack the model-grid images ``(1, M, 3, H, W)`` + ``present``.
3. the segmenter (``mlesam_ros.engine.Segmenter``).
4. ``postprocess`` (``mlesam_ros.pipeline.outputs``): labels back to the camera resolution
   (nearest neighbour, ids never blend), confidence (bilinear), the colour overlay and the
   painted LiDAR points (from the projection made in step 1), each only when asked for.

``FramePath.stage_ms`` holds the last frame's time per stage (``mlesam bench --stages``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.geometry import CameraModel
from mlesam_ros.geometry.transforms import allclose
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.grid import CalibrationCache, camera_fingerprint
from mlesam_ros.pipeline.outputs import OutputMaker, PaintableCloud

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


@dataclass
class FrameResult:
    """Everything published for one frame."""

    stamp_ns: int
    header: Any
    labels: np.ndarray  # (H, W) uint8 or uint16 at camera resolution
    confidence: np.ndarray | None
    overlay: np.ndarray | None
    points: np.ndarray | None  # structured x, y, z[, intensity], label
    points_header: Any
    point_pixels: np.ndarray | None  # (N, 2) row, col of each painted point in the image
    present: dict[str, bool]  # model modality → fused in this frame
    issues: list[Issue]
    palette: np.ndarray  # (num_classes, 3) uint8 class colours of the overlay


def default_palette(class_names: Sequence[str]) -> np.ndarray:
    """DELIVER or Cityscapes colours when the class names match, else distinct hues."""
    from mlesam_ros.data.classes import CLASS_SETS

    for class_set in CLASS_SETS.values():
        if tuple(class_names) == tuple(class_set.names):
            return np.asarray(class_set.palette, dtype=np.uint8)
    import colorsys

    # Golden-ratio hue steps keep neighbouring ids far apart in colour.
    return np.array(
        [
            [round(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)]
            for i in range(len(class_names))
        ],
        dtype=np.uint8,
    )


def load_palette(path: str | Path, num_classes: int) -> np.ndarray:
    """Read a YAML list of ``[r, g, b]`` (0..255), one per class (``palette:`` key optional)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"output.palette_file: {path} does not exist")
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict):
        data = data.get("palette")
    palette = np.asarray(data if data is not None else [], dtype=np.int64)
    if palette.ndim != 2 or palette.shape[1] != 3 or palette.shape[0] < num_classes:
        raise ValueError(
            f"output.palette_file: {path} must list [r, g, b] for each of the {num_classes} "
            f"classes, got shape {palette.shape}"
        )
    if palette.min() < 0 or palette.max() > 255:
        raise ValueError(f"output.palette_file: {path} has values outside 0..255")
    return palette[:num_classes].astype(np.uint8)


def nearest_resize(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an id image to ``size`` (H, W), sampling pixel centres.

    The same index arithmetic as training's label resize, so ids never blend.
    """
    from mlesam_ros.pipeline.grid import nearest_sample

    if tuple(size) == labels.shape[:2]:
        return labels
    return nearest_sample(labels, size)


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


class _StageClock:
    """Adds wall and CPU time per stage name to ``FramePath.stage_ms`` / ``stage_cpu_ms``.

    CPU time (this process) is what a stage costs even when other jobs share the core.
    """

    def __init__(self, wall: dict[str, float], cpu: dict[str, float]) -> None:
        self.sinks = ((wall, time.perf_counter), (cpu, time.process_time))
        self.last = [clock() for _, clock in self.sinks]

    def lap(self, name: str) -> None:
        for index, (sink, clock) in enumerate(self.sinks):
            now = clock()
            sink[name] = sink.get(name, 0.0) + (now - self.last[index]) * 1e3
            self.last[index] = now


class FramePath:
    """Turns :class:`FrameJob`s into :class:`FrameResult`s with one segmenter.

    ``segmenter`` is anything with ``modalities``, ``input_size``, ``class_names`` and
    ``segment(images, present)`` (``mlesam_ros.engine.Segmenter``).
    """

    def __init__(self, segmenter: Any, config: NodeConfig) -> None:
        self.segmenter = segmenter
        self.config = config
        self.modalities: tuple[str, ...] = tuple(segmenter.modalities)
        self.class_names: tuple[str, ...] = tuple(segmenter.class_names)
        self.model_size: tuple[int, int] = tuple(int(v) for v in segmenter.input_size)
        allowed = config.modalities or self.modalities
        self.used = tuple(m for m in self.modalities if m in allowed)
        if not self.used:
            raise ValueError(
                f"parameter model.modalities: none of {', '.join(config.modalities or ())} is "
                f"a modality of the model ({', '.join(self.modalities)})"
            )
        self.palette = (
            load_palette(config.palette_file, len(self.class_names))
            if config.palette_file
            else default_palette(self.class_names)
        )
        self.label_encoding = "mono8" if len(self.class_names) <= 255 else "mono16"
        self._cameras: dict[str, tuple[tuple, CameraModel]] = {}
        self.cache = CalibrationCache()
        self.outputs = OutputMaker(self.palette, config.overlay_alpha)
        from mlesam_ros.geometry import compiled
        from mlesam_ros.pipeline import fused

        compiled.warm_up()  # ~1 s the first time, then numba's on-disk cache: not on frame 1
        fused.warm_up()
        self.stage_ms: dict[str, float] = {}
        self.stage_cpu_ms: dict[str, float] = {}

    @property
    def config(self) -> NodeConfig:
        """The parameters in force; the core swaps them when a run-time parameter changes."""
        return self._config

    @config.setter
    def config(self, config: NodeConfig) -> None:
        # Run-time parameters (overlay alpha, LiDAR scales, dilation) apply from the next frame;
        # the overlay's blend weight lives in the output maker, so it follows here.
        self._config = config
        if hasattr(self, "outputs"):
            self.outputs.alpha = float(config.overlay_alpha)

    # -- 1. decode, register and encode on the model grid -------------------------------------

    def prepare(self, job: FrameJob, lookup: Lookup) -> PreparedFrame:
        """Decode and register every sensor of ``job``; problems become issues, not errors."""
        from mlesam_ros.msgs import camera_info_to_camera, image_to_rgb8, make_header

        self.stage_ms, self.stage_cpu_ms = {}, {}
        clock = _StageClock(self.stage_ms, self.stage_cpu_ms)
        config, issues = self.config, []
        rgb_topic = config.topics["rgb"]
        rgb_msg = job.messages["rgb"]
        rgb = None
        try:
            rgb = image_to_rgb8(rgb_msg, rgb_topic)
        except ValueError as error:
            issues.append(Issue("rgb", rgb_topic, f"{error}; RGB left out of this frame"))
        camera = self._camera(job.infos.get("rgb"), "rgb", issues, camera_info_to_camera)
        if camera is not None and rgb is not None and camera.size != rgb.shape[:2]:
            issues.append(
                Issue(
                    "rgb",
                    config.info_topics["rgb"],
                    f"CameraInfo is {camera.width}x{camera.height} but the image is "
                    f"{rgb.shape[1]}x{rgb.shape[0]}; scaling the intrinsics (fix "
                    "the driver's camera_info or its binning/roi)",
                )
            )
            camera = self._scaled(camera, rgb.shape[0], rgb.shape[1], "rgb_scaled")
        size = rgb.shape[:2] if rgb is not None else (camera.size if camera else None)
        header = make_header(rgb_msg.header)
        frame_id = str(rgb_msg.header.frame_id)
        prepared = PreparedFrame(job.stamp_ns, header, size or (0, 0), camera, rgb, {}, issues)
        if size is None:
            issues.append(
                Issue(
                    "rgb",
                    rgb_topic,
                    "no usable RGB image and no CameraInfo: the "
                    "output size is unknown, frame skipped",
                )
            )
            return prepared
        if camera is not None:
            prepared.grid = self._grid(camera)
        clock.lap("decode rgb")
        if rgb is not None and "rgb" in self.used:
            from mlesam_ros.pipeline.grid import area_resize

            prepared.images["rgb"] = area_resize(rgb, self.model_size)
            clock.lap("rgb to model")
        if not frame_id:
            issues.append(
                Issue(
                    "rgb",
                    rgb_topic,
                    "header.frame_id is empty; set the camera "
                    "driver's frame_id so the other sensors can be projected",
                )
            )
        for sensor in OPTIONAL_SENSORS:
            if sensor in job.messages:
                self._isolated(sensor, job, prepared, frame_id, lookup)
                clock.lap(sensor)
        return prepared

    def _isolated(
        self, sensor: str, job: FrameJob, prepared: PreparedFrame, frame_id: str, lookup: Lookup
    ) -> None:
        """Run one optional sensor; whatever goes wrong leaves only that sensor out."""
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

    def _camera(self, info: Any, sensor: str, issues: list[Issue], convert) -> CameraModel | None:
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

    def _scaled(self, camera: CameraModel, height: int, width: int, name: str) -> CameraModel:
        """``camera.scaled(width, height)``, cached per calibration (keeps its pixel rays)."""
        key = (camera_fingerprint(camera), height, width)
        return self.cache.get(name, key, lambda: camera.scaled(width, height))

    def _grid(self, camera: CameraModel) -> CameraModel:
        """Return the RGB camera on the working grid (the camera itself for small cameras)."""
        from mlesam_ros.pipeline.grid import working_size

        height, width = working_size(camera.size, self.model_size)
        if (height, width) == camera.size:
            return camera
        return self._scaled(camera, height, width, "grid")

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
            None if info is None else self._camera(info, sensor, issues, camera_info_to_camera)
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
        from mlesam_ros.pipeline.grid import area_resize

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

    def model_input(self, prepared: PreparedFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(1, M, 3, H, W)`` uint8 images at the model size and ``(1, M)`` presence."""
        height, width = self.model_size
        images = np.zeros((1, len(self.modalities), 3, height, width), dtype=np.uint8)
        present = np.zeros((1, len(self.modalities)), dtype=bool)
        for slot, modality in enumerate(self.modalities):
            image = prepared.images.get(modality)
            if image is not None:
                images[0, slot] = image.transpose(2, 0, 1)
                present[0, slot] = True
        return images, present

    # -- 4. outputs ---------------------------------------------------------------------------

    def postprocess(
        self,
        prepared: PreparedFrame,
        labels: np.ndarray,
        confidence: np.ndarray | None,
        present: np.ndarray,
        *,
        want_confidence: bool,
        want_overlay: bool,
        want_points: bool,
    ) -> FrameResult:
        """Labels at camera resolution plus the optional outputs that were asked for."""
        from mlesam_ros.pipeline.outputs import paint_points

        clock = _StageClock(self.stage_ms, self.stage_cpu_ms)
        size = prepared.size
        dtype = np.uint8 if self.label_encoding == "mono8" else np.uint16
        full_labels = self.outputs.labels(labels, size, dtype)
        clock.lap("labels upsample")
        full_confidence = None
        if want_confidence and confidence is not None:
            full_confidence = self.outputs.confidence(confidence, size)
            clock.lap("confidence")
        overlay = None
        if want_overlay:
            overlay = self.outputs.overlay(np.asarray(labels), size, prepared.rgb)
            clock.lap("overlay")
        points, points_header, point_pixels = None, None, None
        if want_points and prepared.cloud is not None:
            points, point_pixels = paint_points(prepared.cloud, full_labels)
            points_header = prepared.cloud.header
            clock.lap("labelled points")
        for output in (full_labels, full_confidence, overlay):
            # Fresh arrays, frozen: the messages share them instead of copying (msgs.image).
            if output is not None and output.base is None:
                output.flags.writeable = False
        return FrameResult(
            stamp_ns=prepared.stamp_ns,
            header=prepared.header,
            labels=full_labels,
            confidence=full_confidence,
            overlay=overlay,
            points=points,
            points_header=points_header,
            point_pixels=point_pixels,
            present={m: bool(p) for m, p in zip(self.modalities, present[0], strict=True)},
            issues=prepared.issues,
            palette=self.palette,
        )
