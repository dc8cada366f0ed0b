"""The node core's live transport without ROS: :class:`DdsTransport` implements ``NodeIO`` on DDS.

Third transport beside the rclpy node (``mlesam_ros/node/``) and bag replay
(:mod:`mlesam_ros.replay`): the same :class:`~mlesam_ros.pipeline.core.SegmentationCore`,
parameters from the same YAML, the same topics and QoS as the rclpy node (sensor inputs best
effort or reliable with depth 5, outputs reliable depth 1, LabelInfo transient local), the
wall clock as node clock (or ``/clock`` with ``use_sim_time``, as a ROS 2 node), ``/tf`` and
``/tf_static`` in a :class:`~mlesam_ros.pipeline.tf_buffer.TfBuffer`, timers on one scheduler
thread, and the process announced as a ROS node. :func:`run_node` is what ``mlesam node
--transport dds`` runs; its :class:`NodeReport` accounts for every RGB message received.
"""

from __future__ import annotations

import collections
import heapq
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesam_ros.dds.clock import CLOCK, CLOCK_TOPIC, SimClock
from mlesam_ros.dds.domain import open_participant
from mlesam_ros.dds.endpoints import GraphAnnouncer, RosReader, RosWriter, delete_participant
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.image_transport import input_topic
from mlesam_ros.pipeline.interface import RELIABILITIES
from mlesam_ros.pipeline.naming import NamedLogger, fully_qualified_name, logger_name
from mlesam_ros.pipeline.tf_buffer import TF_STATIC_TOPIC, TF_TOPICS, TfBuffer
from mlesam_ros.text import quote

LOG = logging.getLogger("mlesam.dds")
TF_DEPTH = 100  # tf2_ros' listener history
INCOMPATIBLE_CHECK_NS = 1_000_000_000
"""How often the inputs are checked for publishers DDS refused to connect."""
# cyclonedds' QoS policy ids (dds_qos_policy_id) a refused match names, in words.
_POLICIES = {
    2: "durability", 4: "deadline", 5: "latency budget", 6: "ownership", 8: "liveliness",
    10: "partition", 11: "reliability (a best-effort publisher for a reliable input)",
    12: "destination order", 13: "history", 23: "data representation",
    24: "type: another layout under the same type name",
}
WALL_CLOCK_ADVICE = (
    "the node runs on the wall clock; for a recorded bag run `mlesam play --clock` and "
    "`mlesam node --use-sim-time`"
)
SIM_CLOCK_ADVICE = (
    "the node runs on /clock (use_sim_time); is /clock published, e.g. `mlesam play --clock`, "
    "and on the cameras' time?"
)


class _Timers:
    """Every ``create_timer`` callback on one thread, in due order (like a single executor)."""

    def __init__(self) -> None:
        self._queue: list[tuple[int, int, int, Callable[[], None]]] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="mlesam-dds-timers", daemon=True)
        self._thread.start()

    def add(self, period_ns: int, callback: Callable[[], None]) -> None:
        if period_ns <= 0:
            raise ValueError(f"timer period: must be > 0 ns, got {period_ns}")
        with self._wake:
            due = time.monotonic_ns() + period_ns
            heapq.heappush(self._queue, (due, len(self._queue), int(period_ns), callback))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    wait_ns = self._queue[0][0] - time.monotonic_ns() if self._queue else None
                    if wait_ns is not None and wait_ns <= 0:
                        break
                    self._wake.wait(None if wait_ns is None else wait_ns / 1e9)
                if self._stopped:
                    return
                due, order, period, callback = heapq.heappop(self._queue)
                # Next due from the schedule, not from now, so the period does not drift; a
                # timer that fell behind by more than a period skips ahead (no burst).
                following = max(due + period, time.monotonic_ns())
                heapq.heappush(self._queue, (following, order, period, callback))
            try:
                callback()
            except Exception as error:
                LOG.error(f"timer callback: {type(error).__name__}: {error}")

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5.0)


class DdsTransport:
    """:class:`~mlesam_ros.pipeline.interface.NodeIO` on cyclonedds; see the module docstring.

    ``domain_id`` defaults to ``ROS_DOMAIN_ID`` and ``config`` to what
    :func:`~mlesam_ros.dds.domain.config_from_env` says (``ROS_LOCALHOST_ONLY``,
    ``CYCLONEDDS_URI``). Relative and ``~/`` topic names resolve against ``node_name`` and
    ``namespace`` as in ROS 2. ``ros_distro`` (default ``$ROS_DISTRO``, else Jazzy) picks the
    layout of the node's entry in the ROS graph, which differs from Humble to Jazzy.
    ``use_sim_time`` takes the node clock from ``/clock`` (0 until
    the first message), as a ROS 2 node with that parameter does. ``received`` counts the
    messages handed to each subscription; :meth:`stop_inputs` ends the deliveries. Call
    :meth:`close` to leave the graph.
    """

    def __init__(
        self,
        parameters: Mapping[str, Any],
        *,
        node_name: str = "mlesam",
        namespace: str = "/",
        domain_id: int | None = None,
        config: str | None = None,
        logger: Any = LOG,
        use_sim_time: bool = False,
        ros_distro: str | None = None,
    ) -> None:
        self.node_name, self.namespace = node_name, namespace
        self.fully_qualified_name = fully_qualified_name(node_name, namespace)
        self.logger = NamedLogger(logger, logger_name(self.fully_qualified_name))
        self._parameters = dict(parameters)
        self.participant = open_participant(domain_id, config)
        self.graph = GraphAnnouncer(self.participant, node_name, namespace, ros_distro)
        self.readers: list[RosReader] = []
        self.publishers: dict[str, RosWriter] = {}
        self.tf = TfBuffer()
        self._tf_lock = threading.Condition()
        self._timers = _Timers()
        self._closed = False
        self.received: collections.Counter = collections.Counter()
        self._input_readers: dict[str, tuple[RosReader, str, int]] = {}
        self._incompatible_watch = False
        self._inputs_open = True
        self._in_flight = 0
        self._inputs = threading.Condition()
        self.sim_clock = SimClock() if use_sim_time else None
        self.clock_advice = SIM_CLOCK_ADVICE if use_sim_time else WALL_CLOCK_ADVICE
        if self.sim_clock is not None:
            self._reader(CLOCK_TOPIC, CLOCK, self.sim_clock.on_clock, reliable=False, depth=1)
        # Where refused transforms are reported (the core's diagnostics once it runs).
        self.on_issue: Callable[[str, str, str], None] | None = None
        for topic in TF_TOPICS:
            static = topic == TF_STATIC_TOPIC
            self._reader(
                topic,
                m.TF_MESSAGE,
                lambda msg, topic=topic: self._on_tf(topic, msg),
                reliable=True,
                latched=static,
                depth=1 if static else TF_DEPTH,
            )
        self.graph.announce()

    # NodeIO -----------------------------------------------------------------------------------
    def parameters(self) -> Mapping[str, Any]:
        """Return the parameters (flat dotted names from the YAML and the command line)."""
        return self._parameters

    def now_ns(self) -> int:
        """ROS time: ``/clock`` with ``use_sim_time``, else the wall clock."""
        return time.time_ns() if self.sim_clock is None else self.sim_clock.now_ns()

    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], reliability: str
    ) -> None:
        """Subscribe with the rclpy node's QoS: depth 5, best effort or reliable, volatile."""
        if reliability not in RELIABILITIES:
            raise ValueError(
                f"reliability of {topic}: choose from {', '.join(RELIABILITIES)}, "
                f"got {quote(reliability)}"
            )
        # Raw: the core gets the CDR bytes, as from the rclpy node's raw subscriptions and a
        # bag, and decodes them with the one codec (mlesam_ros.pipeline.messages.decode).
        resolved = m.resolve_topic(topic, self.node_name, self.namespace)

        def deliver(sample: Any) -> None:
            with self._inputs:
                if not self._inputs_open:
                    return  # stopping: not received, so not owed a label or a count
                self.received[resolved] += 1
                self._in_flight += 1
            try:
                callback(sample.cdr)
            finally:
                with self._inputs:
                    self._in_flight -= 1
                    self._inputs.notify_all()

        reader = self._reader(topic, msgtype, deliver, reliable=reliability == "reliable",
                              raw=True)  # fmt: skip
        self._input_readers[resolved] = (reader, msgtype, 0)
        if not self._incompatible_watch:
            self._incompatible_watch = True
            self._timers.add(INCOMPATIBLE_CHECK_NS, self.check_incompatible_publishers)
        self.graph.announce()

    def check_incompatible_publishers(self) -> list[str]:
        """Report publishers of an input that DDS refused to connect; return the reports.

        A publisher of the topic with another layout under the same type name (or a QoS the
        input cannot accept) never delivers a sample, so nothing reaches the core to count:
        DDS's requested-incompatible status is the only trace, reported here (to ``on_issue``,
        the core's ``mlesam: input`` diagnostics) each time it grows.
        """
        reports = []
        for topic, (reader, msgtype, seen) in list(self._input_readers.items()):
            status = reader.reader.get_requested_incompatible_qos_status()
            total = int(status.total_count)
            if total <= seen:
                continue
            self._input_readers[topic] = (reader, msgtype, total)
            policy = _POLICIES.get(int(status.last_policy_id), f"policy {status.last_policy_id}")
            text = (f"{total - seen} publisher(s) refused by DDS, incompatible {policy}; they "
                    f"deliver nothing: publish {msgtype} as ROS 2 defines it, with a matching "
                    "QoS")  # fmt: skip
            reports.append(text)
            if self.on_issue is not None:
                self.on_issue("input", topic, text)
            else:
                self.logger.warning(f"mlesam: input ({topic}): {text}")
        return reports

    def stop_inputs(self, timeout_s: float = 5.0) -> None:
        """Deliver no more subscription messages; wait for the callbacks already running."""
        deadline = time.monotonic() + timeout_s
        with self._inputs:
            self._inputs_open = False
            while self._in_flight and (left := deadline - time.monotonic()) > 0:
                self._inputs.wait(left)

    def create_publisher(
        self,
        topic: str,
        msgtype: str,
        latched: bool = False,
        reliability: str = "reliable",
        depth: int = 1,
    ) -> RosWriter:
        """Create an output with the rclpy node's QoS (``qos.output``, ``qos.output_depth``).

        ``latched`` makes it transient local, as the rclpy node does for LabelInfo.
        """
        if reliability not in RELIABILITIES:
            raise ValueError(
                f"reliability of {topic}: choose from {', '.join(RELIABILITIES)}, "
                f"got {quote(reliability)}"
            )
        resolved = m.resolve_topic(topic, self.node_name, self.namespace)
        writer = RosWriter(
            self.participant, resolved, msgtype, latched=latched,
            reliable=reliability == "reliable", depth=int(depth),
        )  # fmt: skip
        self.publishers[resolved] = writer
        self.graph.writers.append(writer.writer)
        self.graph.announce()
        return writer

    def create_timer(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``period_ns`` on the timer thread."""
        self._timers.add(int(period_ns), callback)

    def lookup_transform(
        self, target_frame: str, source_frame: str, stamp_ns: int, timeout_ns: int
    ) -> np.ndarray:
        """Look up in the tf buffer, waiting up to ``timeout_ns`` for it to become possible."""
        deadline = time.monotonic_ns() + max(0, int(timeout_ns))
        with self._tf_lock:
            while True:
                try:
                    return self.tf.lookup(target_frame, source_frame, stamp_ns)
                except LookupError:
                    left = deadline - time.monotonic_ns()
                    if left <= 0:
                        raise
                    self._tf_lock.wait(left / 1e9)  # woken by every new tf message

    # helpers ----------------------------------------------------------------------------------
    def _reader(
        self, topic: str, msgtype: str, callback, *, reliable, latched=False, depth=5, raw=False
    ):
        resolved = m.resolve_topic(topic, self.node_name, self.namespace)
        # Own threads, not DDS listeners: see RosReader (receiving never waits for Python).
        reader = RosReader(
            self.participant, resolved, msgtype, callback,
            reliable=reliable, latched=latched, depth=depth, raw=raw, own_thread=True,
        )  # fmt: skip
        self.readers.append(reader)
        self.graph.readers.append(reader.reader)
        return reader

    def _on_tf(self, topic: str, message: Any) -> None:
        with self._tf_lock:
            problems = self.tf.feed(topic, message)
            self._tf_lock.notify_all()
        for problem in problems or ():  # refused transforms (NaN, zero quaternion, loops)
            if self.on_issue is not None:
                self.on_issue("tf", topic, problem)
            else:
                self.logger.warning(f"tf ({topic}): {problem}")

    def close(self) -> None:
        """Stop the timers and delete every DDS entity (peers see the node leave)."""
        if self._closed:
            return
        self._closed = True
        self._timers.stop()
        for reader in self.readers:
            reader.close()
        delete_participant(self.participant)
        self.readers.clear()
        self.publishers.clear()


@dataclass
class NodeReport:
    """Where every RGB message the node received went: labelled, or dropped by reason."""

    rgb_received: int = 0
    published: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    stats: Any = None

    @property
    def unaccounted(self) -> int:
        """RGB messages neither labelled nor counted as dropped (0 unless something is lost)."""
        return self.rgb_received - self.published - sum(self.dropped.values())

    def text(self) -> str:
        """One line for the terminal."""
        line = (
            f"{self.rgb_received} RGB messages received: {self.published} frames published, "
            f"{sum(self.dropped.values())} dropped"
        )
        if self.dropped:
            line += " (" + ", ".join(f"{k}: {n}" for k, n in self.dropped.items()) + ")"
        if self.unaccounted:
            line += f", {self.unaccounted} unaccounted for"
        return line + f", {self.errors} errors"


def run_node(
    parameters: Mapping[str, Any],
    *,
    stop: threading.Event,
    node_name: str = "mlesam",
    namespace: str = "/",
    domain_id: int | None = None,
    config: str | None = None,
    logger: Any = LOG,
    segmenter: Any = None,
    use_sim_time: bool = False,
    ros_distro: str | None = None,
) -> NodeReport:
    """Run the segmentation node on DDS until ``stop`` is set; return its :class:`NodeReport`."""
    transport = DdsTransport(
        parameters,
        node_name=node_name,
        namespace=namespace,
        domain_id=domain_id,
        config=config,
        logger=logger,
        use_sim_time=use_sim_time,
        ros_distro=ros_distro,
    )
    core = SegmentationCore(transport, threaded=True, segmenter=segmenter)
    transport.on_issue = core.report_issue
    try:
        core.configure()
        clock = "/clock (use_sim_time)" if use_sim_time else "the wall clock"
        transport.logger.info(
            f"node {transport.fully_qualified_name} on DDS domain "
            f"{transport.participant.domain_id} ready, on {clock}"
        )
        stop.wait()
    finally:
        # Inputs first: a message that arrives while the core shuts down is not received,
        # so every received RGB message ends labelled or in dropped_frames().
        transport.stop_inputs()
        core.cleanup()
        transport.close()
    stats = core.stats
    config = core.config
    # Every camera's subscribed RGB topic (its transport's): topics.rgb, or each camera's of a
    # rig (cameras.names).
    rgb_topics = set() if config is None else {
        input_topic(config.camera_view(camera), "rgb") for camera in config.cameras
    } or {input_topic(config, "rgb")}  # fmt: skip
    resolved = {m.resolve_topic(topic, node_name, namespace) for topic in rgb_topics if topic}
    return NodeReport(
        rgb_received=sum(transport.received.get(topic, 0) for topic in resolved),
        published=stats.published,
        dropped=core.dropped_frames(),
        errors=stats.inference_errors + stats.callback_errors,
        stats=stats,
    )


__all__ = ["DdsTransport", "NodeReport", "run_node"]
