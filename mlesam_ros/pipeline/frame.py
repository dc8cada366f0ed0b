"""The frame path: synced messages → modality images in the RGB camera → model → outputs.

One synced RGB frame goes through four steps, each a method of :class:`FramePath`:

1. ``prepare``: decode every message (``mlesam_ros.msgs``), bring depth, thermal and LiDAR
   into the RGB camera (``mlesam_ros.geometry``) and encode each as the model's 3-channel
   image with the same functions training uses (``mlesam_ros.data.encode``), so the robot feeds
   the model what it was trained on. A sensor that cannot be used (bad encoding, no
   CameraInfo, empty cloud, no extrinsics, wrong size) becomes an :class:`Issue` naming the
   topic, the field and the fix, and the frame goes on without that modality.
2. ``model_input``: resize every modality to the model's input size exactly as evaluation
   does (``mlesam_ros.data.transforms.resize``) and stack ``(1, M, 3, H, W)`` + ``present``.
3. the segmenter (``mlesam_ros.engine.Segmenter``).
4. ``postprocess``: labels back to the camera resolution (nearest neighbour, ids never
   blend), confidence (bilinear), the colour overlay and the painted LiDAR points, each only
   when asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.geometry import CameraModel
from mlesam_ros.pipeline.config import NodeConfig

# Sensor input key → model modality.
MODALITY_OF_INPUT = {"rgb": "rgb", "depth": "depth", "thermal": "thermal", "points": "lidar"}
# A LiDAR point takes its pixel's label only if it lies on the surface that pixel shows: within
# this fraction of the pixel's nearest depth (plus a fixed margin), so points hidden behind a
# foreground object are not painted with the object's class.
_SURFACE_TOLERANCE = (0.05, 0.2)

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
    """A frame's modality images in the RGB camera at camera resolution (before resizing)."""

    stamp_ns: int
    header: Any
    size: tuple[int, int]  # (H, W) of the outputs
    camera: CameraModel | None
    rgb: np.ndarray | None
    images: dict[str, np.ndarray]  # modality → (H, W, 3) uint8
    issues: list[Issue]
    cloud: tuple[np.ndarray, np.ndarray | None, np.ndarray, Any] | None = None
    """(xyz, intensity, T_rgb_from_lidar, cloud header) when the LiDAR was usable."""


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
    height, width = labels.shape
    out_h, out_w = size
    if (out_h, out_w) == (height, width):
        return labels
    rows = np.minimum(((np.arange(out_h) + 0.5) * height / out_h).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * width / out_w).astype(np.int64), width - 1)
    return labels[rows[:, None], cols[None, :]]


def _has_valid_pixel(msg: Any, topic: str) -> bool:
    """Whether an Image holds any finite non-zero pixel (decode errors are left to the caller)."""
    from mlesam_ros.msgs import image_to_numpy

    try:
        image = image_to_numpy(msg, topic)
    except ValueError:
        return True  # the sensor's own decoder reports the problem with its message
    if image.dtype.kind == "f":
        return bool(np.any(np.isfinite(image) & (image != 0)))
    return bool(np.any(image))


def _is_identity(transform: np.ndarray) -> bool:
    return bool(np.allclose(transform, np.eye(4), atol=1e-9))


def _same_camera(a: CameraModel, b: CameraModel) -> bool:
    return (
        a.size == b.size
        and a.distortion_model == b.distortion_model
        and np.allclose(a.K, b.K)
        and np.array_equal(np.asarray(a.D), np.asarray(b.D))
    )


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

    # -- 1. decode and register ---------------------------------------------------------------

    def prepare(self, job: FrameJob, lookup: Lookup) -> PreparedFrame:
        """Decode and register every sensor of ``job``; problems become issues, not errors."""
        from mlesam_ros.msgs import camera_info_to_camera, image_to_rgb8, make_header

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
            camera = camera.scaled(rgb.shape[1], rgb.shape[0])
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
        if rgb is not None and "rgb" in self.used:
            prepared.images["rgb"] = rgb
        if not frame_id:
            issues.append(
                Issue(
                    "rgb",
                    rgb_topic,
                    "header.frame_id is empty; set the camera "
                    "driver's frame_id so the other sensors can be projected",
                )
            )
        depth_in_rgb = None
        if "depth" in job.messages:
            depth_in_rgb = self._isolated(
                "depth", job, prepared, lambda: self._depth(job, prepared, frame_id, lookup)
            )
        if "thermal" in job.messages:
            self._isolated(
                "thermal",
                job,
                prepared,
                lambda: self._thermal(job, prepared, frame_id, lookup, depth_in_rgb),
            )
        if "points" in job.messages:
            self._isolated(
                "points", job, prepared, lambda: self._points(job, prepared, frame_id, lookup)
            )
        return prepared

    # -- issue-12 guard (per-sensor isolation and validity; keep when rewriting this file) ---

    def _isolated(
        self, key: str, job: FrameJob, prepared: PreparedFrame, run: Callable[[], Any]
    ) -> Any:
        """Run one optional sensor's step; whatever fails leaves only that sensor out.

        An image with no valid pixel (all zero or all NaN: a depth camera that lost its
        pattern, a thermal camera during its shutter) counts as absent, not as a fused zero.
        """
        topic = self.config.topics[key]
        try:
            if key in ("depth", "thermal") and not _has_valid_pixel(job.messages[key], topic):
                prepared.issues.append(
                    Issue(key, topic, f"no valid pixel (all zero or NaN); {key} treated as absent")
                )
                return None
            return run()
        except Exception as error:  # anything from an optional sensor must not cost the frame
            prepared.images.pop(MODALITY_OF_INPUT[key], None)
            if key == "points":
                prepared.cloud = None
            prepared.issues.append(
                Issue(key, topic, f"{type(error).__name__}: {error}; {key} left out of this frame")
            )
            return None

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

    def _depth(
        self, job: FrameJob, prepared: PreparedFrame, rgb_frame: str, lookup: Lookup
    ) -> np.ndarray | None:
        from mlesam_ros.data.encode import encode_depth
        from mlesam_ros.geometry import register_depth
        from mlesam_ros.msgs import camera_info_to_camera, header_stamp_ns, image_to_depth_m

        topic, msg, issues = self.config.topics["depth"], job.messages["depth"], prepared.issues
        try:
            depth = image_to_depth_m(msg, topic)
        except ValueError as error:
            issues.append(Issue("depth", topic, f"{error}; depth left out of this frame"))
            return None
        T = self._extrinsic("depth", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
        if T is None:
            return None
        info = job.infos.get("depth")
        depth_camera = (
            None if info is None else self._camera(info, "depth", issues, camera_info_to_camera)
        )
        rgb_camera = prepared.camera
        direct = (
            _is_identity(T)
            and depth.shape == prepared.size
            and (
                depth_camera is None
                or rgb_camera is None
                or _same_camera(depth_camera, rgb_camera)
            )
        )
        if not direct:
            if depth_camera is None or rgb_camera is None:
                issues.append(
                    Issue(
                        "depth",
                        topic,
                        "depth is not registered to the RGB camera "
                        "and a CameraInfo is missing; depth left out",
                    )
                )
                return None
            if depth.shape != depth_camera.size:
                issues.append(
                    Issue(
                        "depth",
                        topic,
                        f"image {depth.shape[::-1]} does not match "
                        f"its CameraInfo {depth_camera.size[::-1]} (width, height)",
                    )
                )
                return None
            depth = register_depth(depth, depth_camera, rgb_camera, T)
        if "depth" in self.used:
            prepared.images["depth"] = encode_depth(depth)
        return depth

    def _thermal(
        self,
        job: FrameJob,
        prepared: PreparedFrame,
        rgb_frame: str,
        lookup: Lookup,
        depth_in_rgb: np.ndarray | None,
    ) -> None:
        from mlesam_ros.data.encode import encode_thermal
        from mlesam_ros.geometry import register_image
        from mlesam_ros.msgs import camera_info_to_camera, header_stamp_ns, image_to_numpy

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
        info = job.infos.get("thermal")
        thermal_camera = (
            None if info is None else self._camera(info, "thermal", issues, camera_info_to_camera)
        )
        rgb_camera = prepared.camera
        if (
            _is_identity(T)
            and thermal.shape == prepared.size
            and (
                thermal_camera is None
                or rgb_camera is None
                or _same_camera(thermal_camera, rgb_camera)
            )
        ):
            warped = thermal
        elif thermal_camera is None or rgb_camera is None:
            issues.append(
                Issue(
                    "thermal",
                    topic,
                    "thermal is not registered to the RGB camera "
                    "and a CameraInfo is missing; thermal left out",
                )
            )
            return
        elif thermal.shape != thermal_camera.size:
            issues.append(
                Issue(
                    "thermal",
                    topic,
                    f"image {thermal.shape[::-1]} does not match "
                    f"its CameraInfo {thermal_camera.size[::-1]} (width, height)",
                )
            )
            return
        else:
            warped = register_image(
                thermal, thermal_camera, rgb_camera, T, rgb_depth_m=depth_in_rgb
            )
        if "thermal" not in self.used:
            return
        # Contrast from the pixels the thermal camera sees, blank elsewhere: the same encoding
        # as training (``mlesam_ros.data.synthetic_dataset.frame_to_images``).
        seen = warped > 0
        low, high = np.percentile(warped[seen], (1, 99)) if seen.any() else (0.0, 1.0)
        image = encode_thermal(warped, (float(low), float(high)))
        image[~seen] = 0
        prepared.images["thermal"] = image

    def _points(
        self, job: FrameJob, prepared: PreparedFrame, rgb_frame: str, lookup: Lookup
    ) -> None:
        from mlesam_ros.data.encode import encode_lidar
        from mlesam_ros.msgs import cloud_field, cloud_xyz, header_stamp_ns, pointcloud2_to_array

        topic, msg, issues = self.config.topics["points"], job.messages["points"], prepared.issues
        try:
            cloud = pointcloud2_to_array(msg, topic)
        except ValueError as error:
            issues.append(Issue("points", topic, f"{error}; LiDAR left out of this frame"))
            return
        if cloud.size == 0:
            issues.append(
                Issue(
                    "points",
                    topic,
                    "empty point cloud (no finite x, y, z); LiDAR left out of this frame",
                )
            )
            return
        if prepared.camera is None:
            issues.append(
                Issue(
                    "points",
                    topic,
                    "cannot project the LiDAR without the RGB CameraInfo; LiDAR left out",
                )
            )
            return
        T = self._extrinsic("points", rgb_frame, msg, header_stamp_ns(msg), lookup, issues)
        if T is None:
            return
        xyz = cloud_xyz(cloud)
        intensity = cloud_field(cloud, "intensity")
        if "lidar" in self.used:
            prepared.images["lidar"] = encode_lidar(
                xyz,
                intensity,
                T,
                prepared.camera,
                intensity_max=self.config.lidar_intensity_max,
                dilation=self.config.lidar_dilation,
                max_range=self.config.lidar_max_range_m,
            )
        prepared.cloud = (xyz, intensity, T, msg.header)

    # -- 2. model input -----------------------------------------------------------------------

    def model_input(self, prepared: PreparedFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(1, M, 3, H, W)`` uint8 images at the model size and ``(1, M)`` presence."""
        from mlesam_ros.data.transforms import resize

        height, width = prepared.size
        stack = np.zeros((len(self.modalities), height, width, 3), dtype=np.uint8)
        present = np.zeros((1, len(self.modalities)), dtype=bool)
        for slot, modality in enumerate(self.modalities):
            image = prepared.images.get(modality)
            if image is not None:
                stack[slot] = image
                present[0, slot] = True
        resized = resize({"images": stack}, self.segmenter.input_size)["images"]
        resized[~present[0]] = 0
        return np.ascontiguousarray(resized.transpose(0, 3, 1, 2))[None], present

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
        size = prepared.size
        dtype = np.uint8 if self.label_encoding == "mono8" else np.uint16
        full_labels = nearest_resize(np.asarray(labels).astype(dtype, copy=False), size)
        full_confidence = None
        if want_confidence and confidence is not None:
            import cv2

            full_confidence = cv2.resize(
                np.asarray(confidence, dtype=np.float32),
                (size[1], size[0]),
                interpolation=cv2.INTER_LINEAR,
            )
        overlay = self.overlay(full_labels, prepared.rgb) if want_overlay else None
        points, points_header, point_pixels = None, None, None
        if want_points and prepared.cloud is not None and prepared.camera is not None:
            points, point_pixels = self.paint_points(prepared.cloud, prepared.camera, full_labels)
            points_header = prepared.cloud[3]
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

    def overlay(self, labels: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
        """Class colours blended over the RGB image with ``output.overlay_alpha``."""
        lut = np.zeros((max(256, len(self.palette)), 3), dtype=np.uint8)
        lut[: len(self.palette)] = self.palette
        colours = lut[labels]
        if rgb is None:
            return colours
        alpha = self.config.overlay_alpha
        blended = alpha * colours.astype(np.float32) + (1.0 - alpha) * rgb.astype(np.float32)
        return np.rint(blended).astype(np.uint8)

    def paint_points(
        self,
        cloud: tuple[np.ndarray, np.ndarray | None, np.ndarray, Any],
        camera: CameraModel,
        labels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """LiDAR points in the camera's view, each with the label of the pixel it lands on.

        Only points on the surface their pixel shows are kept (see ``_SURFACE_TOLERANCE``);
        points outside the image or hidden behind nearer ones are left out. Returns the
        structured points (x, y, z[, intensity], label) and their ``(row, col)`` pixels.
        """
        from mlesam_ros.geometry import project_lidar
        from mlesam_ros.msgs import labelled_points

        xyz, intensity, T, _ = cloud
        projection = project_lidar(xyz, T, camera)
        valid = np.flatnonzero(projection.valid)
        uv = projection.uv[valid]
        cols = np.floor(uv[:, 0] + 0.5).astype(np.int64)
        rows = np.floor(uv[:, 1] + 0.5).astype(np.int64)
        nearest = projection.depth_image()[rows, cols]
        depth = projection.depth[valid]
        fraction, margin = _SURFACE_TOLERANCE
        on_surface = depth <= nearest * (1.0 + fraction) + margin
        keep = valid[on_surface]
        point_labels = labels[rows[on_surface], cols[on_surface]].astype(np.uint32)
        points = labelled_points(
            xyz[keep], point_labels, None if intensity is None else intensity[keep]
        )
        return points, np.stack([rows[on_surface], cols[on_surface]], axis=1)
