"""``segment_node``: a thin rclpy shell around the transport-agnostic node core.

Everything the node does (sync, projection, inference, publishing, diagnostics) is in the
core and is tested through bag replay; this module only implements the core's
:class:`~mlesam_ros.pipeline.interface.NodeIO` with rclpy: parameters, QoS, tf2, timers and
the conversion of the core's rosbags messages into rclpy messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.time import Time
from rosidl_runtime_py.utilities import get_message
from tf2_ros import Buffer, TransformException, TransformListener

from mlesam_ros.msgs import transform_to_matrix
from mlesam_ros.node.convert import to_rclpy
from mlesam_ros.pipeline.config import DEFAULT_PARAMETERS
from mlesam_ros.pipeline.core import SegmentationCore

_INPUT_DEPTH = 5


class _Publisher:
    """An rclpy publisher that accepts the core's rosbags messages."""

    def __init__(self, node: Node, topic: str, msgtype: str, latched: bool) -> None:
        self._class = get_message(msgtype)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )
        self._publisher = node.create_publisher(self._class, topic, qos)

    def publish(self, message: Any) -> None:
        """Convert and publish."""
        self._publisher.publish(to_rclpy(message, get_message, self._class))

    def has_subscribers(self) -> bool:
        """Whether anyone is subscribed (the core skips optional outputs otherwise)."""
        return self._publisher.get_subscription_count() > 0


class RclpyIO:
    """The core's ``NodeIO`` on top of an rclpy node.

    Composition, not inheritance: rclpy's own ``create_publisher``/``create_timer`` keep their
    signatures for rclpy's internals (parameter events, tf2).
    """

    def __init__(self, node: Node) -> None:
        self._node = node
        self.logger = node.get_logger()
        # Reentrant: a tf lookup waiting for its timeout must not block the other sensors.
        self._group = ReentrantCallbackGroup()
        self._tf_buffer = Buffer()
        self._tf_listener = TransformListener(self._tf_buffer, node, spin_thread=False)

    def parameters(self) -> dict[str, Any]:
        """Return the current value of every declared mlesam parameter."""
        return {name: self._node.get_parameter(name).value for name in DEFAULT_PARAMETERS}

    def now_ns(self) -> int:
        """Return ROS time (``use_sim_time`` aware) in nanoseconds."""
        return self._node.get_clock().now().nanoseconds

    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], reliability: str
    ) -> None:
        """Subscribe with sensor-data QoS (best effort) or reliable, depth 5."""
        if reliability == "reliable":
            qos = QoSProfile(depth=_INPUT_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        else:
            qos = qos_profile_sensor_data
        self._node.create_subscription(
            get_message(msgtype), topic, callback, qos, callback_group=self._group
        )

    def create_publisher(self, topic: str, msgtype: str, latched: bool = False) -> _Publisher:
        """Create a reliable depth-1 output (transient local when latched)."""
        return _Publisher(self._node, topic, msgtype, latched)

    def create_timer(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``period_ns`` of node time."""
        self._node.create_timer(period_ns / 1e9, callback, callback_group=self._group)

    def lookup_transform(
        self, target_frame: str, source_frame: str, stamp_ns: int, timeout_ns: int
    ) -> np.ndarray:
        """Look up tf2 at the sensor stamp; ``LookupError`` carries tf2's reason."""
        try:
            transform = self._tf_buffer.lookup_transform(
                target_frame,
                source_frame,
                Time(nanoseconds=stamp_ns),
                timeout=Duration(nanoseconds=timeout_ns),
            )
        except TransformException as error:
            raise LookupError(str(error)) from error
        return transform_to_matrix(transform)


class SegmentNode(Node):
    """The ``mlesam`` node: declares the parameters and runs the core on rclpy."""

    def __init__(self) -> None:
        super().__init__("mlesam")
        for name, default in DEFAULT_PARAMETERS.items():
            self.declare_parameter(name, default)
        self.core = SegmentationCore(RclpyIO(self), threaded=True)
        self.core.configure()

    def destroy_node(self) -> None:
        """Stop the inference worker and free the engine before rclpy tears down."""
        self.core.cleanup()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run mlesam_ros segment_node``."""
    rclpy.init(args=args)
    node = SegmentNode()
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
