"""The live node's rosbags → rclpy copy, checked against rclpy-shaped classes built here.

rclpy is not installable in CI, so the test generates classes with rclpy's generated-code
surface (``get_fields_and_field_types`` and per-field defaults, nested messages as instances)
from the rosbags typestore definitions, then checks that every field arrives.
"""

from __future__ import annotations

import array
from functools import cache

import numpy as np
from rosbags.typesys.base import Nodetype

from mlesam_ros.msgs import array_to_pointcloud2, labelled_points, numpy_to_image
from mlesam_ros.node.convert import to_rclpy
from mlesam_ros.pipeline import messages
from mlesam_ros.pipeline.messages import ensure_vision_msgs


@cache
def rclpy_like(msgtype: str) -> type:
    store = ensure_vision_msgs()
    _, fields = store.fielddefs[msgtype]

    def __init__(self) -> None:  # noqa: N807
        for name, (kind, detail) in fields:
            nested = rclpy_like(detail) if kind == Nodetype.NAME else None
            setattr(self, name, nested() if nested else None)

    return type(
        msgtype.replace("/", "_"),
        (),
        {
            "__init__": __init__,
            "get_fields_and_field_types": staticmethod(
                lambda: {name: str(detail) for name, (_, detail) in fields}
            ),
            "msgtype": msgtype,
        },
    )


def test_image_copies_header_and_bytes() -> None:
    pixels = np.arange(2 * 3, dtype=np.uint8).reshape(2, 3)
    message = numpy_to_image(pixels, "mono8", 1_500_000_123, frame_id="camera")
    out = to_rclpy(message, rclpy_like)
    assert type(out).msgtype == "sensor_msgs/msg/Image"
    assert out.header.stamp.sec == 1 and out.header.stamp.nanosec == 500_000_123
    assert out.header.frame_id == "camera"
    assert (out.height, out.width, out.encoding, out.step) == (2, 3, "mono8", 3)
    assert isinstance(out.data, array.array) and out.data.typecode == "B"
    assert out.data.tobytes() == pixels.tobytes()


def test_pointcloud_fields_become_message_lists() -> None:
    xyz = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    cloud = array_to_pointcloud2(labelled_points(xyz, np.array([7, 9])), 42, frame_id="lidar")
    out = to_rclpy(cloud, rclpy_like)
    assert [field.name for field in out.fields] == [field.name for field in cloud.fields]
    assert type(out.fields[0]).msgtype == "sensor_msgs/msg/PointField"
    assert out.data.tobytes() == bytes(cloud.data)
    assert out.point_step == cloud.point_step and out.width == 2


def test_label_info_nested_class_map() -> None:
    info = messages.label_info(["road", "car"], 5, frame_id="camera")
    out = to_rclpy(info, rclpy_like)
    assert [(c.class_id, c.class_name) for c in out.class_map] == [(0, "road"), (1, "car")]
    assert type(out.class_map[0]).msgtype == "vision_msgs/msg/VisionClass"
