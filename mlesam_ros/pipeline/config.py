"""The node's configuration: parameter values checked, typed as one object, read from files.

:func:`coerce_parameter` checks one value against its spec (naming the parameter and the
allowed values when it is wrong); :class:`NodeConfig` is the typed view every part of the
node reads, built from the parameter table (:mod:`mlesam_ros.pipeline.parameters`) once at
configure time and again on each accepted run-time change (:func:`check_update`).
:func:`load_params_file` reads a ROS 2 params file for the transports without ROS (replay,
DDS) by ROS's rules (:mod:`mlesam_ros.pipeline.params_file`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.pipeline.health import HealthConfig
from mlesam_ros.pipeline.parameters import (
    CAMERA_PARAMETERS,
    CAMERA_PREFIX,
    DEFAULT_PARAMETERS,
    DYNAMIC_PARAMETERS,
    PARAMETERS,
    SENSOR_INPUTS,
    ParamSpec,
    camera_defaults,
    camera_parameter,
    parameter_table,
    parse_camera_names,
    pose_to_matrix,
)
from mlesam_ros.pipeline.params_file import (
    read_params_file,
    report_unknown_parameters,
    unknown_parameter_text,
)
from mlesam_ros.text import quote, shown

__all__ = ["DEFAULT_PARAMETERS", "DYNAMIC_PARAMETERS", "PARAMETERS", "SENSOR_INPUTS",
           "CameraConfig", "NodeConfig", "ParamSpec", "check_update", "coerce_parameter",
           "command_line_parameters", "load_params_file", "parameter_names", "parameter_spec",
           "parameter_table", "pose_to_matrix", "validate_parameters"]  # fmt: skip


def parameter_spec(name: str) -> ParamSpec:
    """Return parameter ``name``'s spec (the per-camera table's for ``cameras.<camera>.<key>``).

    Unknown names raise naming the parameter.
    """
    spec = PARAMETERS.get(name)
    if spec is not None:
        return spec
    camera = camera_parameter(name)
    if camera is not None and camera[1] in CAMERA_PARAMETERS:
        return CAMERA_PARAMETERS[camera[1]]
    if camera is not None:
        raise ValueError(
            f"parameters: {unknown_parameter_text(name)} A camera's parameters are "
            f"{CAMERA_PREFIX}<camera>.{{{', '.join(CAMERA_PARAMETERS)}}}"
        )
    raise ValueError(f"parameters: {unknown_parameter_text(name)}")


def parameter_names(values: Mapping[str, Any]) -> tuple[str, ...]:
    """Every parameter name a node with these values has: the table's, then each camera's."""
    cameras = parse_camera_names(values.get("cameras.names", ""))
    return (*PARAMETERS, *(name for camera in cameras for name in camera_defaults(camera)))


def coerce_parameter(name: str, value: Any) -> Any:
    """Return ``value`` as parameter ``name``'s type, or raise naming it and the allowed values.

    Strict where a silent reading would be wrong: ``"false"`` is False (``bool("false")``
    would be True), a number given as text is read as that number, and anything else of the
    wrong type is an error rather than a guess.
    """
    spec = parameter_spec(name)

    def bad(reason: str = "") -> ValueError:
        return ValueError(
            f"parameter {name}: {reason or 'expected ' + spec.allowed()}, got {shown(value)}"
        )

    kind = spec.kind
    if spec.names:
        # Kept as comma-separated text: one type whether the YAML gave a list or text.
        return ",".join(parse_camera_names(value, name))
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
    """Defaults merged with coerced, validated ``overrides`` (every name checked).

    With ``cameras.names`` set, each camera's parameters are there too (defaults filled in);
    a per-camera parameter of a camera not in the list is an error (a typo would be ignored).
    """
    values = dict(DEFAULT_PARAMETERS)
    per_camera = {}
    for name, value in (overrides or {}).items():
        if camera_parameter(name) is None:
            values[name] = coerce_parameter(name, value)
        else:
            per_camera[name] = value
    cameras = parse_camera_names(values["cameras.names"])
    for camera in cameras:
        values.update(camera_defaults(camera))
    for name, value in per_camera.items():
        camera = camera_parameter(name)[0]
        if camera not in cameras:
            raise ValueError(
                f"parameter {quote(name)}: camera {quote(camera)} is not in cameras.names "
                f"[{', '.join(cameras)}]; add it there or remove the parameter"
            )
        values[name] = coerce_parameter(name, value)
    return values


@dataclass(frozen=True)
class CameraConfig:
    """One camera of a rig (``cameras.names``): its name, index and what its parameters feed.

    ``fields``: ``topics``, ``info_topics``, ``offsets_ns``, ``timeout_ns`` and
    ``configured_extrinsics``, which :meth:`NodeConfig.camera_view` lays over the shared
    configuration.
    """

    name: str
    index: int
    fields: Mapping[str, Any]

    @classmethod
    def from_values(cls, values: Mapping[str, Any], name: str, index: int) -> CameraConfig:
        """Read camera ``name``'s parameters from validated ``values``."""
        fields: dict[str, Any] = {}
        for key, spec in CAMERA_PARAMETERS.items():
            parameter = f"{CAMERA_PREFIX}{name}.{key}"
            value = values[parameter]
            value = value if spec.convert is None else spec.convert(value, parameter)
            field, _, item = spec.field.partition("[")
            if item:
                fields.setdefault(field, {})[item.rstrip("]")] = value
            else:
                fields[field] = value
        return cls(name, index, fields)


@dataclass(frozen=True)
class NodeConfig:
    """Typed, validated view of the parameters (built once at configure time)."""

    topics: dict[str, str]
    info_topics: dict[str, str]
    reliability: dict[str, str]
    transports: dict[str, str]
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
    class_map_file: str
    labeled_points_classes: tuple[str, ...]
    diagnostics_period_ns: int
    health_enabled: bool
    health_suspect_as_absent: bool
    health_window: int
    health_min_faulty: int
    cameras: tuple[CameraConfig, ...]
    batch_window_ns: int

    @classmethod
    def from_parameters(cls, overrides: Mapping[str, Any] | None = None) -> NodeConfig:
        """Merge ``overrides`` over the defaults and validate; unknown names are errors.

        Each parameter feeds the field its spec names (:attr:`ParamSpec.field`), so this
        class never lists the parameters again.
        """
        values = validate_parameters(overrides)
        if not values["topics.rgb"]:
            raise ValueError("parameter topics.rgb: the RGB image is required (the sync anchor)")
        fields: dict[str, Any] = {}
        for name, spec in PARAMETERS.items():
            value = values[name] if spec.convert is None else spec.convert(values[name], name)
            field, _, key = spec.field.partition("[")
            if key:
                fields.setdefault(field, {})[key.rstrip("]")] = value
            else:
                fields[field] = value
        fields["cameras"] = tuple(
            CameraConfig.from_values(values, name, index)
            for index, name in enumerate(parse_camera_names(fields["cameras"]))
        )
        config = cls(**fields)
        config.health_config()  # window/min_faulty checked together, naming the parameter
        return config

    def camera_view(self, camera: CameraConfig) -> NodeConfig:
        """Return this configuration as ``camera`` sees it, a one-camera configuration.

        Its topics, offsets, timeout and extrinsics over the shared rest (the LiDAR included).
        """
        fields = camera.fields
        return dataclasses.replace(
            self,
            topics={**fields["topics"], "points": self.topics["points"]},
            info_topics=dict(fields["info_topics"]),
            offsets_ns=dict(fields["offsets_ns"]),
            timeout_ns=fields["timeout_ns"] or self.timeout_ns,
            configured_extrinsics=dict(fields["configured_extrinsics"]),
            cameras=(),
        )

    def health_config(self) -> HealthConfig:
        """Return the sensor-health settings (:mod:`mlesam_ros.pipeline.health`)."""
        return HealthConfig(
            enabled=self.health_enabled,
            window=self.health_window,
            min_faulty=self.health_min_faulty,
            suspect_as_absent=self.health_suspect_as_absent,
        )

    @property
    def enabled_inputs(self) -> tuple[str, ...]:
        """Sensor inputs with a non-empty topic (rgb always)."""
        return tuple(key for key in SENSOR_INPUTS if self.topics[key])


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
        static = sorted(name for name in coerced if not parameter_spec(name).dynamic)
        if static:
            raise ValueError(
                f"parameter {', '.join(static)}: static (read at configure); deactivate and "
                "clean up the node (ros2 lifecycle set <node> deactivate, then cleanup), set "
                "it, then configure and activate again"
            )
    # Whole-config checks (e.g. pose shapes, modality names) on the merged values.
    NodeConfig.from_parameters({**current, **coerced})
    return coerced


def command_line_parameters(
    params_file: str | Path | None,
    backend: str | None = None,
    model: str | Path | None = None,
    *,
    fqn: str = "/mlesam",
    warn: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Parameters for a command-line transport (replay, the DDS node) named ``fqn``.

    The params file first (:func:`load_params_file`), then the ``--backend``/``--model``
    shortcuts over ``model.backend``/``model.path``.
    """
    parameters = load_params_file(params_file, fqn, warn) if params_file else {}
    if backend:
        parameters["model.backend"] = backend
    if model:
        parameters["model.path"] = str(model)
    return parameters


def load_params_file(
    path: str | Path, fqn: str = "/mlesam", warn: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """Read the parameters a ROS 2 params file holds for node ``fqn``, as flat dotted names.

    Sections and precedence follow ROS (:mod:`mlesam_ros.pipeline.params_file`); names the
    node does not know are reported once each through ``warn`` (default: the ``mlesam``
    logger) with the closest known name, and left out, as ROS leaves them; ROS's own names
    (``use_sim_time``) are kept for the transport.
    """
    warn = warn or logging.getLogger("mlesam").warning
    reading = read_params_file(path, fqn)
    for note in reading.notes:
        warn(f"mlesam: {note}")
    if not reading.applied:
        shown_sections = ", ".join(quote(name) for name in reading.sections[:8])
        warn(f"mlesam: params file {path}: no section applies to node {fqn} (sections: "
             f"{shown_sections}); nothing is read from it")  # fmt: skip
    unknown = set(report_unknown_parameters(reading.parameters, warn, f"params file {path}"))
    flat = {name: value for name, value in reading.parameters.items() if name not in unknown}
    for name, value in flat.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not np.isfinite(v) for v in values):
            raise ValueError(
                f"params file {path}: {quote(name)} is {shown(value)}; give a finite number "
                "(.inf and .nan are not valid parameter values)"
            )
    return flat
