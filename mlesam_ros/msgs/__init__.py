"""ROS message <-> numpy conversion, duck-typed so rosbags and rclpy messages both work.

Everything here needs only numpy and rosbags (pure Python): no ROS install, no OpenCV.
Messages built here are rosbags ``ROS2_HUMBLE`` typestore objects (see :func:`typestore`),
ready for ``rosbags`` writers or, field by field, for rclpy publishers. Stamps are integer
nanoseconds everywhere.
"""

from mlesam_ros.msgs._typestore import message_class, typestore
from mlesam_ros.msgs.camera_info import camera_info_to_camera, camera_to_camera_info
from mlesam_ros.msgs.image import (
    DEPTH_ENCODINGS,
    IMAGE_ENCODINGS,
    image_to_depth_m,
    image_to_numpy,
    image_to_rgb8,
    numpy_to_image,
)
from mlesam_ros.msgs.pointcloud import (
    POINTFIELD_DTYPES,
    array_to_pointcloud2,
    cloud_field,
    cloud_xyz,
    labelled_points,
    labelled_points_dtype,
    pack_rgb,
    pointcloud2_dtype,
    pointcloud2_to_array,
)
from mlesam_ros.msgs.stamps import (
    StampError,
    checked_header_stamp_ns,
    checked_stamp_ns,
    header_stamp_ns,
    make_header,
    ns_to_stamp,
    stamp_to_ns,
)
from mlesam_ros.msgs.transforms import (
    matrices_to_tf_message,
    matrix_to_transform_stamped,
    tf_message_to_matrices,
    transform_to_matrix,
)

__all__ = [
    "DEPTH_ENCODINGS",
    "IMAGE_ENCODINGS",
    "POINTFIELD_DTYPES",
    "StampError",
    "array_to_pointcloud2",
    "camera_info_to_camera",
    "camera_to_camera_info",
    "checked_header_stamp_ns",
    "checked_stamp_ns",
    "cloud_field",
    "cloud_xyz",
    "header_stamp_ns",
    "image_to_depth_m",
    "image_to_numpy",
    "image_to_rgb8",
    "labelled_points",
    "labelled_points_dtype",
    "make_header",
    "matrices_to_tf_message",
    "matrix_to_transform_stamped",
    "message_class",
    "ns_to_stamp",
    "numpy_to_image",
    "pack_rgb",
    "pointcloud2_dtype",
    "pointcloud2_to_array",
    "stamp_to_ns",
    "tf_message_to_matrices",
    "transform_to_matrix",
    "typestore",
]
