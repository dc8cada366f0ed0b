"""Play a bag onto DDS at its recorded pace, and listen to topics: the node's live test rig.

:class:`BagPlayer` is a small ``ros2 bag play`` for machines without ROS: it publishes each
message's recorded CDR bytes unchanged (no decode/encode) at the bag's log-time pace, sensor
topics reliable depth 5 (a reliable writer matches best-effort and reliable readers) and
``/tf_static`` transient local like tf2's static broadcaster. :class:`TopicRecorder` keeps
what arrives on a topic with its arrival time. Both are used by ``mlesam play``, the live
tests and ``benchmarks/bench_dds.py``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlesam_ros.dds.endpoints import RosReader, RosWriter
from mlesam_ros.msgs import header_stamp_ns
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.tf_buffer import TF_STATIC_TOPIC
from mlesam_ros.text import bounded

LOG = logging.getLogger("mlesam.play")


@dataclass
class PlayedMessage:
    """One published message: when (monotonic ns), which topic, its header stamp if any."""

    topic: str
    sent_ns: int
    stamp_ns: int | None


@dataclass
class PlayResult:
    """What the player sent, and what it could not (malformed records, by topic)."""

    messages: list[PlayedMessage] = field(default_factory=list)
    skipped: collections.Counter = field(default_factory=collections.Counter)
    reasons: dict[str, str] = field(default_factory=dict)  # topic → why its first was skipped

    def skipped_text(self) -> str:
        """One line per topic with skipped records ('' when none)."""
        return "; ".join(f"{topic}: {count} skipped ({self.reasons[topic]})"
                         for topic, count in sorted(self.skipped.items()))  # fmt: skip

    def stamps(self, topic: str) -> list[int]:
        """Header stamps sent on ``topic`` in order."""
        return [p.stamp_ns for p in self.messages if p.topic == topic and p.stamp_ns is not None]


def _header_stamp(raw: bytes) -> int | None:
    """Header stamp of a CDR message that starts with ``std_msgs/Header`` (Image, ...)."""
    if len(raw) < 12:
        return None
    sec = int.from_bytes(raw[4:8], "little", signed=True)
    nanosec = int.from_bytes(raw[8:12], "little")
    return sec * 1_000_000_000 + nanosec


class BagPlayer:
    """Publish a rosbag2's topics on DDS at the recorded pace (``rate`` scales it).

    ``exclude`` leaves topics out (a dead sensor); ``topics`` limits to these. Writers are
    created in the constructor, so :meth:`wait_for_subscribers` can wait for the node first.
    ``clock_hz`` also publishes the bag's time on ``/clock`` at that rate and before each
    message (``ros2 bag play --clock``), for nodes with ``use_sim_time``.
    """

    def __init__(
        self,
        participant: Any,
        bag: str | Path,
        *,
        rate: float = 1.0,
        topics: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        clock_hz: float | None = None,
    ) -> None:
        from rosbags.highlevel import AnyReader

        from mlesam_ros.dds.clock import CLOCK_TOPIC, ClockPublisher

        if rate <= 0:
            raise ValueError(f"rate: must be > 0, got {rate}")
        if clock_hz is not None and clock_hz <= 0:
            raise ValueError(f"clock: must be > 0 Hz, got {clock_hz}")
        self.bag, self.rate = Path(bag), float(rate)
        if not self.bag.exists():
            raise FileNotFoundError(f"bag {self.bag} does not exist")
        self._store = m.ensure_vision_msgs()
        wanted = None if topics is None else set(topics)
        excluded = set(exclude)
        with AnyReader([self.bag], default_typestore=self._store) as reader:
            self.connections = {
                c.topic: c.msgtype
                for c in reader.connections
                if (wanted is None or c.topic in wanted) and c.topic not in excluded
            }
        self._stamped = {
            msgtype
            for msgtype in self.connections.values()
            if self._store.fielddefs[msgtype][1][:1]
            and self._store.fielddefs[msgtype][1][0][1][1] == "std_msgs/msg/Header"
        }
        self.writers = {
            topic: RosWriter(
                participant,
                topic,
                msgtype,
                latched=topic == TF_STATIC_TOPIC,
                depth=1 if topic == TF_STATIC_TOPIC else 5,
            )
            for topic, msgtype in self.connections.items()
            if not (clock_hz and topic == CLOCK_TOPIC)  # the bag's own /clock: replaced
        }
        self.clock = ClockPublisher(participant) if clock_hz else None
        self.clock_period_ns = int(1e9 / clock_hz) if clock_hz else None

    def wait_for_subscribers(self, topics: Iterable[str], timeout_s: float = 10.0) -> None:
        """Block until every topic in ``topics`` has a matched reader (``TimeoutError``)."""
        deadline = time.monotonic() + timeout_s
        pending = [topic for topic in topics if topic in self.writers]
        while pending:
            pending = [topic for topic in pending if not self.writers[topic].has_subscribers()]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {', '.join(pending)} after {timeout_s} s")
            time.sleep(0.02)

    @staticmethod
    def _skip(result: PlayResult, connection: Any, log_ns: int, error: Exception) -> None:
        topic = connection.topic
        if topic not in result.skipped:
            result.reasons[topic] = _skip_reason(error)
            LOG.warning(f"mlesam play: {topic}: malformed {connection.msgtype} record at bag "
                        f"time {log_ns} skipped ({result.reasons[topic]}); playing on")
        result.skipped[topic] += 1

    def play(self, stop: threading.Event | None = None) -> PlayResult:
        """Publish every message at its log time relative to the first one."""
        from rosbags.highlevel import AnyReader

        result = PlayResult()
        with AnyReader([self.bag], default_typestore=self._store) as reader:
            connections = [c for c in reader.connections if c.topic in self.writers]
            start_log: int | None = None
            start_wall = time.monotonic_ns()
            clock_sent = None
            for connection, log_ns, raw in reader.messages(connections=connections):
                if stop is not None and stop.is_set():
                    break
                if start_log is None:
                    start_log = log_ns
                due = start_wall + int((log_ns - start_log) / self.rate)
                while (delay := due - time.monotonic_ns()) > 0:
                    if self.clock is None:
                        time.sleep(delay / 1e9)
                        continue
                    # /clock ticks while waiting: bag time now, at clock_hz of wall time.
                    time.sleep(min(delay, self.clock_period_ns) / 1e9)
                    elapsed = time.monotonic_ns() - start_wall
                    ticked = min(start_log + int(elapsed * self.rate), log_ns)
                    if clock_sent is None or ticked > clock_sent:
                        self.clock.publish(ticked)
                        clock_sent = ticked
                if self.clock is not None and (clock_sent is None or log_ns > clock_sent):
                    self.clock.publish(log_ns)  # the node's clock reaches the message's time
                    clock_sent = log_ns
                try:
                    self.writers[connection.topic].publish_cdr(raw)
                except Exception as error:  # DDS refuses bytes that are not a valid sample
                    # One bad record must not end the drive: skip it, count it, say it once.
                    self._skip(result, connection, log_ns, error)
                    continue
                stamped = connection.msgtype in self._stamped
                stamp = _header_stamp(raw) if stamped else None
                result.messages.append(PlayedMessage(connection.topic, time.monotonic_ns(), stamp))
        return result


def _skip_reason(error: Exception) -> str:
    return bounded(f"{type(error).__name__}: {' '.join(str(error).split())}", 200)


def warm_up(
    player: BagPlayer,
    labels: TopicRecorder,
    rgb_topic: str,
    info_topic: str | None,
    *,
    advance_ns: int = 10_000_000_000,
    timeout_s: float = 60.0,
) -> int | None:
    """Send the bag's first RGB frame, restamped, until it is labelled; return its stamp.

    The frame (and its CameraInfo) goes out ``advance_ns`` before the drive starts and is
    repeated each second until a label with that stamp arrives (None after ``timeout_s``).
    The node's first inference allocates its buffers and is several times slower than the
    rest; a test or benchmark that plays at the recorded pace warms it up with this first.
    """
    from rosbags.highlevel import AnyReader


    topics = {rgb_topic, info_topic} - {None}
    first: dict[str, Any] = {}
    with AnyReader([player.bag], default_typestore=player._store) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, _, raw in reader.messages(connections=connections):
            first.setdefault(connection.topic, reader.deserialize(raw, connection.msgtype))
            if len(first) == len(topics):
                break
    if rgb_topic not in first:
        raise ValueError(f"bag {player.bag}: no message on {rgb_topic}")
    stamp = header_stamp_ns(first[rgb_topic]) - advance_ns
    for message in first.values():
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    if info_topic in first:
        player.writers[info_topic].publish(first[info_topic])

    def labelled() -> bool:
        return any(header_stamp_ns(msg) == stamp for msg in labels.messages())

    deadline = time.monotonic() + timeout_s
    while not labelled() and time.monotonic() < deadline:
        player.writers[rgb_topic].publish(first[rgb_topic])  # best-effort input: repeat
        end = time.monotonic() + 1.0
        while not labelled() and time.monotonic() < end:
            time.sleep(0.02)
    return stamp if labelled() else None


@dataclass
class Received:
    """One message a :class:`TopicRecorder` got: arrival (monotonic ns) and the message."""

    arrival_ns: int
    message: Any


class TopicRecorder:
    """Subscribe to ``topic`` and keep every message with its arrival time (thread-safe)."""

    def __init__(
        self,
        participant: Any,
        topic: str,
        msgtype: str,
        *,
        reliable: bool = True,
        latched: bool = False,
        depth: int = 10,
        on_message: Callable[[Received], None] | None = None,
        dds_name: str | None = None,
        layout: str = "humble",
    ) -> None:
        self.received: list[Received] = []
        self._lock = threading.Condition()
        self._on_message = on_message
        self.reader = RosReader(
            participant, topic, msgtype, self._keep,
            reliable=reliable, latched=latched, depth=depth, dds_name=dds_name, layout=layout,
        )  # fmt: skip

    def _keep(self, message: Any) -> None:
        item = Received(time.monotonic_ns(), message)
        with self._lock:
            self.received.append(item)
            self._lock.notify_all()
        if self._on_message is not None:
            self._on_message(item)

    def messages(self) -> list[Any]:
        """Return the messages received so far."""
        with self._lock:
            return [item.message for item in self.received]

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` messages arrived; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True


__all__ = [
    "BagPlayer",
    "PlayResult",
    "PlayedMessage",
    "Received",
    "TopicRecorder",
    "warm_up",
]
