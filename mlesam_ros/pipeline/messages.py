"""Output message types and builders: LabelInfo and DiagnosticArray as rosbags messages.

rosbags' ROS 2 Humble typestore has ``diagnostic_msgs`` but not ``vision_msgs``, so
``vision_msgs/msg/LabelInfo`` and ``VisionClass`` are registered into the project typestore
from their ``.msg`` definitions (vision_msgs 4.x, as shipped for Humble) with rosbags'
``get_types_from_msg``; rosbags writers then embed the same definitions in output bags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlesam_ros.msgs import make_header, typestore

IMAGE = "sensor_msgs/msg/Image"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

# Output topics (remap them in the launch file rather than renaming here).
LABELS_TOPIC = "/mlesam/labels"
LABELS_COLOR_TOPIC = "/mlesam/labels_color"
LABEL_INFO_TOPIC = "/mlesam/label_info"
CONFIDENCE_TOPIC = "/mlesam/confidence"
LABELED_POINTS_TOPIC = "/mlesam/labeled_points"
DIAGNOSTICS_TOPIC = "/diagnostics"

VISION_CLASS_MSG = """\
uint16 class_id
string class_name
"""
LABEL_INFO_MSG = """\
std_msgs/Header header
vision_msgs/VisionClass[] class_map
float32 threshold
"""

# diagnostic_msgs/DiagnosticStatus levels.
OK, WARN, ERROR, STALE = 0, 1, 2, 3


def ensure_vision_msgs() -> Any:
    """Register ``vision_msgs/msg/{VisionClass,LabelInfo}`` once; return the typestore."""
    store = typestore()
    if LABEL_INFO not in store.types:
        from rosbags.typesys import get_types_from_msg

        types = {}
        types.update(get_types_from_msg(VISION_CLASS_MSG, "vision_msgs/msg/VisionClass"))
        types.update(get_types_from_msg(LABEL_INFO_MSG, LABEL_INFO))
        store.register(types)
    return store


def label_info(class_names: Sequence[str], stamp_ns: int, frame_id: str = "") -> Any:
    """``vision_msgs/LabelInfo``: id → name for every class (threshold 0: argmax labels)."""
    store = ensure_vision_msgs()
    vision_class = store.types["vision_msgs/msg/VisionClass"]
    return store.types[LABEL_INFO](
        header=make_header(stamp_ns, frame_id),
        class_map=[
            vision_class(class_id=index, class_name=str(name))
            for index, name in enumerate(class_names)
        ],
        threshold=0.0,
    )


def diagnostic_status(
    name: str, level: int, message: str, values: Mapping[str, Any], hardware_id: str = "mlesam"
) -> Any:
    """One ``diagnostic_msgs/DiagnosticStatus`` (values stringified, floats rounded)."""
    types = typestore().types
    key_value = types["diagnostic_msgs/msg/KeyValue"]

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    return types["diagnostic_msgs/msg/DiagnosticStatus"](
        level=int(level),
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[key_value(key=str(k), value=text(v)) for k, v in values.items()],
    )


def diagnostic_array(statuses: Sequence[Any], stamp_ns: int) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` stamped ``stamp_ns``."""
    return typestore().types[DIAGNOSTIC_ARRAY](
        header=make_header(stamp_ns, ""), status=list(statuses)
    )
