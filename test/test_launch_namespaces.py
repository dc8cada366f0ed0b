"""Launch test under a real ROS 2: two instances in two namespaces side by side.

Each ``segment.launch.py`` instance (``namespace:=front`` and ``namespace:=rear``) publishes
its own ``/<ns>/mlesam/labels``; neither collides with the other or with ``/mlesam/labels``.
Skipped where ROS 2 and launch_testing are not installed.
"""

import pytest

pytest.importorskip("launch_testing", reason="launch_testing is installed only with ROS 2")
rclpy = pytest.importorskip("rclpy", reason="rclpy is installed only with ROS 2")

import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
from pathlib import Path  # noqa: E402

import launch  # noqa: E402
import launch.launch_description_sources  # noqa: E402
import launch_testing.actions  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from mlesam_ros.data import topics  # noqa: E402
from mlesam_ros.data.synth import SyntheticDrive, default_rig  # noqa: E402
from mlesam_ros.msgs import camera_to_camera_info, numpy_to_image  # noqa: E402
from mlesam_ros.pipeline import messages as m  # noqa: E402

NAMESPACES = ("front", "rear")


@pytest.mark.launch_test
def generate_test_description():
    share = Path(get_package_share_directory("mlesam_ros"))
    instances = [
        launch.actions.IncludeLaunchDescription(
            launch.launch_description_sources.PythonLaunchDescriptionSource(
                str(share / "launch" / "segment.launch.py")
            ),
            launch_arguments={"use_rviz": "false", "namespace": namespace}.items(),
        )
        for namespace in NAMESPACES
    ]
    return launch.LaunchDescription([*instances, launch_testing.actions.ReadyToTest()])


class TestTwoInstances(unittest.TestCase):
    def test_each_namespace_gets_its_own_labels(self) -> None:
        rclpy.init()
        node = rclpy.create_node("mlesam_namespaces_test")
        received = {namespace: [] for namespace in (*NAMESPACES, "")}
        for namespace in received:
            topic = f"/{namespace}/mlesam/labels" if namespace else "/mlesam/labels"
            node.create_subscription(Image, topic, received[namespace].append, 10)
        rgb = node.create_publisher(Image, topics.IMAGE_TOPICS["rgb"], 5)
        info = node.create_publisher(CameraInfo, topics.INFO_TOPICS["rgb"], 5)
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        try:
            deadline = time.monotonic() + 120.0
            while time.monotonic() < deadline and not all(
                node.count_publishers(f"/{ns}/mlesam/labels") for ns in NAMESPACES
            ):
                time.sleep(0.5)
            rig = default_rig(width=160, height=120)
            frame = SyntheticDrive(seed=1, rig=rig).frame(0)
            stamps = []
            for _ in range(6):
                now = node.get_clock().now().nanoseconds
                info.publish(m.encode(camera_to_camera_info(rig.rgb.camera, now,
                                                            rig.rgb.frame_id), m.CAMERA_INFO))
                rgb.publish(m.encode(numpy_to_image(frame.rgb, "rgb8", now, rig.rgb.frame_id),
                                     m.IMAGE))
                stamps.append(now)
                time.sleep(1.0)
            time.sleep(3.0)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown()
        got = {
            namespace: {msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                        for msg in messages}
            for namespace, messages in received.items()
        }
        print({namespace or "/": len(stamps_) for namespace, stamps_ in got.items()})
        for namespace in NAMESPACES:
            self.assertGreaterEqual(len(got[namespace] & set(stamps)), 4, namespace)
        self.assertEqual(got[""], set(), "an instance published outside its namespace")
