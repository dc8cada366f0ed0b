"""``segment_node``: the rclpy shell around the transport-agnostic node core, as a lifecycle node.

Transport only. Everything the node does (sync, projection, inference, message building,
diagnostics, parameter validation) is in :mod:`mlesam_ros.pipeline` and runs identically in
bag replay; this module implements the core's :class:`~mlesam_ros.pipeline.interface.NodeIO`
with rclpy: raw subscriptions that hand the core CDR bytes, publishers that send the CDR bytes
the core serialised (``Publisher.publish(bytes)``), QoS, tf2, a timer, parameters with
descriptors and an on-set callback, lifecycle transitions and logging.

Lifecycle (``ros2 lifecycle set /mlesam <transition>``): ``configure`` reads the parameters and
loads the model, ``activate`` subscribes and advertises, ``deactivate`` destroys them,
``cleanup`` frees the model, ``shutdown`` works from any state. With the ``autostart``
parameter (default true) the node configures and activates itself; a configuration error then
ends the process with one FATAL line and exit code 1.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
import rclpy.logging
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterException,
)
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
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
from mlesam_ros.node.descriptors import descriptor_fields
from mlesam_ros.node.log import SeverityLogger
from mlesam_ros.pipeline.config import (
    DEFAULT_PARAMETERS,
    camera_defaults,
    parameter_names,
    parameter_spec,
)
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.messages import NODE_NAME
from mlesam_ros.pipeline.parameters import parse_camera_names
from mlesam_ros.pipeline.params_file import report_unknown_parameters

_INPUT_DEPTH = 5
_RELIABILITY = {
    "reliable": ReliabilityPolicy.RELIABLE,
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
}


class _Publisher:
    """An rclpy publisher of the CDR bytes the core serialised."""

    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher

    def publish(self, data: bytes) -> None:
        """Send ``data`` unchanged (rclpy publishes ``bytes`` as a serialized message)."""
        self._publisher.publish(data)

    def has_subscribers(self) -> bool:
        """Whether anyone is subscribed (the core skips optional outputs otherwise)."""
        return self._publisher.get_subscription_count() > 0


class RclpyIO:
    """The core's ``NodeIO`` on top of an rclpy node; tracks what it created for deactivate.

    Composition, not inheritance: rclpy's own ``create_publisher``/``create_timer`` keep their
    signatures for rclpy's internals (parameter events, tf2).
    """

    def __init__(self, node: Any) -> None:
        self._node = node
        self.logger = SeverityLogger(node.get_logger())  # rclpy prints the node name
        self.fully_qualified_name = node.get_fully_qualified_name()
        # Reentrant: a tf lookup waiting for its timeout must not block the other sensors.
        self._group = ReentrantCallbackGroup()
        self._tf_buffer = Buffer()
        self._tf_listener = TransformListener(self._tf_buffer, node, spin_thread=False)
        self._entities: list[tuple[str, Any]] = []
        self.names: list[str] = list(DEFAULT_PARAMETERS)  # and each camera's, once declared

    def parameters(self) -> dict[str, Any]:
        """Return the current value of every declared mlesam parameter."""
        return {name: self._node.get_parameter(name).value for name in self.names}

    def now_ns(self) -> int:
        """Return ROS time (``use_sim_time`` aware) in nanoseconds."""
        return self._node.get_clock().now().nanoseconds

    def subscribe(
        self, topic: str, msgtype: str, callback: Callable[[Any], None], reliability: str
    ) -> None:
        """Subscribe raw (the callback gets CDR bytes): sensor-data QoS or reliable, depth 5."""
        if reliability == "reliable":
            qos = QoSProfile(depth=_INPUT_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        else:
            qos = qos_profile_sensor_data
        subscription = self._node.create_subscription(
            get_message(msgtype), topic, callback, qos, callback_group=self._group, raw=True
        )
        self._entities.append(("subscription", subscription))

    def create_publisher(
        self,
        topic: str,
        msgtype: str,
        latched: bool = False,
        reliability: str = "reliable",
        depth: int = 1,
    ) -> _Publisher:
        """Advertise ``topic`` (``~/x`` is node-relative); latched = reliable transient local."""
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1 if latched else int(depth),
            reliability=ReliabilityPolicy.RELIABLE if latched else _RELIABILITY[reliability],
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )
        publisher = self._node.create_publisher(get_message(msgtype), topic, qos)
        self._entities.append(("publisher", publisher))
        return _Publisher(publisher)

    def create_timer(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``period_ns`` of node time."""
        timer = self._node.create_timer(period_ns / 1e9, callback, callback_group=self._group)
        self._entities.append(("timer", timer))

    def release(self) -> None:
        """Destroy every subscription, publisher and timer created for the core (deactivate)."""
        entities, self._entities = self._entities, []
        for kind, entity in reversed(entities):
            getattr(self._node, f"destroy_{kind}")(entity)

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


def _descriptor(name: str) -> ParameterDescriptor:
    fields = descriptor_fields(name)
    descriptor = ParameterDescriptor(
        name=name,
        type=getattr(ParameterType, fields["type"]),
        description=fields["description"],
        additional_constraints=fields["additional_constraints"],
        read_only=fields["read_only"],
        dynamic_typing=fields["dynamic_typing"],
    )
    if "floating_point_range" in fields:
        low, high = fields["floating_point_range"]
        descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
    if "integer_range" in fields:
        low, high = fields["integer_range"]
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    return descriptor


class ConfigurationError(RuntimeError):
    """A parameter or model problem found while declaring parameters or configuring."""


class SegmentNode(LifecycleNode):
    """The ``mlesam`` lifecycle node: parameters, transitions, and the core on rclpy."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.failure = ""
        for name, default in DEFAULT_PARAMETERS.items():
            self._declare(name, default)
        self.declare_parameter(
            "autostart",
            True,
            ParameterDescriptor(
                description="configure and activate at start-up (false: wait for "
                "`ros2 lifecycle set` or a lifecycle manager)",
                read_only=True,
            ),
        )
        self.io = RclpyIO(self)
        self._declare_cameras()
        self.core = SegmentationCore(self.io, threaded=True)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # rcl hands this node the overrides of its sections (params files, -p); names it does
        # not declare would be ignored without a word (a misspelt sync.timout_s).
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        cameras = parse_camera_names(self.get_parameter("cameras.names").value)
        report_unknown_parameters(overrides, self.io.logger.warning, "params file / -p",
                                  cameras=cameras)  # fmt: skip

    def _declare(self, name: str, default: Any) -> None:
        try:
            self.declare_parameter(name, default, _descriptor(name))
        except (InvalidParameterTypeException, InvalidParameterValueException) as error:
            reason = error.args[0] if error.args else error  # args: (text, name)
            raise ConfigurationError(
                f"parameter {name}: {reason}; allowed: {parameter_spec(name).allowed()}"
            ) from None

    def _declare_cameras(self) -> None:
        """Declare each camera's parameters (``cameras.<name>.*``) of ``cameras.names``.

        Their names depend on the camera list, so they are declared once it is read: at
        start-up and again at configure (the list may have changed while unconfigured). The
        params file's values for them apply as for any parameter.
        """
        try:
            names = parameter_names({"cameras.names": self.get_parameter("cameras.names").value})
        except ValueError as error:
            raise ConfigurationError(str(error)) from None
        for name in names:
            if not self.has_parameter(name):
                camera = name.split(".")[1]
                self._declare(name, camera_defaults(camera)[name])
        self.io.names = list(names)

    # -- parameters ---------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        """Apply dynamic parameters now; refuse bad values and static ones while configured."""
        changes = {p.name: p.value for p in parameters if p.name in self.io.names}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            self.core.apply_parameters(changes)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read parameters and load the model; stay unconfigured with the reason on failure."""
        try:
            self._declare_cameras()
            self.core.configure(activate=False)
        except Exception as error:
            self.failure = _reason(error)
            if not self.get_parameter("autostart").value:
                self.io.logger.error(f"configure failed: {self.failure}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe, advertise, publish LabelInfo, start the inference worker."""
        try:
            self.core.activate()
        except Exception as error:
            self.failure = _reason(error)
            self.io.logger.error(f"activate failed: {self.failure}")
            self.io.release()
            return TransitionCallbackReturn.FAILURE
        self.io.logger.info("active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and destroy subscriptions, publishers and the timer."""
        self.core.deactivate()
        self.io.release()
        self.io.logger.info("inactive (no subscriptions, no outputs)")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model; parameters of every kind can be set again."""
        self.core.cleanup()
        self.io.release()
        self.io.logger.info("unconfigured (model freed)")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything from any state."""
        self.core.cleanup()
        self.io.release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after a failed transition."""
        self.core.cleanup()
        self.io.release()
        return TransitionCallbackReturn.SUCCESS

    def autostart(self) -> bool:
        """Configure and activate; return False (``self.failure`` says why) on failure."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop the inference worker and free the engine before rclpy tears down."""
        self.core.cleanup()
        self.io.release()
        super().destroy_node()


def _reason(error: BaseException) -> str:
    """One line: the message of a validation error, the type too for anything else."""
    if isinstance(error, (ValueError, FileNotFoundError, ConfigurationError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run mlesam_ros segment_node``; exit code 1 on a bad configuration."""
    rclpy.init(args=args)
    node = None
    failed = False
    try:
        node = SegmentNode()
        if node.get_parameter("autostart").value and not node.autostart():
            raise ConfigurationError(node.failure or "configure/activate failed")
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigurationError, ParameterException) as error:
        logger = node.get_logger() if node else rclpy.logging.get_logger(NODE_NAME)
        SeverityLogger(logger).fatal(f"{error}")
        failed = True
    finally:
        # Ctrl-C reaches the node twice under ros2 launch (terminal, then launch): the second
        # must not interrupt freeing the engine.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if failed:
        sys.exit(1)
