"""The transport interface the node core talks to: the only thing a ROS shell must provide.

The core (:class:`mlesam_ros.pipeline.core.SegmentationCore`) never imports rclpy. It sees a
:class:`NodeIO` object with six capabilities, implemented three times: by the rclpy lifecycle
node in ``mlesam_ros/node/`` (live under ROS 2), by :class:`mlesam_ros.dds.transport.
DdsTransport` (live on DDS without ROS, wire-compatible with ROS 2) and by
:class:`mlesam_ros.replay.transport.BagTransport` (bag replay, bag clock, publications
written to an output bag). Anything that satisfies these protocols works.

Contract (what a shell implements)
----------------------------------
``logger``
    An object with ``info(str)``, ``warning(str)`` and ``error(str)`` (a ``logging.Logger`` or
    rclpy's node logger).
``parameters() -> Mapping[str, Any]``
    Flat, dotted parameter names (``"topics.rgb"``, ``"sync.timeout_s"``, ...) to values; only
    names from :data:`mlesam_ros.pipeline.config.DEFAULT_PARAMETERS` are read and missing names
    take their defaults. The rclpy shell declares every name of ``DEFAULT_PARAMETERS`` (the
    YAML in ``config/mlesam.yaml`` has the same names) and returns their current values.
``now_ns() -> int``
    The node clock in integer nanoseconds (ROS time, so ``use_sim_time`` works; the bag's
    log time in replay). Sync timeouts and the latency's waiting part use it.
``subscribe(topic, msgtype, callback, reliability) -> None``
    ``msgtype`` is a ROS 2 type name such as ``"sensor_msgs/msg/Image"``; ``reliability`` is
    ``"best_effort"`` or ``"reliable"`` (history depth is the shell's choice; 5 is fine).
    ``callback(data)`` receives the message **as CDR bytes** (``bytes`` or ``memoryview``:
    rclpy's ``create_subscription(..., raw=True)``, or the bytes of a bag record); the core
    decodes them with :func:`mlesam_ros.pipeline.messages.decode`, the one decoder of every
    transport. A transport that already holds rosbags message objects may pass those instead
    (decode passes them through); rclpy message objects are not supported. Callbacks never
    raise.
``create_publisher(topic, msgtype, latched=False, reliability="reliable", depth=1)``
    ``topic`` may be node-relative (``"~/labels"``): the shell resolves it against the node's
    name and namespace (rcl does it live; replay with
    :func:`~mlesam_ros.pipeline.messages.resolve_topic`). ``latched`` means reliable,
    transient-local durability (``~/label_info``); otherwise ``reliability`` and ``depth``
    are the output QoS (parameters ``qos.output`` and ``qos.output_depth``).
    ``Publisher.publish(data)`` receives **CDR bytes** made by
    :func:`mlesam_ros.pipeline.messages.encode` (rosbags ``ROS2_HUMBLE`` typestore plus
    ``vision_msgs/msg/LabelInfo``); the shell sends or writes them unchanged (rclpy:
    ``Publisher.publish(bytes)``). ``Publisher.has_subscribers()`` lets the core skip work for
    optional outputs nobody reads.
``create_timer(period_ns, callback) -> None``
    Call ``callback()`` every ``period_ns`` of node time (replay fires timers in bag time).
``lookup_transform(target_frame, source_frame, stamp_ns, timeout_ns) -> np.ndarray``
    ``T_target_from_source`` as a 4x4 float64 matrix (tf2's ``lookup_transform(target,
    source, time)``) from ``/tf`` and ``/tf_static``; raise ``LookupError`` with tf2's reason
    when it is not available. Replay implements it with :class:`~mlesam_ros.pipeline.tf_buffer.
    TfBuffer`.

``fully_qualified_name`` (optional attribute)
    The node's fully qualified name (``/front/mlesam``); it names the ``/diagnostics``
    statuses and is their ``hardware_id`` (default ``/mlesam``). The logger is expected to
    name the node itself (rclpy's does); the core's log lines do not repeat it.

``clock_advice`` (optional attribute)
    One phrase telling the user how to put this transport's clock on the cameras' clock; the
    core shows it when a stamp is far from ``now_ns()`` (default: set ``use_sim_time``).

Lifecycle: the core follows ROS 2's managed-node states. ``configure(activate=False)`` reads
and validates the parameters and loads the model; ``activate()`` creates the subscriptions,
publishers and the timer through this interface; ``deactivate()`` stops using them (the shell
destroys what it created); ``cleanup()`` frees the model. ``configure()`` alone does both
steps (replay, bench). ``apply_parameters(changes)`` validates a run-time change and applies
it or raises ``ValueError`` with the reason (the rclpy shell calls it from its on-set
parameter callback).

Threading: the core is safe to call from several callback threads and runs inference on its
own worker thread when constructed with ``threaded=True`` (live); replay uses
``threaded=False`` and the same latest-frame-wins slot, drained synchronously.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

RELIABILITIES = ("best_effort", "reliable")


@runtime_checkable
class Logger(Protocol):
    """The three log levels the core uses."""

    def info(self, message: str) -> Any:
        """Log progress (start-up, model loaded)."""

    def warning(self, message: str) -> Any:
        """Log bad input that the core works around (a modality left out of a frame)."""

    def error(self, message: str) -> Any:
        """Log a failure that costs frames (inference error, no output size)."""


@runtime_checkable
class Publisher(Protocol):
    """One output topic."""

    def publish(self, data: bytes) -> None:
        """Send one message, serialised to CDR by the core (the shell sends it unchanged)."""

    def has_subscribers(self) -> bool:
        """Whether anybody listens; the core skips optional outputs when nobody does."""


@runtime_checkable
class NodeIO(Protocol):
    """Everything the core needs from its transport; see the module docstring."""

    logger: Logger

    def parameters(self) -> Mapping[str, Any]:
        """Flat dotted parameter names to values (overrides of the defaults)."""

    def now_ns(self) -> int:
        """Node clock (ROS time or bag time) in nanoseconds."""

    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], reliability: str
    ) -> None:
        """Subscribe ``callback`` to ``topic`` of type ``msgtype``."""

    def create_publisher(
        self,
        topic: str,
        msgtype: str,
        latched: bool = False,
        reliability: str = "reliable",
        depth: int = 1,
    ) -> Publisher:
        """Create an output (transient local and reliable when ``latched``)."""

    def create_timer(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``period_ns`` of node time."""

    def lookup_transform(
        self, target_frame: str, source_frame: str, stamp_ns: int, timeout_ns: int
    ) -> np.ndarray:
        """Return ``T_target_from_source`` (4x4) or raise ``LookupError``."""


@runtime_checkable
class Segmenter(Protocol):
    """The model as the core uses it (``mlesam_ros.engine.Segmenter`` over every backend).

    ``segment(images, present)`` takes ``(1, M, 3, H, W)`` uint8 images at ``input_size`` and
    ``(1, M)`` presence and returns an object with ``labels`` ``(H, W)`` and ``confidence``
    (``(H, W)`` float32 or ``None``); ``backend``, ``device`` and ``artefact`` are reported in
    the log and ``/diagnostics``.
    """

    modalities: Sequence[str]
    input_size: tuple[int, int]
    class_names: Sequence[str]
    backend: str
    device: str
    artefact: Any

    def segment(self, images: Any, present: Any) -> Any:
        """Labels and confidence of one batch."""

    def close(self) -> None:
        """Free the runtime (engine, session, GPU memory)."""
