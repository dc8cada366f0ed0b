"""The node's parameters as a typed spec: name, default, type, range or choices, static/dynamic.

The names are public interface (launch files, users' YAML and tools rely on them), so they
live in :data:`PARAMETERS` once. The same spec drives three things, so they cannot disagree:
the rclpy shell's ``ParameterDescriptor`` (type, range, description, read-only hint), the
validation every transport runs at start-up (:meth:`NodeConfig.from_parameters`, which names
the parameter and the allowed values on a bad value) and the run-time check of ``ros2 param
set`` (:func:`check_update`: dynamic parameters apply at once, static ones only while the
node is unconfigured). ``config/mlesam.yaml`` repeats the names and defaults in ROS 2's
``/**: ros__parameters:`` form (a test keeps both in step) and replay reads it with
:func:`load_params_file`. Every value is a plain ROS parameter type (string, bool, integer,
double, double array) so rclpy can declare it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.data import topics
from mlesam_ros.engine import BACKENDS, PRECISIONS  # cheap: imports no runtime
from mlesam_ros.pipeline.interface import RELIABILITIES

SENSOR_INPUTS = ("rgb", "depth", "thermal", "points")
"""Subscribed sensor streams (``points`` feeds the ``lidar`` modality)."""
IDENTITY_POSE = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
EXTRINSICS_SOURCES = ("tf", "config")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: what it is, what values it takes, and whether it can change live.

    ``kind`` is ``str``, ``bool``, ``int``, ``float`` or ``list`` (a list of floats).
    ``minimum``/``maximum`` are inclusive unless ``positive`` (then the value must be > 0).
    ``dynamic`` parameters are applied while the node runs; static ones (topics, model, QoS)
    shape subscriptions or the engine and take effect at the next lifecycle ``configure``.
    """

    default: Any
    description: str
    kind: type
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    dynamic: bool = False
    positive: bool = False

    def allowed(self) -> str:
        """Describe the allowed values in words (every error message and the README use it)."""
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


def _spec(default: Any, description: str, **kwargs: Any) -> ParamSpec:
    kind = list if isinstance(default, list) else type(default)
    return ParamSpec(default, description, kind, **kwargs)


_SECONDS = {"minimum": 0.0, "maximum": 60.0}
_OFFSET = {"minimum": -10.0, "maximum": 10.0, "dynamic": True}
_QOS = {"choices": RELIABILITIES}

# Order = order in config/mlesam.yaml and in the README table.
PARAMETERS: dict[str, ParamSpec] = {
    "topics.rgb": _spec(topics.RGB_IMAGE_TOPIC, "RGB image (the sync anchor; rgb8/bgr8/mono8/..)"),
    "topics.rgb_info": _spec(topics.RGB_INFO_TOPIC, "RGB CameraInfo (output size, projection)"),
    "topics.depth": _spec(topics.DEPTH_IMAGE_TOPIC, "depth image, 16UC1 mm or 32FC1 m; '' = off"),
    "topics.depth_info": _spec(topics.DEPTH_INFO_TOPIC, "depth CameraInfo"),
    "topics.thermal": _spec(topics.THERMAL_IMAGE_TOPIC, "thermal image, mono8/mono16; '' = off"),
    "topics.thermal_info": _spec(topics.THERMAL_INFO_TOPIC, "thermal CameraInfo"),
    "topics.points": _spec(
        topics.LIDAR_TOPIC, "LiDAR PointCloud2 (x, y, z[, intensity]); '' = off"
    ),
    "qos.rgb": _spec(
        "best_effort", "input reliability: best_effort (sensor data) or reliable", **_QOS
    ),
    "qos.depth": _spec("best_effort", "input reliability of the depth image", **_QOS),
    "qos.thermal": _spec("best_effort", "input reliability of the thermal image", **_QOS),
    "qos.points": _spec("best_effort", "input reliability of the point cloud", **_QOS),
    "qos.camera_info": _spec(
        "reliable", "input reliability of the three CameraInfo topics", **_QOS
    ),
    "qos.output": _spec(
        "reliable",
        "reliability of the image/cloud outputs (best_effort for rviz over Wi-Fi)",
        **_QOS,
    ),
    "qos.output_depth": _spec(1, "history depth of the outputs", minimum=1, maximum=100),
    "model.path": _spec("", "model file: .engine/.plan, .onnx or .pt; '' = shipped demo model"),
    "model.backend": _spec("auto", "auto, tensorrt, onnxruntime or torch", choices=BACKENDS),
    "model.precision": _spec(
        "", "tensorrt fp16/fp32, torch fp32/fp16/bf16; '' = default", choices=PRECISIONS
    ),
    "model.threads": _spec(
        0, "CPU threads for onnxruntime/torch; 0 = runtime default", minimum=0, maximum=1024
    ),
    "model.rebuild_engine": _spec(True, "tensorrt: rebuild a stale cached engine from the .onnx"),
    "model.modalities": _spec("", "use only these of the model's modalities (e.g. 'rgb,lidar')"),
    "sync.slop_s": _spec(
        0.05,
        "max abs(member stamp - offset - RGB stamp) to fuse a member (s)",
        dynamic=True,
        **_SECONDS,
    ),
    "sync.timeout_s": _spec(
        0.05,
        "wait this long after an RGB frame for the others (s)",
        minimum=1e-6,
        maximum=60.0,
        dynamic=True,
    ),
    "sync.strict": _spec(
        False, "drop frames that time out incomplete instead of running them", dynamic=True
    ),
    "sync.offset_depth_s": _spec(
        0.0, "fixed stamp offset of depth relative to RGB (s)", **_OFFSET
    ),
    "sync.offset_thermal_s": _spec(
        0.0, "fixed stamp offset of thermal relative to RGB (s)", **_OFFSET
    ),
    "sync.offset_points_s": _spec(
        0.0, "fixed stamp offset of the LiDAR relative to RGB (s)", **_OFFSET
    ),
    "sync.poll_period_s": _spec(
        0.01, "how often pending frames are checked for timeout (s)", minimum=1e-4, maximum=1.0
    ),
    "extrinsics.source": _spec(
        "tf", "tf (look up /tf, /tf_static) or config (values below)", choices=EXTRINSICS_SOURCES
    ),
    "extrinsics.tf_timeout_s": _spec(
        0.05, "tf lookup timeout at the sensor stamp (s)", dynamic=True, **_SECONDS
    ),
    "extrinsics.rgb_from_depth": _spec(IDENTITY_POSE, "x y z qx qy qz qw of depth in RGB frame"),
    "extrinsics.rgb_from_thermal": _spec(IDENTITY_POSE, "x y z qx qy qz qw of thermal in RGB"),
    "extrinsics.rgb_from_points": _spec(IDENTITY_POSE, "x y z qx qy qz qw of LiDAR in RGB frame"),
    "lidar.intensity_max": _spec(
        255.0,
        "LiDAR intensity full scale (255 Velodyne, 1.0 CARLA)",
        positive=True,
        maximum=1e6,
        dynamic=True,
    ),
    "lidar.max_range_m": _spec(
        80.0, "LiDAR depth channel full scale (m)", positive=True, maximum=1e4, dynamic=True
    ),
    "lidar.dilation": _spec(
        1,
        "fill empty pixels from the nearest return within N pixels",
        minimum=0,
        maximum=50,
        dynamic=True,
    ),
    "output.labels_color": _spec(True, "publish ~/labels_color (overlay on RGB)", dynamic=True),
    "output.confidence": _spec(
        True, "publish ~/confidence (32FC1 softmax probability)", dynamic=True
    ),
    "output.labeled_points": _spec(
        True, "publish ~/labeled_points (cloud with label)", dynamic=True
    ),
    "output.overlay_alpha": _spec(
        0.5,
        "weight of the class colour in the overlay, 0..1",
        minimum=0.0,
        maximum=1.0,
        dynamic=True,
    ),
    "output.palette_file": _spec("", "YAML list of [r, g, b] per class; '' = built-in palette"),
    "diagnostics.period_s": _spec(
        1.0, "how often /diagnostics is published (s)", minimum=1e-3, maximum=3600.0, dynamic=True
    ),
}
DEFAULT_PARAMETERS: dict[str, Any] = {name: spec.default for name, spec in PARAMETERS.items()}
DYNAMIC_PARAMETERS = frozenset(name for name, spec in PARAMETERS.items() if spec.dynamic)


def coerce_parameter(name: str, value: Any) -> Any:
    """Return ``value`` as parameter ``name``'s type, or raise naming it and the allowed values.

    Strict where a silent reading would be wrong: ``"false"`` is False (``bool("false")``
    would be True), a number given as text is read as that number, and anything else of the
    wrong type is an error rather than a guess.
    """
    spec = PARAMETERS.get(name)
    if spec is None:
        raise ValueError(
            f"parameters: unknown {name}; see config/mlesam.yaml for the names "
            "(e.g. topics.rgb, sync.timeout_s)"
        )

    def bad(reason: str = "") -> ValueError:
        return ValueError(
            f"parameter {name}: {reason or 'expected ' + spec.allowed()}, got {value!r}"
        )

    kind = spec.kind
    if kind is bool:
        if isinstance(value, bool):
            out: Any = value
        elif isinstance(value, str) and value.strip().lower() in ("true", "false"):
            out = value.strip().lower() == "true"
        else:
            raise bad()
    elif kind is int:
        if isinstance(value, bool):
            raise bad()
        try:
            number = float(value) if isinstance(value, (str, float)) else value
        except ValueError:
            raise bad() from None
        if not isinstance(number, (int, float)) or not float(number).is_integer():
            raise bad()
        out = int(number)
    elif kind is float:
        if isinstance(value, bool):
            raise bad()
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise bad() from None
        if not math.isfinite(out):
            raise bad()
    elif kind is list:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise bad()
        try:
            out = [float(item) for item in value]
        except (TypeError, ValueError):
            raise bad() from None
    else:
        if not isinstance(value, str):
            raise bad()
        out = value
    if spec.choices is not None and out not in spec.choices:
        raise bad(f"choose {spec.allowed()}")
    if kind in (int, float):
        low, high = spec.minimum, spec.maximum
        if (
            (spec.positive and out <= 0)
            or (low is not None and out < low)
            or (high is not None and out > high)
        ):
            raise bad(f"must be {spec.allowed().split(' ', 2)[2]}")
    return out


def validate_parameters(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults merged with coerced, validated ``overrides`` (every name checked)."""
    values = dict(DEFAULT_PARAMETERS)
    for name, value in (overrides or {}).items():
        values[name] = coerce_parameter(name, value)
    return values


def check_update(
    changes: Mapping[str, Any], current: Mapping[str, Any], configured: bool
) -> dict[str, Any]:
    """Validate a run-time change (``ros2 param set``); return the coerced values.

    Raises ``ValueError`` with the reason the change is refused: a bad value, or a static
    parameter while the node is configured (it would change nothing until the next
    ``configure``, and ``ros2 param set`` must never report success for a no-op).
    """
    coerced = {name: coerce_parameter(name, value) for name, value in changes.items()}
    if configured:
        static = sorted(name for name in coerced if name not in DYNAMIC_PARAMETERS)
        if static:
            raise ValueError(
                f"parameter {', '.join(static)}: static (read at configure); deactivate and "
                "clean up the node (ros2 lifecycle set <node> deactivate, then cleanup), set "
                "it, then configure and activate again"
            )
    # Whole-config checks (e.g. pose shapes, modality names) on the merged values.
    NodeConfig.from_parameters({**current, **coerced})
    return coerced


def _ns(seconds: float) -> int:
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
    output_reliability: str
    output_depth: int
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

        p = validate_parameters(overrides)
        if not p["topics.rgb"]:
            raise ValueError("parameter topics.rgb: the RGB image is required (the sync anchor)")
        modalities = p["model.modalities"].strip()
        return cls(
            topics={key: p[f"topics.{key}"] for key in SENSOR_INPUTS},
            info_topics={key: p[f"topics.{key}_info"] for key in ("rgb", "depth", "thermal")},
            reliability={key: p[f"qos.{key}"] for key in (*SENSOR_INPUTS, "camera_info")},
            output_reliability=p["qos.output"],
            output_depth=p["qos.output_depth"],
            model_path=p["model.path"],
            backend=p["model.backend"],
            precision=p["model.precision"] or None,
            threads=p["model.threads"],
            rebuild_engine=p["model.rebuild_engine"],
            modalities=parse_modalities(modalities) if modalities else None,
            slop_ns=_ns(p["sync.slop_s"]),
            timeout_ns=_ns(p["sync.timeout_s"]),
            strict=p["sync.strict"],
            offsets_ns={
                key: _ns(p[f"sync.offset_{key}_s"]) for key in ("depth", "thermal", "points")
            },
            poll_period_ns=_ns(p["sync.poll_period_s"]),
            extrinsics_source=p["extrinsics.source"],
            tf_timeout_ns=_ns(p["extrinsics.tf_timeout_s"]),
            configured_extrinsics={
                key: pose_to_matrix(p[f"extrinsics.rgb_from_{key}"], f"extrinsics.rgb_from_{key}")
                for key in ("depth", "thermal", "points")
            },
            lidar_intensity_max=p["lidar.intensity_max"],
            lidar_max_range_m=p["lidar.max_range_m"],
            lidar_dilation=p["lidar.dilation"],
            labels_color=p["output.labels_color"],
            confidence=p["output.confidence"],
            labeled_points=p["output.labeled_points"],
            overlay_alpha=p["output.overlay_alpha"],
            palette_file=p["output.palette_file"],
            diagnostics_period_ns=_ns(p["diagnostics.period_s"]),
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


def command_line_parameters(
    params_file: str | Path | None, backend: str | None = None, model: str | Path | None = None
) -> dict[str, Any]:
    """Parameters for a command-line transport (replay, the DDS node).

    The params file first, then the ``--backend``/``--model`` shortcuts over
    ``model.backend``/``model.path``.
    """
    parameters = load_params_file(params_file) if params_file else {}
    if backend:
        parameters["model.backend"] = backend
    if model:
        parameters["model.path"] = str(model)
    return parameters


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
    """Markdown table of every parameter (name, default, values, live?, meaning) for the README."""
    rows = [
        "| parameter | default | values | set live | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, spec in PARAMETERS.items():
        shown = f"'{spec.default}'" if isinstance(spec.default, str) else spec.default
        live = "yes" if spec.dynamic else "at configure"
        rows.append(f"| `{name}` | `{shown}` | {spec.allowed()} | {live} | {spec.description} |")
    return "\n".join(rows)
