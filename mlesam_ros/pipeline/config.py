"""The node's parameters: names, defaults and meaning in one table, loaded into a typed config.

The names are public interface (launch files, users' YAML and tools rely on them), so they
live in :data:`PARAMETERS` once; ``config/mlesam.yaml`` repeats them in ROS 2's
``/**: ros__parameters:`` form (a test keeps both in step), the rclpy shell declares them from
here, and replay reads the same YAML form with :func:`load_params_file`. Every value is a
plain ROS parameter type (string, bool, int, float, list of float) so rclpy can declare it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.data import topics
from mlesam_ros.pipeline.interface import RELIABILITIES

SENSOR_INPUTS = ("rgb", "depth", "thermal", "points")
"""Subscribed sensor streams (``points`` feeds the ``lidar`` modality)."""
IDENTITY_POSE = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]

# name: (default, meaning). Order = order in config/mlesam.yaml and in the README table.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "topics.rgb": (topics.RGB_IMAGE_TOPIC, "RGB image (the sync anchor; rgb8/bgr8/mono8/..)"),
    "topics.rgb_info": (topics.RGB_INFO_TOPIC, "RGB CameraInfo (output size, projection)"),
    "topics.depth": (topics.DEPTH_IMAGE_TOPIC, "depth image, 16UC1 mm or 32FC1 m; '' = off"),
    "topics.depth_info": (topics.DEPTH_INFO_TOPIC, "depth CameraInfo"),
    "topics.thermal": (topics.THERMAL_IMAGE_TOPIC, "thermal image, mono8/mono16; '' = off"),
    "topics.thermal_info": (topics.THERMAL_INFO_TOPIC, "thermal CameraInfo"),
    "topics.points": (topics.LIDAR_TOPIC, "LiDAR PointCloud2 (x, y, z[, intensity]); '' = off"),
    "qos.rgb": ("best_effort", "input reliability: best_effort (sensor data) or reliable"),
    "qos.depth": ("best_effort", "input reliability of the depth image"),
    "qos.thermal": ("best_effort", "input reliability of the thermal image"),
    "qos.points": ("best_effort", "input reliability of the point cloud"),
    "qos.camera_info": ("reliable", "input reliability of the three CameraInfo topics"),
    "model.path": ("", "model file: .engine/.plan, .onnx or .pt; '' = shipped demo model"),
    "model.backend": ("auto", "auto, tensorrt, onnxruntime or torch"),
    "model.precision": ("", "tensorrt fp16/fp32/int8, torch fp32/fp16/bf16; '' = default"),
    "model.threads": (0, "CPU threads for onnxruntime/torch; 0 = runtime default"),
    "model.rebuild_engine": (True, "tensorrt: rebuild a stale cached engine from the .onnx"),
    "model.modalities": ("", "use only these of the model's modalities (e.g. 'rgb,lidar')"),
    "sync.slop_s": (0.05, "max abs(member stamp - offset - RGB stamp) to fuse a member (s)"),
    "sync.timeout_s": (0.05, "wait this long after an RGB frame for the others (s)"),
    "sync.strict": (False, "drop frames that time out incomplete instead of running them"),
    "sync.offset_depth_s": (0.0, "fixed stamp offset of depth relative to RGB (s)"),
    "sync.offset_thermal_s": (0.0, "fixed stamp offset of thermal relative to RGB (s)"),
    "sync.offset_points_s": (0.0, "fixed stamp offset of the LiDAR relative to RGB (s)"),
    "sync.poll_period_s": (0.01, "how often pending frames are checked for timeout (s)"),
    "extrinsics.source": ("tf", "tf (look up /tf, /tf_static) or config (values below)"),
    "extrinsics.tf_timeout_s": (0.05, "tf lookup timeout at the sensor stamp (s)"),
    "extrinsics.rgb_from_depth": (IDENTITY_POSE, "x y z qx qy qz qw of depth in RGB frame"),
    "extrinsics.rgb_from_thermal": (IDENTITY_POSE, "x y z qx qy qz qw of thermal in RGB"),
    "extrinsics.rgb_from_points": (IDENTITY_POSE, "x y z qx qy qz qw of LiDAR in RGB frame"),
    "lidar.intensity_max": (255.0, "LiDAR intensity full scale (255 Velodyne, 1.0 CARLA)"),
    "lidar.max_range_m": (80.0, "LiDAR depth channel full scale (m)"),
    "lidar.dilation": (1, "fill empty pixels from the nearest return within N pixels"),
    "output.labels_color": (True, "publish /mlesam/labels_color (overlay on RGB)"),
    "output.confidence": (True, "publish /mlesam/confidence (32FC1 softmax probability)"),
    "output.labeled_points": (True, "publish /mlesam/labeled_points (cloud with label)"),
    "output.overlay_alpha": (0.5, "weight of the class colour in the overlay, 0..1"),
    "output.palette_file": ("", "YAML list of [r, g, b] per class; '' = built-in palette"),
    "diagnostics.period_s": (1.0, "how often /diagnostics is published (s)"),
}
DEFAULT_PARAMETERS: dict[str, Any] = {name: value for name, (value, _) in PARAMETERS.items()}


def _seconds(value: Any, name: str, minimum: float = 0.0) -> int:
    seconds = float(value)
    if not np.isfinite(seconds) or seconds < minimum:
        raise ValueError(f"parameter {name}: must be >= {minimum} s, got {value}")
    return round(seconds * 1e9)


def pose_to_matrix(values: Any, name: str) -> np.ndarray:
    """4x4 ``T`` from ``[x, y, z, qx, qy, qz, qw]`` (the configured-extrinsics format)."""
    from mlesam_ros.geometry import make_transform

    pose = np.asarray(values, dtype=np.float64).reshape(-1)
    if pose.shape != (7,):
        raise ValueError(
            f"parameter {name}: expected [x, y, z, qx, qy, qz, qw], got {list(values)}"
        )
    return make_transform(pose[3:], pose[:3])


@dataclass(frozen=True)
class NodeConfig:
    """Typed, validated view of the parameters (built once at configure time)."""

    topics: dict[str, str]
    info_topics: dict[str, str]
    reliability: dict[str, str]
    model_path: str
    backend: str
    precision: str | None
    threads: int
    rebuild_engine: bool
    modalities: tuple[str, ...] | None
    slop_ns: int
    timeout_ns: int
    strict: bool
    offsets_ns: dict[str, int]
    poll_period_ns: int
    extrinsics_source: str
    tf_timeout_ns: int
    configured_extrinsics: dict[str, np.ndarray]
    lidar_intensity_max: float
    lidar_max_range_m: float
    lidar_dilation: int
    labels_color: bool
    confidence: bool
    labeled_points: bool
    overlay_alpha: float
    palette_file: str
    diagnostics_period_ns: int

    @classmethod
    def from_parameters(cls, overrides: Mapping[str, Any] | None = None) -> NodeConfig:
        """Merge ``overrides`` over the defaults and validate; unknown names are errors."""
        from mlesam_ros.modalities import parse_modalities

        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(DEFAULT_PARAMETERS))
        if unknown:
            raise ValueError(
                f"parameters: unknown {', '.join(unknown)}; see config/mlesam.yaml for the "
                "names (e.g. topics.rgb, sync.timeout_s)"
            )
        p = {**DEFAULT_PARAMETERS, **overrides}
        reliability = {}
        for key in (*SENSOR_INPUTS, "camera_info"):
            value = str(p[f"qos.{key}"])
            if value not in RELIABILITIES:
                raise ValueError(
                    f"parameter qos.{key}: choose {' or '.join(RELIABILITIES)}, got {value!r}"
                )
            reliability[key] = value
        if not str(p["topics.rgb"]):
            raise ValueError("parameter topics.rgb: the RGB image is required (the sync anchor)")
        source = str(p["extrinsics.source"])
        if source not in ("tf", "config"):
            raise ValueError(f"parameter extrinsics.source: choose tf or config, got {source!r}")
        alpha = float(p["output.overlay_alpha"])
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"parameter output.overlay_alpha: must be in [0, 1], got {alpha}")
        backend = str(p["model.backend"])
        from mlesam_ros.engine.segmenter import BACKENDS

        if backend not in BACKENDS:
            raise ValueError(
                f"parameter model.backend: choose from {', '.join(BACKENDS)}, got {backend!r}"
            )
        modalities = str(p["model.modalities"]).strip()
        return cls(
            topics={key: str(p[f"topics.{key}"]) for key in SENSOR_INPUTS},
            info_topics={key: str(p[f"topics.{key}_info"]) for key in ("rgb", "depth", "thermal")},
            reliability=reliability,
            model_path=str(p["model.path"]),
            backend=backend,
            precision=str(p["model.precision"]) or None,
            threads=int(p["model.threads"]),
            rebuild_engine=bool(p["model.rebuild_engine"]),
            modalities=parse_modalities(modalities) if modalities else None,
            slop_ns=_seconds(p["sync.slop_s"], "sync.slop_s"),
            timeout_ns=_seconds(p["sync.timeout_s"], "sync.timeout_s", 1e-6),
            strict=bool(p["sync.strict"]),
            offsets_ns={
                key: round(float(p[f"sync.offset_{key}_s"]) * 1e9)
                for key in ("depth", "thermal", "points")
            },
            poll_period_ns=_seconds(p["sync.poll_period_s"], "sync.poll_period_s", 1e-4),
            extrinsics_source=source,
            tf_timeout_ns=_seconds(p["extrinsics.tf_timeout_s"], "extrinsics.tf_timeout_s"),
            configured_extrinsics={
                key: pose_to_matrix(p[f"extrinsics.rgb_from_{key}"], f"extrinsics.rgb_from_{key}")
                for key in ("depth", "thermal", "points")
            },
            lidar_intensity_max=float(p["lidar.intensity_max"]),
            lidar_max_range_m=float(p["lidar.max_range_m"]),
            lidar_dilation=int(p["lidar.dilation"]),
            labels_color=bool(p["output.labels_color"]),
            confidence=bool(p["output.confidence"]),
            labeled_points=bool(p["output.labeled_points"]),
            overlay_alpha=alpha,
            palette_file=str(p["output.palette_file"]),
            diagnostics_period_ns=_seconds(
                p["diagnostics.period_s"], "diagnostics.period_s", 1e-3
            ),
        )

    @property
    def enabled_inputs(self) -> tuple[str, ...]:
        """Sensor inputs with a non-empty topic (rgb always)."""
        return tuple(key for key in SENSOR_INPUTS if self.topics[key])


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a ROS 2 parameter YAML (``<node or /**>: ros__parameters: {...}``) to flat names.

    Nested keys and dotted keys both work (``topics: {rgb: ...}`` = ``topics.rgb: ...``); when
    the file has several node sections they are merged in file order.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file {path} does not exist")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(
            f"params file {path}:{where}: not valid YAML ({problem}); check the indentation "
            "and quoting there"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"params file {path}: not a text file") from None
    sections = (
        [
            value["ros__parameters"]
            for value in document.values()
            if isinstance(value, Mapping) and "ros__parameters" in value
        ]
        if isinstance(document, Mapping)
        else []
    )
    if not sections:
        raise ValueError(
            f"params file {path}: no 'ros__parameters' section; write it as "
            "'/**:\\n  ros__parameters:\\n    topics.rgb: /camera/image_raw'"
        )
    flat: dict[str, Any] = {}
    for section in sections:
        section = {} if section is None else section
        if not isinstance(section, Mapping):
            raise ValueError(
                f"params file {path}: 'ros__parameters' must hold name: value pairs, got "
                f"{type(section).__name__}"
            )
        flat.update(_flatten(section))
    for name, value in flat.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not np.isfinite(v) for v in values):
            raise ValueError(
                f"params file {path}: {name} is {value!r}; give a finite number (.inf and "
                ".nan are not valid parameter values)"
            )
    return flat


def parameter_table() -> str:
    """Markdown table of every parameter (name, default, meaning) for the README."""
    rows = ["| parameter | default | meaning |", "|---|---|---|"]
    for name, (default, meaning) in PARAMETERS.items():
        shown = f"'{default}'" if isinstance(default, str) else default
        rows.append(f"| `{name}` | `{shown}` | {meaning} |")
    return "\n".join(rows)
