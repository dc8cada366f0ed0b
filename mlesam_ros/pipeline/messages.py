"""Message types, output topic names, the CDR codec and the LabelInfo/diagnostics builders.

The codec (:func:`decode`/:func:`encode`) is the only message (de)serialisation of the node:
the live rclpy shell hands the core the raw CDR bytes of each subscription and publishes the
CDR bytes the core returns, and replay hands it the same bytes read from a bag and writes the
same bytes to the output bag. Both sides are rosbags' ``ROS2_HUMBLE`` typestore, so there is
no second, rclpy-shaped copy of any message (the class of bug where an rclpy field type, such
as ``DiagnosticStatus.level`` being a 1-byte ``bytes``, differs from the core's, is gone).

rosbags' ROS 2 Humble typestore has ``diagnostic_msgs`` but not ``vision_msgs``, so
``vision_msgs/msg/LabelInfo`` and ``VisionClass`` are registered into the project typestore
from their ``.msg`` definitions (vision_msgs 4.x, as shipped for Humble) with rosbags'
``get_types_from_msg``; rosbags writers then embed the same definitions in output bags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlesam_ros.msgs import make_header, typestore
from mlesam_ros.text import bounded

IMAGE = "sensor_msgs/msg/Image"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

# Output topics, node-relative as ROS 2 convention wants: ``~/labels`` is /mlesam/labels for
# the default node name and /front/mlesam/labels in namespace ``front`` (two instances never
# collide). /diagnostics stays global, where diagnostic_aggregator listens.
NODE_NAME = "mlesam"
LABELS_OUT = "~/labels"
LABELS_COLOR_OUT = "~/labels_color"
LABEL_INFO_OUT = "~/label_info"
CONFIDENCE_OUT = "~/confidence"
LABELED_POINTS_OUT = "~/labeled_points"
DIAGNOSTICS_TOPIC = "/diagnostics"


def resolve_topic(name: str, node_name: str = NODE_NAME, namespace: str = "/") -> str:
    """Expand a topic name the way rcl does: ``~`` = node's FQN, relative = under namespace.

    Replay and the DDS transport (which have no rcl) name their topics with it; the rclpy node
    lets rcl do it (and rcl also applies remapping rules, which this function does not).
    """
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if name.startswith("~"):
        return f"{namespace}/{node_name}{name[1:]}"
    if name.startswith("/"):
        return name
    return f"{namespace}/{name}"


LABELS_TOPIC = resolve_topic(LABELS_OUT)
"""``/mlesam/labels``: where the default-named node (and replay's output bag) has labels."""
LABELS_COLOR_TOPIC = resolve_topic(LABELS_COLOR_OUT)
LABEL_INFO_TOPIC = resolve_topic(LABEL_INFO_OUT)
CONFIDENCE_TOPIC = resolve_topic(CONFIDENCE_OUT)
LABELED_POINTS_TOPIC = resolve_topic(LABELED_POINTS_OUT)

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


def decode(data: Any, msgtype: str) -> Any:
    """Deserialise CDR ``data`` (bytes-like) as ``msgtype``; a message object passes through.

    Transports that already hold message objects (tests, an in-process transport) may hand
    those over; everything on the wire arrives as bytes.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return ensure_vision_msgs().deserialize_cdr(bytes(data), msgtype)
    return data


def encode(message: Any, msgtype: str) -> bytes:
    """Serialise a typestore message to CDR (little endian, as rclpy and rosbag2 write it)."""
    return bytes(ensure_vision_msgs().serialize_cdr(message, msgtype))


def label_info(
    classes: Sequence[str] | Mapping[int, str], stamp_ns: int, frame_id: str = ""
) -> Any:
    """``vision_msgs/LabelInfo``: id → name for every class (threshold 0: argmax labels).

    ``classes``: names in id order, or the published ids and their names (a class map).
    """
    store = ensure_vision_msgs()
    vision_class = store.types["vision_msgs/msg/VisionClass"]
    pairs = classes.items() if isinstance(classes, Mapping) else enumerate(classes)
    return store.types[LABEL_INFO](
        header=make_header(stamp_ns, frame_id),
        class_map=[
            vision_class(class_id=int(index), class_name=str(name)) for index, name in pairs
        ],
        threshold=0.0,
    )


def diagnostic_status(
    name: str, level: int, message: str, values: Mapping[str, Any], hardware_id: str = "mlesam"
) -> Any:
    """One ``diagnostic_msgs/DiagnosticStatus`` (values stringified, floats rounded).

    Every string is bounded (:func:`mlesam_ros.text.bounded`): a value echoed from an input
    (a topic name, a frame id) never makes a megabyte status.
    """
    types = typestore().types
    key_value = types["diagnostic_msgs/msg/KeyValue"]

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, float):
            return f"{value:.3f}"
        return bounded(value)

    return types["diagnostic_msgs/msg/DiagnosticStatus"](
        level=int(level),
        name=bounded(name, 200),
        message=bounded(message),
        hardware_id=hardware_id,
        values=[key_value(key=str(k), value=text(v)) for k, v in values.items()],
    )


def diagnostic_array(statuses: Sequence[Any], stamp_ns: int) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` stamped ``stamp_ns``."""
    return typestore().types[DIAGNOSTIC_ARRAY](
        header=make_header(stamp_ns, ""), status=list(statuses)
    )
