"""Topic and frame names of the synthetic robot, shared by the bag writer, replay and the node.

They follow common ROS 2 driver conventions (``image_raw`` + ``camera_info`` per camera,
``points`` for the LiDAR, static extrinsics on ``/tf_static``).
"""

from __future__ import annotations

RGB_IMAGE_TOPIC = "/camera/image_raw"
RGB_INFO_TOPIC = "/camera/camera_info"
DEPTH_IMAGE_TOPIC = "/depth/image_raw"
DEPTH_INFO_TOPIC = "/depth/camera_info"
THERMAL_IMAGE_TOPIC = "/thermal/image_raw"
THERMAL_INFO_TOPIC = "/thermal/camera_info"
LIDAR_TOPIC = "/lidar/points"
TF_STATIC_TOPIC = "/tf_static"
GT_LABELS_TOPIC = "/mlesam/gt_labels"
"""Ground-truth DELIVER ids (mono8) in the RGB camera, stamped like the RGB image."""


def camera_truth_topic(camera: str) -> str:
    """Ground truth of one camera of a rig (``cameras.names``): ``/mlesam/<camera>/gt_labels``."""
    return f"/mlesam/{camera}/gt_labels"

IMAGE_TOPICS = {"rgb": RGB_IMAGE_TOPIC, "depth": DEPTH_IMAGE_TOPIC, "thermal": THERMAL_IMAGE_TOPIC}
INFO_TOPICS = {"rgb": RGB_INFO_TOPIC, "depth": DEPTH_INFO_TOPIC, "thermal": THERMAL_INFO_TOPIC}

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINTCLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
TF_TYPE = "tf2_msgs/msg/TFMessage"


def offered_qos(topic: str) -> tuple:
    """Return the QoS a bag records as offered for ``topic``: transient local if latched.

    ``ros2 bag play`` republishes a topic with the QoS the bag says it was offered with;
    without it ``/tf_static`` (and LabelInfo) would be played volatile, which tf2's static
    listener (transient local) never receives: no extrinsics on the robot side. Other topics
    keep rosbag2's default (none recorded: the player's own default).
    """
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    if topic != TF_STATIC_TOPIC and not topic.endswith("/label_info"):
        return ()
    infinite = QosTime(9223372036, 854775807)  # RMW_DURATION_INFINITE, as rosbag2 writes it
    return (Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                infinite, infinite, QosLiveliness.AUTOMATIC, infinite, False),)  # fmt: skip
