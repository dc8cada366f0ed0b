"""The synthetic multi-sensor street world (numpy ray casting; see ``drive.SyntheticDrive``)."""

from mlesam_ros.data.synth.drive import FAILURES, SENSORS, SyntheticDrive, SyntheticFrame
from mlesam_ros.data.synth.render import CONDITIONS, LIDAR_DTYPE, THERMAL_COUNTS_PER_KELVIN
from mlesam_ros.data.synth.sensors import CameraSpec, LidarSpec, SensorRig, default_rig

__all__ = [
    "CONDITIONS",
    "FAILURES",
    "LIDAR_DTYPE",
    "SENSORS",
    "THERMAL_COUNTS_PER_KELVIN",
    "CameraSpec",
    "LidarSpec",
    "SensorRig",
    "SyntheticDrive",
    "SyntheticFrame",
    "default_rig",
]
