"""rosbags message → rclpy message copy, kept free of rclpy imports so it is tested without ROS.

The core builds its outputs as rosbags typestore messages (the same objects replay writes to
bags); the live node copies them into rclpy's generated classes. Both share ROS 2's field
names, so a recursive field copy is exact; no library converts between the two.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import numpy as np


def to_rclpy(message: Any, resolve: Callable[[str], type], rclpy_class: type | None = None) -> Any:
    """Copy rosbags ``message`` into an instance of its rclpy class.

    ``resolve`` maps a ROS type name (``"sensor_msgs/msg/Image"``) to the rclpy class
    (``rosidl_runtime_py.utilities.get_message`` in the node). uint8 arrays (image and cloud
    data) travel as ``array.array("B")``, which rclpy's setters take without the per-element
    validation loop they run on ``bytes`` or lists; other numeric arrays as lists.
    """
    if rclpy_class is None:
        rclpy_class = resolve(message.__msgtype__)
    out = rclpy_class()
    for name in out.get_fields_and_field_types():
        value = getattr(message, name)
        setattr(out, name, _convert_field(value, resolve, getattr(out, name)))
    return out


def _convert_field(value: Any, resolve: Callable[[str], type], current: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8:
            return array.array("B", value.tobytes())
        return value.tolist()
    if hasattr(value, "__msgtype__"):
        return to_rclpy(value, resolve, type(current))
    if isinstance(value, list) and value and hasattr(value[0], "__msgtype__"):
        element_class = resolve(value[0].__msgtype__)
        return [to_rclpy(item, resolve, element_class) for item in value]
    return value
