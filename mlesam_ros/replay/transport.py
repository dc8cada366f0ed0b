"""The bag as a node transport: bag clock, timers in bag time, tf from the bag, output bag.

:class:`BagTransport` implements :class:`~mlesam_ros.pipeline.interface.NodeIO` over a bag:
the clock is the bag's log time, timers fire in bag time between messages, ``/tf`` and
``/tf_static`` fill a :class:`~mlesam_ros.pipeline.tf_buffer.TfBuffer`, and every publication
is written to the output bag stamped with the bag time it was published at. Bag time never
ticks timers across a gap longer than :data:`MAX_TIMER_GAP_NS` (a message logged at time 0
before ``/clock`` arrived would otherwise fire them for every period since 1970).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlesam_ros.data.topics import offered_qos
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.naming import NamedLogger, fully_qualified_name, logger_name
from mlesam_ros.pipeline.tf_buffer import TF_TOPICS, TfBuffer

LOG = logging.getLogger("mlesam.replay")
MAX_TIMER_GAP_NS = 10_000_000_000
"""Longest stretch of bag time over which timers tick period by period; longer gaps jump."""


class BagPublisher:
    """Writes each published CDR message to the output bag at the transport's current time."""

    def __init__(self, transport: BagTransport, topic: str, msgtype: str) -> None:
        self.transport, self.topic, self.msgtype = transport, topic, msgtype
        self.count = 0

    def publish(self, data: bytes) -> None:
        """Write ``data`` (CDR bytes from the core, exactly what the live node publishes)."""
        self.transport.write_raw(self.topic, self.msgtype, data)
        self.count += 1

    def has_subscribers(self) -> bool:
        """Return True: the output bag records everything the parameters enable."""
        return True


@dataclass
class _Timer:
    period_ns: int
    callback: Callable[[], None]
    due_ns: int | None = None


class BagTransport:
    """:class:`~mlesam_ros.pipeline.interface.NodeIO` over a bag: bag clock, output bag."""

    def __init__(self, writer: Any, parameters: Mapping[str, Any], logger: Any = LOG) -> None:
        self.fully_qualified_name = fully_qualified_name()  # outputs on /mlesam/...
        self.logger = NamedLogger(logger, logger_name(self.fully_qualified_name))
        self._parameters = dict(parameters)
        self._writer = writer
        self._connections: dict[str, Any] = {}
        self._now = 0
        self._timers: list[_Timer] = []
        self.subscriptions: dict[str, list[Callable[[Any], None]]] = collections.defaultdict(list)
        self.subscribed_types: dict[str, str] = {}
        self.publishers: dict[str, BagPublisher] = {}
        self.tf = TfBuffer()
        self.max_timer_gap_ns = MAX_TIMER_GAP_NS
        self.clock_jumps = 0
        # Where transport-level problems (a rejected transform, a wrong message type) go; the
        # replay points it at the core so they show in /diagnostics.
        self.on_issue: Callable[[str, str, str], None] | None = None

    # NodeIO -----------------------------------------------------------------------------------
    def parameters(self) -> Mapping[str, Any]:
        """Return the parameter overrides given to the replay."""
        return self._parameters

    def now_ns(self) -> int:
        """Return the bag time of the message being delivered (or the timer firing)."""
        return self._now

    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], reliability: str
    ) -> None:
        """Deliver ``topic``'s bag messages to ``callback`` (reliability is moot in a bag)."""
        self.subscriptions[topic].append(callback)
        self.subscribed_types[topic] = msgtype

    def create_publisher(
        self, topic: str, msgtype: str, latched: bool = False, **qos: Any
    ) -> BagPublisher:
        """Create an output topic in the output bag (``~/x`` named as the default node's)."""
        topic = m.resolve_topic(topic)
        publisher = BagPublisher(self, topic, msgtype)
        self.publishers[topic] = publisher
        return publisher

    def create_timer(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Fire ``callback`` every ``period_ns`` of bag time."""
        self._timers.append(_Timer(int(period_ns), callback))

    def lookup_transform(
        self, target_frame: str, source_frame: str, stamp_ns: int, timeout_ns: int
    ) -> np.ndarray:
        """Look up in the bag's ``/tf`` and ``/tf_static`` (all of it read so far)."""
        return self.tf.lookup(target_frame, source_frame, stamp_ns)

    # replay driving ---------------------------------------------------------------------------
    def write_raw(self, topic: str, msgtype: str, data: bytes) -> None:
        """Write CDR ``data`` into the output bag at the current bag time."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=m.ensure_vision_msgs(),
                offered_qos_profiles=offered_qos(topic),
            )  # fmt: skip
        self._writer.write(self._connections[topic], self._now, data)

    def advance(self, now_ns: int) -> None:
        """Move the clock to ``now_ns``, firing every timer that falls due on the way.

        Across a gap longer than ``max_timer_gap_ns`` the clock jumps: each timer fires once
        at ``now_ns`` instead of once per period of the gap (a live node's timers do not
        catch up either when ``/clock`` jumps).
        """
        now_ns = int(now_ns)
        if self._timers and now_ns - self._now > self.max_timer_gap_ns:
            self.clock_jumps += 1
            if self.clock_jumps == 1:
                self.logger.warning(
                    f"bag time jumps {(now_ns - self._now) / 1e9:.1f} s (from "
                    f"{self._now} ns to {now_ns} ns); timers fire once after the gap instead "
                    "of for every period in it"
                )
            self._now = now_ns
            for timer in self._timers:
                timer.due_ns = now_ns
        for timer in self._timers:
            if timer.due_ns is None:
                timer.due_ns = max(now_ns, self._now) + timer.period_ns
        while self._timers:
            timer = min(self._timers, key=lambda item: item.due_ns)
            if timer.due_ns > now_ns:
                break
            self._now = max(self._now, timer.due_ns)
            timer.due_ns += timer.period_ns
            timer.callback()
        self._now = max(self._now, now_ns)

    def report(self, topic: str, text: str, sensor: str = "tf") -> None:
        """Hand a transport-level problem to ``on_issue`` (or the log when nothing listens)."""
        if self.on_issue is not None:
            self.on_issue(sensor, topic, text)
        else:
            self.logger.warning(f"{sensor} ({topic}): {text}")

    def deliver(self, topic: str, message: Any) -> None:
        """Hand one bag message to its subscribers (tf topics to the tf buffer too).

        ``message`` is CDR bytes or the message that :func:`mlesam_ros.pipeline.messages.
        decode` made of them (replay decodes once, up front, to count undecodable records);
        the core runs the same decoder on the bytes that the live node's raw subscriptions
        hand it, so both transports share one codec.
        """
        if topic in TF_TOPICS:
            for problem in self.tf.feed(topic, message):
                self.report(topic, problem)
        for callback in self.subscriptions.get(topic, ()):
            callback(message)
