"""``geometry_msgs/Transform(Stamped)`` and ``tf2_msgs/TFMessage`` <-> 4x4 matrices."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlesam_ros.geometry.transforms import matrix_to_quaternion, quaternion_to_matrix
from mlesam_ros.msgs._typestore import message_class
from mlesam_ros.msgs.stamps import make_header, stamp_to_ns


def transform_to_matrix(transform: Any) -> np.ndarray:
    """4x4 matrix of a ``Transform`` or ``TransformStamped`` (duck-typed).

    For a TransformStamped with ``header.frame_id = parent`` and ``child_frame_id = child``
    the matrix is ``T_parent_from_child``.
    """
    transform = getattr(transform, "transform", transform)
    t, q = transform.translation, transform.rotation
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(np.array([q.x, q.y, q.z, q.w], dtype=np.float64))
    T[:3, 3] = [t.x, t.y, t.z]
    return T


def matrix_to_transform_stamped(
    T_parent_from_child: np.ndarray,  # noqa: N803 (frame-naming convention, see geometry)
    stamp_ns: Any,
    parent_frame: str,
    child_frame: str,
) -> Any:
    """Build a rosbags ``geometry_msgs/msg/TransformStamped`` from ``T_parent_from_child``."""
    T = np.asarray(T_parent_from_child, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"matrix_to_transform_stamped: expected 4x4, got {T.shape}")
    x, y, z, w = matrix_to_quaternion(T[:3, :3])
    vector3 = message_class("geometry_msgs/msg/Vector3")
    quaternion = message_class("geometry_msgs/msg/Quaternion")
    transform = message_class("geometry_msgs/msg/Transform")(
        translation=vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        rotation=quaternion(x=float(x), y=float(y), z=float(z), w=float(w)),
    )
    return message_class("geometry_msgs/msg/TransformStamped")(
        header=make_header(stamp_ns, parent_frame),
        child_frame_id=child_frame,
        transform=transform,
    )


def tf_message_to_matrices(msg: Any) -> dict[tuple[str, str], tuple[int, np.ndarray]]:
    """Map ``(parent, child)`` to ``(stamp_ns, T_parent_from_child)`` for a TFMessage.

    When a pair repeats inside one message the last transform wins.
    """
    result: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
    for stamped in msg.transforms:
        key = (str(stamped.header.frame_id), str(stamped.child_frame_id))
        result[key] = (stamp_to_ns(stamped.header.stamp), transform_to_matrix(stamped))
    return result


def matrices_to_tf_message(transforms: dict[tuple[str, str], np.ndarray], stamp_ns: Any) -> Any:
    """Build a rosbags ``tf2_msgs/msg/TFMessage`` from ``{(parent, child): T}``."""
    return message_class("tf2_msgs/msg/TFMessage")(
        transforms=[
            matrix_to_transform_stamped(T, stamp_ns, parent, child)
            for (parent, child), T in transforms.items()
        ]
    )
