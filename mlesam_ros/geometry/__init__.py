"""Camera models, rigid transforms, z-buffered LiDAR projection and camera registration.

numpy only at import: the projection takes torch tensors too (importing torch only then) and
the OpenCV-based warps in ``registration`` import cv2 when called.
"""

from mlesam_ros.geometry.camera import DISTORTION_MODELS, CameraModel
from mlesam_ros.geometry.frustum import frustum_candidates
from mlesam_ros.geometry.lidar_dilation import dilation_targets
from mlesam_ros.geometry.lidar_image import (
    DEFAULT_HEIGHT_RANGE_M,
    DEFAULT_INTENSITY_MAX,
    DEFAULT_MAX_RANGE_M,
    decode_channel,
    encode_channel,
    lidar_image,
    projection_image,
)
from mlesam_ros.geometry.projection import LidarProjection, project_lidar
from mlesam_ros.geometry.registration import (
    ParallaxMap,
    crop_resize,
    homography_at_depth,
    register_depth,
    register_image,
    registration_map,
    remap,
)
from mlesam_ros.geometry.transforms import (
    check_transform,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    transform_points,
)

__all__ = [
    "DEFAULT_HEIGHT_RANGE_M",
    "DEFAULT_INTENSITY_MAX",
    "DEFAULT_MAX_RANGE_M",
    "DISTORTION_MODELS",
    "CameraModel",
    "LidarProjection",
    "ParallaxMap",
    "check_transform",
    "crop_resize",
    "decode_channel",
    "dilation_targets",
    "encode_channel",
    "frustum_candidates",
    "homography_at_depth",
    "invert_transform",
    "lidar_image",
    "make_transform",
    "matrix_to_quaternion",
    "project_lidar",
    "projection_image",
    "quaternion_to_matrix",
    "register_depth",
    "register_image",
    "registration_map",
    "remap",
    "transform_points",
]
