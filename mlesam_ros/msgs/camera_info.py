"""``sensor_msgs/CameraInfo`` <-> :class:`~mlesam_ros.geometry.camera.CameraModel`.

Depends only on the numpy-only ``geometry.camera`` module, which knows nothing of messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.msgs._typestore import message_class
from mlesam_ros.msgs.stamps import make_header
from mlesam_ros.text import quote


def camera_info_to_camera(msg: Any, topic: str = "") -> CameraModel:
    """Read intrinsics, distortion, R and P from a CameraInfo (any object with its fields).

    Binning and ROI are applied, so the model describes the image that is published.
    Raises ``ValueError`` naming the topic for an all-zero K, an unknown distortion model or
    malformed arrays.
    """
    where = f"camera_info on topic {quote(topic)}" if topic else "camera_info"
    try:
        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        R = np.asarray(msg.r, dtype=np.float64).reshape(3, 3)
        P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
    except ValueError as error:
        raise ValueError(f"{where}: k must have 9, r 9 and p 12 values ({error})") from None
    if not np.any(R):
        R = np.eye(3)  # drivers of monocular cameras often leave R zero
    width, height = int(msg.width), int(msg.height)
    binning_x = max(int(getattr(msg, "binning_x", 0)), 1)
    binning_y = max(int(getattr(msg, "binning_y", 0)), 1)
    roi = getattr(msg, "roi", None)
    if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
        offset = np.array([[1, 0, -float(roi.x_offset)], [0, 1, -float(roi.y_offset)], [0, 0, 1]])
        K, P = offset @ K, offset @ P
        width, height = int(roi.width), int(roi.height)
    if binning_x > 1 or binning_y > 1:
        binning = np.diag([1 / binning_x, 1 / binning_y, 1])
        K, P = binning @ K, binning @ P
        width, height = width // binning_x, height // binning_y
    try:
        return CameraModel(
            width=width,
            height=height,
            K=K,
            D=np.asarray(msg.d, dtype=np.float64),
            distortion_model=str(msg.distortion_model),
            R=R,
            P=P,
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def camera_to_camera_info(camera: CameraModel, stamp_ns: Any, frame_id: str = "") -> Any:
    """Build a rosbags ``sensor_msgs/msg/CameraInfo`` describing ``camera``."""
    roi = message_class("sensor_msgs/msg/RegionOfInterest")(
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return message_class("sensor_msgs/msg/CameraInfo")(
        header=make_header(stamp_ns, frame_id),
        height=camera.height,
        width=camera.width,
        distortion_model=camera.distortion_model,
        d=np.array(camera.D, dtype=np.float64),
        k=camera.K.reshape(-1).copy(),
        r=camera.R.reshape(-1).copy(),
        p=camera.rectified_projection().reshape(-1).copy(),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )
