"""The node's parameters as a typed table: name, default, type, range or choices, live or not.

The names are public interface (launch files, users' YAML and tools rely on them), so they
live in :data:`PARAMETERS` once, and everything else is derived from it: the rclpy shell's
``ParameterDescriptor`` (type, range, description, read-only hint), the validation every
transport runs at start-up (:func:`coerce_parameter`, which names the parameter and the
allowed values on a bad value), the run-time check of ``ros2 param set`` (dynamic parameters
apply at once, static ones only while the node is unconfigured), the typed
:class:`~mlesam_ros.pipeline.config.NodeConfig` (each spec names the field it feeds) and the
parameter table in the docs (:func:`parameter_table`). ``config/mlesam.yaml`` repeats the
names and defaults in ROS 2's ``/**: ros__parameters:`` form (a test keeps both in step).
Every value is a plain ROS parameter type (string, bool, integer, double, double array) so
rclpy can declare it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlesam_ros.data import topics
from mlesam_ros.engine import BACKENDS, PRECISIONS  # cheap: imports no runtime
from mlesam_ros.geometry import make_transform
from mlesam_ros.modalities import parse_modalities
from mlesam_ros.msgs.compressed import TRANSPORTS
from mlesam_ros.pipeline.interface import RELIABILITIES
from mlesam_ros.text import quote, shown

SENSOR_INPUTS = ("rgb", "depth", "thermal", "points")
"""Subscribed sensor streams (``points`` feeds the ``lidar`` modality)."""
IDENTITY_POSE = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
EXTRINSICS_SOURCES = ("tf", "config")
IMAGE_TRANSPORTS = ("raw", "compressed")
DEPTH_TRANSPORTS = TRANSPORTS  # raw, compressed, compressedDepth


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: what it is, what values it takes, and whether it can change live.

    ``kind`` is ``str``, ``bool``, ``int``, ``float`` or ``list`` (a list of floats).
    ``minimum``/``maximum`` are inclusive unless ``positive`` (then the value must be > 0).
    ``dynamic`` parameters are applied while the node runs; static ones (topics, model, QoS)
    shape subscriptions or the engine and take effect at the next lifecycle ``configure``.
    ``field`` names the :class:`~mlesam_ros.pipeline.config.NodeConfig` field the value feeds
    (``"topics[rgb]"``: key ``rgb`` of the ``topics`` dict), after ``convert(value, name)``.
    """

    default: Any
    description: str
    kind: type
    field: str
    convert: Callable[[Any, str], Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    dynamic: bool = False
    positive: bool = False
    names: bool = False
    """A list of names, given as a YAML list or as comma-separated text (kept as the text)."""

    def allowed(self) -> str:
        """Describe the allowed values in words (error messages and docs/parameters.md)."""
        if self.names:
            return "a list of names (letters, digits, _; a letter first)"
        if self.choices is not None:
            shown = [choice or "''" for choice in self.choices]
            return " or ".join(shown) if len(shown) == 2 else "from " + ", ".join(shown)
        if self.kind is bool:
            return "true or false"
        kind = {int: "an integer", float: "a number", str: "a string", list: "a list"}[self.kind]
        if self.positive:
            bound = " > 0" + (f" and <= {self.maximum}" if self.maximum is not None else "")
        elif self.minimum is not None and self.maximum is not None:
            bound = f" in [{self.minimum}, {self.maximum}]"
        elif self.minimum is not None:
            bound = f" >= {self.minimum}"
        else:
            bound = ""
        return kind + bound


def _spec(default: Any, description: str, field: str, **kwargs: Any) -> ParamSpec:
    kind = list if isinstance(default, list) else type(default)
    return ParamSpec(default, description, kind, field, **kwargs)


def _ns(seconds: float, name: str = "") -> int:
    """Seconds → integer nanoseconds (the node's clock unit)."""
    return round(seconds * 1e9)


def pose_to_matrix(values: Any, name: str) -> np.ndarray:
    """4x4 ``T`` from ``[x, y, z, qx, qy, qz, qw]`` (the configured-extrinsics format)."""
    pose = np.asarray(values, dtype=np.float64).reshape(-1)
    if pose.shape != (7,):
        raise ValueError(
            f"parameter {name}: expected [x, y, z, qx, qy, qz, qw], got {list(values)}"
        )
    return make_transform(pose[3:], pose[:3])


def _none_if_empty(value: str, name: str) -> str | None:
    return value or None


def _modalities(value: str, name: str) -> tuple[str, ...] | None:
    value = value.strip()
    return parse_modalities(value) if value else None


def _class_list(value: str, name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


_SECONDS = {"minimum": 0.0, "maximum": 60.0}
_OFFSET = {"minimum": -10.0, "maximum": 10.0, "dynamic": True}
_QOS = {"choices": RELIABILITIES}

# Order = order in config/mlesam.yaml and in the table of docs/parameters.md.
PARAMETERS: dict[str, ParamSpec] = {
    "topics.rgb": _spec(
        topics.RGB_IMAGE_TOPIC,
        "RGB image (the sync anchor; rgb8/bgr8/mono8/..)",
        field="topics[rgb]",
    ),
    "topics.rgb_info": _spec(
        topics.RGB_INFO_TOPIC, "RGB CameraInfo (output size, projection)", field="info_topics[rgb]"
    ),
    "topics.depth": _spec(
        topics.DEPTH_IMAGE_TOPIC,
        "depth image, 16UC1 mm or 32FC1 m; '' = off",
        field="topics[depth]",
    ),
    "topics.depth_info": _spec(
        topics.DEPTH_INFO_TOPIC, "depth CameraInfo", field="info_topics[depth]"
    ),
    "topics.thermal": _spec(
        topics.THERMAL_IMAGE_TOPIC,
        "thermal image, mono8/mono16; '' = off",
        field="topics[thermal]",
    ),
    "topics.thermal_info": _spec(
        topics.THERMAL_INFO_TOPIC, "thermal CameraInfo", field="info_topics[thermal]"
    ),
    "topics.points": _spec(
        topics.LIDAR_TOPIC,
        "LiDAR PointCloud2 (x, y, z[, intensity]); '' = off",
        field="topics[points]",
    ),
    "qos.rgb": _spec(
        "best_effort",
        "input reliability: best_effort (sensor data) or reliable",
        **_QOS,
        field="reliability[rgb]",
    ),
    "qos.depth": _spec(
        "best_effort", "input reliability of the depth image", **_QOS, field="reliability[depth]"
    ),
    "qos.thermal": _spec(
        "best_effort",
        "input reliability of the thermal image",
        **_QOS,
        field="reliability[thermal]",
    ),
    "qos.points": _spec(
        "best_effort", "input reliability of the point cloud", **_QOS, field="reliability[points]"
    ),
    "qos.camera_info": _spec(
        "reliable",
        "input reliability of the three CameraInfo topics",
        **_QOS,
        field="reliability[camera_info]",
    ),
    "qos.output": _spec(
        "reliable",
        "reliability of the image/cloud outputs (best_effort for rviz over Wi-Fi)",
        **_QOS,
        field="output_reliability",
    ),
    "qos.output_depth": _spec(
        1, "history depth of the outputs", minimum=1, maximum=100, field="output_depth"
    ),
    "transport.rgb": _spec(
        "raw",
        "RGB image_transport: raw, or compressed (JPEG/PNG on <topics.rgb>/compressed)",
        choices=IMAGE_TRANSPORTS,
        field="transports[rgb]",
    ),
    "transport.depth": _spec(
        "raw",
        "depth image_transport: raw, compressed or compressedDepth (PNG/RVL)",
        choices=DEPTH_TRANSPORTS,
        field="transports[depth]",
    ),
    "transport.thermal": _spec(
        "raw",
        "thermal image_transport: raw, or compressed (PNG keeps mono16)",
        choices=IMAGE_TRANSPORTS,
        field="transports[thermal]",
    ),
    "model.path": _spec(
        "", "model file: .engine/.plan, .onnx or .pt; '' = shipped demo model", field="model_path"
    ),
    "model.backend": _spec(
        "auto", "auto, tensorrt, onnxruntime or torch", choices=BACKENDS, field="backend"
    ),
    "model.precision": _spec(
        "",
        "tensorrt fp16/fp32, torch fp32/fp16/bf16; '' = default",
        choices=PRECISIONS,
        field="precision",
        convert=_none_if_empty,
    ),
    "model.threads": _spec(
        0,
        "CPU threads for onnxruntime/torch; 0 = runtime default",
        minimum=0,
        maximum=1024,
        field="threads",
    ),
    "model.rebuild_engine": _spec(
        True, "tensorrt: rebuild a stale cached engine from the .onnx", field="rebuild_engine"
    ),
    "model.modalities": _spec(
        "",
        "use only these of the model's modalities (e.g. 'rgb,lidar')",
        field="modalities",
        convert=_modalities,
    ),
    "sync.slop_s": _spec(
        0.05,
        "max abs(member stamp - offset - RGB stamp) to fuse a member (s)",
        dynamic=True,
        **_SECONDS,
        field="slop_ns",
        convert=_ns,
    ),
    "sync.timeout_s": _spec(
        0.05,
        "wait this long after an RGB frame for the others (s)",
        minimum=1e-6,
        maximum=60.0,
        dynamic=True,
        field="timeout_ns",
        convert=_ns,
    ),
    "sync.strict": _spec(
        False,
        "drop frames that time out incomplete instead of running them",
        dynamic=True,
        field="strict",
    ),
    "sync.offset_depth_s": _spec(
        0.0,
        "fixed stamp offset of depth relative to RGB (s)",
        **_OFFSET,
        field="offsets_ns[depth]",
        convert=_ns,
    ),
    "sync.offset_thermal_s": _spec(
        0.0,
        "fixed stamp offset of thermal relative to RGB (s)",
        **_OFFSET,
        field="offsets_ns[thermal]",
        convert=_ns,
    ),
    "sync.offset_points_s": _spec(
        0.0,
        "fixed stamp offset of the LiDAR relative to RGB (s)",
        **_OFFSET,
        field="offsets_ns[points]",
        convert=_ns,
    ),
    "sync.poll_period_s": _spec(
        0.01,
        "how often pending frames are checked for timeout (s)",
        minimum=1e-4,
        maximum=1.0,
        field="poll_period_ns",
        convert=_ns,
    ),
    "extrinsics.source": _spec(
        "tf",
        "tf (look up /tf, /tf_static) or config (values below)",
        choices=EXTRINSICS_SOURCES,
        field="extrinsics_source",
    ),
    "extrinsics.tf_timeout_s": _spec(
        0.05,
        "tf lookup timeout at the sensor stamp (s)",
        dynamic=True,
        **_SECONDS,
        field="tf_timeout_ns",
        convert=_ns,
    ),
    "extrinsics.rgb_from_depth": _spec(
        IDENTITY_POSE,
        "x y z qx qy qz qw of depth in RGB frame",
        field="configured_extrinsics[depth]",
        convert=pose_to_matrix,
    ),
    "extrinsics.rgb_from_thermal": _spec(
        IDENTITY_POSE,
        "x y z qx qy qz qw of thermal in RGB",
        field="configured_extrinsics[thermal]",
        convert=pose_to_matrix,
    ),
    "extrinsics.rgb_from_points": _spec(
        IDENTITY_POSE,
        "x y z qx qy qz qw of LiDAR in RGB frame",
        field="configured_extrinsics[points]",
        convert=pose_to_matrix,
    ),
    "lidar.intensity_max": _spec(
        255.0,
        "LiDAR intensity full scale (255 Velodyne, 1.0 CARLA)",
        positive=True,
        maximum=1e6,
        dynamic=True,
        field="lidar_intensity_max",
    ),
    "lidar.max_range_m": _spec(
        80.0,
        "LiDAR depth channel full scale (m)",
        positive=True,
        maximum=1e4,
        dynamic=True,
        field="lidar_max_range_m",
    ),
    "lidar.dilation": _spec(
        1,
        "fill empty pixels from the nearest return within N pixels",
        minimum=0,
        maximum=50,
        dynamic=True,
        field="lidar_dilation",
    ),
    "output.labels_color": _spec(
        True, "publish ~/labels_color (overlay on RGB)", dynamic=True, field="labels_color"
    ),
    "output.confidence": _spec(
        True,
        "publish ~/confidence (32FC1 softmax probability)",
        dynamic=True,
        field="confidence",
    ),
    "output.labeled_points": _spec(
        True,
        "publish ~/labeled_points (cloud with label)",
        dynamic=True,
        field="labeled_points",
    ),
    "output.overlay_alpha": _spec(
        0.5,
        "weight of the class colour in the overlay, 0..1",
        minimum=0.0,
        maximum=1.0,
        dynamic=True,
        field="overlay_alpha",
    ),
    "output.palette_file": _spec(
        "", "YAML list of [r, g, b] per class; '' = built-in palette", field="palette_file"
    ),
    "output.class_map_file": _spec(
        "",
        "YAML: model class -> [id, name] published (labels, points, label_info); '' = as is",
        field="class_map_file",
    ),
    "output.labeled_points_classes": _spec(
        "",
        "publish only these classes in ~/labeled_points (e.g. 'car,person'); '' = all",
        field="labeled_points_classes",
        convert=_class_list,
    ),
    "diagnostics.period_s": _spec(
        1.0,
        "how often /diagnostics is published (s)",
        minimum=1e-3,
        maximum=3600.0,
        dynamic=True,
        field="diagnostics_period_ns",
        convert=_ns,
    ),
    "health.enabled": _spec(
        True,
        "check each sensor for faults and report them in /diagnostics",
        dynamic=True,
        field="health_enabled",
    ),
    "health.suspect_as_absent": _spec(
        False,
        "withhold a sensor with a fault of its own from the model, as if unplugged",
        dynamic=True,
        field="health_suspect_as_absent",
    ),
    "health.window": _spec(
        10,
        "frames a fault is counted over",
        minimum=2,
        maximum=1000,
        dynamic=True,
        field="health_window",
    ),
    "health.min_faulty": _spec(
        3,
        "faulty frames within the window that make a sensor suspect",
        minimum=1,
        maximum=1000,
        dynamic=True,
        field="health_min_faulty",
    ),
    "cameras.names": _spec(
        "",
        "several cameras around one LiDAR: their names, e.g. [front, left]; '' = one camera "
        "(topics.*)",
        field="cameras",
        names=True,
    ),
    "cameras.batch_window_s": _spec(
        0.01,
        "wait this long for the other cameras' frames to run them as one batch (s)",
        minimum=0.0,
        maximum=1.0,
        dynamic=True,
        field="batch_window_ns",
        convert=_ns,
    ),
}
DEFAULT_PARAMETERS: dict[str, Any] = {name: spec.default for name, spec in PARAMETERS.items()}
DYNAMIC_PARAMETERS = frozenset(name for name, spec in PARAMETERS.items() if spec.dynamic)

# -- several cameras ---------------------------------------------------------------------------
# With ``cameras.names`` set, each camera has the parameters below as ``cameras.<name>.<key>``;
# a string default's ``{camera}`` becomes the camera's name. ``field`` names the field of the
# camera's view of :class:`~mlesam_ros.pipeline.config.NodeConfig` the value feeds (the same
# fields as the single-camera table's), so each camera runs the single-camera frame path.
# The LiDAR (``topics.points``) and everything else stay shared.
CAMERA_PREFIX = "cameras."
CAMERA_PARAMETERS: dict[str, ParamSpec] = {
    "rgb": _spec("/{camera}/image_raw", "this camera's RGB image (its sync anchor)",
                 field="topics[rgb]"),
    "rgb_info": _spec("/{camera}/camera_info", "this camera's RGB CameraInfo",
                      field="info_topics[rgb]"),
    "depth": _spec("", "its depth image, 16UC1 mm or 32FC1 m; '' = none", field="topics[depth]"),
    "depth_info": _spec("/{camera}/depth/camera_info", "its depth CameraInfo",
                        field="info_topics[depth]"),
    "thermal": _spec("", "its thermal image, mono8/mono16; '' = none", field="topics[thermal]"),
    "thermal_info": _spec("/{camera}/thermal/camera_info", "its thermal CameraInfo",
                          field="info_topics[thermal]"),
    "offset_depth_s": _spec(0.0, "fixed stamp offset of its depth relative to its RGB (s)",
                            **_OFFSET, field="offsets_ns[depth]", convert=_ns),
    "offset_thermal_s": _spec(0.0, "fixed stamp offset of its thermal relative to its RGB (s)",
                              **_OFFSET, field="offsets_ns[thermal]", convert=_ns),
    "offset_points_s": _spec(0.0, "fixed stamp offset of the LiDAR relative to its RGB (s)",
                             **_OFFSET, field="offsets_ns[points]", convert=_ns),
    "timeout_s": _spec(0.0, "wait this long after its RGB frame for the others (s); "
                       "0 = sync.timeout_s", **_SECONDS, dynamic=True, field="timeout_ns",
                       convert=_ns),
    "rgb_from_depth": _spec(IDENTITY_POSE, "x y z qx qy qz qw of its depth in its RGB frame",
                            field="configured_extrinsics[depth]", convert=pose_to_matrix),
    "rgb_from_thermal": _spec(IDENTITY_POSE, "x y z qx qy qz qw of its thermal in its RGB",
                              field="configured_extrinsics[thermal]", convert=pose_to_matrix),
    "rgb_from_points": _spec(IDENTITY_POSE, "x y z qx qy qz qw of the LiDAR in its RGB frame",
                             field="configured_extrinsics[points]", convert=pose_to_matrix),
}  # fmt: skip
_CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RESERVED = frozenset(name[len(CAMERA_PREFIX):] for name in PARAMETERS
                      if name.startswith(CAMERA_PREFIX))  # fmt: skip


def camera_parameter(name: str) -> tuple[str, str] | None:
    """``(camera, key)`` of a per-camera parameter name ``cameras.<camera>.<key>``, else None."""
    if not name.startswith(CAMERA_PREFIX) or name in PARAMETERS:
        return None
    camera, dot, key = name[len(CAMERA_PREFIX):].partition(".")
    return (camera, key) if dot else None


def camera_defaults(camera: str) -> dict[str, Any]:
    """Every per-camera parameter of ``camera`` with its default."""
    return {
        f"{CAMERA_PREFIX}{camera}.{key}": (
            spec.default.format(camera=camera) if isinstance(spec.default, str) else spec.default
        )
        for key, spec in CAMERA_PARAMETERS.items()
    }


def parse_camera_names(value: Any, name: str = "cameras.names") -> tuple[str, ...]:
    """Camera names from a list or comma-separated text; each usable in a topic name, unique."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"parameter {name}: expected names (text), got {shown(value)}")
    names = tuple(item.strip() for item in items if item.strip())
    for camera in names:
        if not _CAMERA_NAME.fullmatch(camera) or camera in _RESERVED:
            raise ValueError(
                f"parameter {name}: camera name {quote(camera)} must start with a letter and hold "
                f"only letters, digits and _ (it names topics), and not be "
                f"{' or '.join(sorted(_RESERVED))}"
            )
    repeated = sorted({camera for camera in names if names.count(camera) > 1})
    if repeated:
        raise ValueError(f"parameter {name}: camera {', '.join(repeated)} is listed twice")
    return names


def parameter_table() -> str:
    """Markdown table of every parameter (name, default, values, live?, meaning), as in docs/."""
    rows = [
        "| parameter | default | values | set live | meaning |",
        "|---|---|---|---|---|",
    ]
    per_camera = (
        (f"{CAMERA_PREFIX}<camera>.{key}", spec) for key, spec in CAMERA_PARAMETERS.items()
    )
    named = [*PARAMETERS.items(), *per_camera]
    for name, spec in named:
        default = f"'{spec.default}'" if isinstance(spec.default, str) else spec.default
        live = "yes" if spec.dynamic else "at configure"
        rows.append(f"| `{name}` | `{default}` | {spec.allowed()} | {live} | {spec.description} |")
    return "\n".join(rows)
