"""Launch test: start segment.launch.py (no rviz) and wait for the latched LabelInfo.

Runs where ROS 2 and launch_testing are installed (``colcon test``); skipped elsewhere.
"""

import pytest

launch_testing = pytest.importorskip(
    "launch_testing", reason="launch_testing is installed only with ROS 2"
)
rclpy = pytest.importorskip("rclpy", reason="rclpy is installed only with ROS 2")

import time  # noqa: E402
import unittest  # noqa: E402
from pathlib import Path  # noqa: E402

import launch  # noqa: E402
import launch.launch_description_sources  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    share = Path(get_package_share_directory("mlesam_ros"))
    segment = launch.actions.IncludeLaunchDescription(
        launch.launch_description_sources.PythonLaunchDescriptionSource(
            str(share / "launch" / "segment.launch.py")
        ),
        launch_arguments={"use_rviz": "false"}.items(),
    )
    return launch.LaunchDescription([segment, launch_testing.actions.ReadyToTest()])


class TestLabelInfo(unittest.TestCase):
    def test_label_info_is_latched(self) -> None:
        rclpy.init()
        node = rclpy.create_node("mlesam_launch_test")
        received = []
        qos = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        node.create_subscription(LabelInfo, "/mlesam/label_info", received.append, qos)
        deadline = time.monotonic() + 60.0
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.5)
        node.destroy_node()
        rclpy.shutdown()
        assert received, "no /mlesam/label_info within 60 s of launch"
        assert len(received[0].class_map) == 25
