"""MLE-SAM multi-modal semantic segmentation for ROS 2.

Importing the package is cheap on purpose: torch, onnxruntime and rclpy load in the modules
that use them, so the CLI, replay and message tools start fast and run without ROS.
"""

from mlesam_ros._version import __version__

__all__ = ["__version__"]
