"""The frame path: synced messages → modality images on the model's grid → model → outputs.

One synced RGB frame goes through four steps, each a method of :class:`FramePath`:

1. ``prepare``: decode the RGB image and its CameraInfo, shrink it to the model input, and
   hand depth, thermal and LiDAR to :class:`~mlesam_ros.pipeline.sensors.SensorInputs`, which
   brings each into the RGB camera on a working grid near the model's input
   (``mlesam_ros.pipeline.grid``) and encodes it as the model's 3-channel image with
   training's encodings (one module per sensor: ``depth``, ``thermal``, ``lidar``), so the
   robot feeds the model what it
   was trained on. Each optional sensor runs in its own guard: anything wrong with it becomes
   an :class:`Issue` naming the sensor, the topic and the fix, and the frame goes on without
   that modality.
2. ``model_input``: stack the model-grid images ``(1, M, 3, H, W)`` + ``present``.
3. the segmenter (``mlesam_ros.engine.Segmenter``).
4. ``postprocess`` (``mlesam_ros.pipeline.outputs``): labels back to the camera resolution
   (nearest neighbour, ids never blend), confidence (bilinear), the colour overlay and the
   painted LiDAR points (from the projection made in step 1), each only when asked for.

``FramePath.stage_ms`` holds the last frame's time per stage (``mlesam bench --stages``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlesam_ros import jit
from mlesam_ros.data.resample import area_resize
from mlesam_ros.msgs import camera_info_to_camera, image_to_rgb8, make_header
from mlesam_ros.pipeline.classes import published_classes
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.depth import prepare_depth
from mlesam_ros.pipeline.grid import CalibrationCache
from mlesam_ros.pipeline.image_transport import decompress_sensors, input_topic, raw_image
from mlesam_ros.pipeline.lidar import prepare_points
from mlesam_ros.pipeline.outputs import OutputMaker, default_palette, load_palette, paint_points
from mlesam_ros.pipeline.sensors import (
    MODALITY_OF_INPUT,
    OPTIONAL_SENSORS,
    FrameJob,
    Issue,
    Lookup,
    PreparedFrame,
    SensorInputs,
    SensorStep,
)
from mlesam_ros.pipeline.thermal import prepare_thermal

__all__ = ["MODALITY_OF_INPUT", "FrameJob", "FramePath", "FrameResult", "Issue",
           "PreparedFrame"]  # fmt: skip
# The optional sensors' steps, each in its own guard (``SensorInputs.run``).
SENSOR_STEPS: dict[str, SensorStep] = {
    "depth": prepare_depth, "thermal": prepare_thermal, "points": prepare_points}


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
    camera: str = ""  # the camera's name in a rig (cameras.names), '' for the one camera


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
        # What is published: the model's classes or the class map's (pipeline.classes).
        self.classes = published_classes(config.class_map_file, self.class_names)
        self.points_classes = self.classes.select(config.labeled_points_classes)
        self.label_encoding = self.classes.encoding
        self.sensors = SensorInputs(config, self.used, self.model_size)
        self.outputs = OutputMaker(self.palette, config.overlay_alpha)
        self.points_rgb = self.classes.packed_rgb(self.outputs.packed_rgb)
        jit.warm_up()  # ~1 s the first time, then numba's on-disk cache: not on frame 1
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
        if hasattr(self, "sensors"):
            self.sensors.config = config

    @property
    def cache(self) -> CalibrationCache:
        """The per-calibration cache of the sensors' registration (tests count its builds)."""
        return self.sensors.cache

    # -- 1. decode, register and encode on the model grid -------------------------------------

    def prepare(self, job: FrameJob, lookup: Lookup) -> PreparedFrame:
        """Decode and register every sensor of ``job``; problems become issues, not errors."""
        self.stage_ms, self.stage_cpu_ms = {}, {}
        clock = _StageClock(self.stage_ms, self.stage_cpu_ms)
        config, issues = self.config, []
        rgb_topic = input_topic(config, "rgb")
        rgb_msg = job.messages["rgb"]
        rgb = None
        try:
            rgb = image_to_rgb8(raw_image(rgb_msg, config, "rgb"), rgb_topic)
        except ValueError as error:
            issues.append(Issue("rgb", rgb_topic, f"{error}; RGB left out of this frame"))
        camera = self.sensors.camera(job.infos.get("rgb"), "rgb", issues, camera_info_to_camera)
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
            camera = self.sensors.scaled(camera, rgb.shape[0], rgb.shape[1], "rgb_scaled")
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
            prepared.grid = self.sensors.grid(camera)
        clock.lap("decode rgb")
        if rgb is not None and "rgb" in self.used:
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
        decompress_sensors(job, config, issues)
        clock.lap("decompress")
        for sensor in OPTIONAL_SENSORS:
            if sensor in job.messages:
                self.sensors.run(sensor, SENSOR_STEPS[sensor], job, prepared, frame_id, lookup)
                clock.lap(sensor)
        for sensor, note in self.sensors.calibration_notes.items():
            if sensor == "rgb" or sensor in job.messages:
                prepared.degraded.setdefault(sensor, note)
        return prepared

    def model_input(
        self, prepared: PreparedFrame, withhold: frozenset[str] | set[str] = frozenset()
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(1, M, 3, H, W)`` uint8 images at the model size and ``(1, M)`` presence.

        Modalities in ``withhold`` (sensor health's suspects) are given as absent.
        """
        height, width = self.model_size
        images = np.zeros((1, len(self.modalities), 3, height, width), dtype=np.uint8)
        present = np.zeros((1, len(self.modalities)), dtype=bool)
        for slot, modality in enumerate(self.modalities):
            image = prepared.images.get(modality)
            if image is not None and modality not in withhold:
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
        clock = _StageClock(self.stage_ms, self.stage_cpu_ms)
        size = prepared.size
        dtype = np.uint8 if self.label_encoding == "mono8" else np.uint16
        full_labels = self.outputs.labels(self.classes.apply(labels), size, dtype)
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
            points, point_pixels = paint_points(prepared.cloud, full_labels, self.points_rgb)
            if self.points_classes is not None:  # output.labeled_points_classes
                keep = np.isin(points["label"], self.points_classes)
                points, point_pixels = points[keep], point_pixels[keep]
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
