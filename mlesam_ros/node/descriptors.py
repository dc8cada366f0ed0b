"""ROS ``ParameterDescriptor`` fields from the typed parameter spec (no rclpy, tested in CI).

The rclpy shell turns :func:`descriptor_fields` into ``rcl_interfaces`` messages; keeping the
mapping here means the description, type and range ``ros2 param describe`` shows are the
ones the start-up validation enforces.
"""

from __future__ import annotations

import math
from typing import Any

from mlesam_ros.pipeline.config import ParamSpec, parameter_spec

_TYPE_NAMES = {
    str: "PARAMETER_STRING",
    bool: "PARAMETER_BOOL",
    int: "PARAMETER_INTEGER",
    float: "PARAMETER_DOUBLE",
    list: "PARAMETER_DOUBLE_ARRAY",
}


def descriptor_fields(name: str, spec: ParamSpec | None = None) -> dict[str, Any]:
    """Fields of ``rcl_interfaces/ParameterDescriptor`` for parameter ``name``.

    ``type`` is the ``ParameterType`` constant's name; ``floating_point_range`` or
    ``integer_range`` is ``(from, to)`` (inclusive, as ROS checks it; a ``> 0`` bound is
    checked exactly by the node's on-set callback). Static parameters say so in the
    description: ``ros2 param set`` refuses them while the node is configured.
    """
    spec = spec or parameter_spec(name)
    when = "set live" if spec.dynamic else "static: applies at the next lifecycle configure"
    fields: dict[str, Any] = {
        "name": name,
        "type": _TYPE_NAMES[spec.kind],
        "description": f"{spec.description} [{when}]",
        "additional_constraints": f"allowed: {spec.allowed()}",
        "read_only": False,
        # A list of names may come as a YAML list (string array) or as text: both are read.
        "dynamic_typing": spec.names,
    }
    if spec.kind in (int, float) and (
        spec.minimum is not None or spec.maximum is not None or spec.positive
    ):
        low = 0 if spec.positive else spec.minimum
        high = spec.maximum
        if spec.kind is float:
            fields["floating_point_range"] = (
                -math.inf if low is None else float(low),
                math.inf if high is None else float(high),
            )
        else:
            fields["integer_range"] = (
                -(2**63) if low is None else int(low),
                2**63 - 1 if high is None else int(high),
            )
    return fields
