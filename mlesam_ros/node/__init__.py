"""The live ROS 2 node: the only package in mlesam_ros that imports rclpy."""
