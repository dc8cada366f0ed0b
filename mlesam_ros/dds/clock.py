"""Simulated time on DDS without ROS: ``/clock`` in, ``/clock`` out (``use_sim_time``).

A ROS 2 node with ``use_sim_time`` takes its time from ``rosgraph_msgs/msg/Clock`` on
``/clock`` (zero until the first message), and ``ros2 bag play --clock`` publishes the bag's
time there. :class:`SimClock` is the node side for the DDS transport, :class:`ClockPublisher`
the player side for ``mlesam play --clock``: with both, header stamps from a recorded bag and
the node clock agree, so sync timeouts run in bag time and latency is measured.
"""

from __future__ import annotations

import threading
from typing import Any

CLOCK_TOPIC = "/clock"
CLOCK = "rosgraph_msgs/msg/Clock"
DEFAULT_CLOCK_HZ = 40.0  # ros2 bag play --clock's default


def clock_ns(message: Any) -> int:
    """Nanoseconds of a ``rosgraph_msgs/msg/Clock``."""
    return int(message.clock.sec) * 1_000_000_000 + int(message.clock.nanosec)


class SimClock:
    """ROS time from ``/clock``: 0 until the first message, then the latest one received."""

    def __init__(self) -> None:
        self._now_ns = 0
        self._lock = threading.Lock()
        self.messages = 0

    def on_clock(self, message: Any) -> None:
        """Take the time of one ``/clock`` message (it may jump back: a bag played again)."""
        with self._lock:
            self._now_ns = clock_ns(message)
            self.messages += 1

    def now_ns(self) -> int:
        """Return the latest ``/clock`` time (0 before any)."""
        with self._lock:
            return self._now_ns


class ClockPublisher:
    """Publishes ``/clock`` (reliable, depth 1, as rosbag2's clock publisher)."""

    def __init__(self, participant: Any) -> None:
        from mlesam_ros.dds.endpoints import RosWriter
        from mlesam_ros.pipeline import messages as m

        store = m.ensure_vision_msgs()
        self._message = store.types[CLOCK]
        self._time = store.types["builtin_interfaces/msg/Time"]
        self.writer = RosWriter(participant, CLOCK_TOPIC, CLOCK)
        self.published = 0

    def publish(self, time_ns: int) -> None:
        """Publish ``time_ns`` as the current ROS time."""
        sec, nanosec = divmod(int(time_ns), 1_000_000_000)
        self.writer.publish(self._message(clock=self._time(sec=sec, nanosec=nanosec)))
        self.published += 1


__all__ = ["CLOCK", "CLOCK_TOPIC", "DEFAULT_CLOCK_HZ", "ClockPublisher", "SimClock", "clock_ns"]
