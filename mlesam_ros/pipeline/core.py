"""The node core: parameters, subscriptions, sync, inference worker, publishing, diagnostics.

Transport-agnostic: it talks only to a :class:`~mlesam_ros.pipeline.interface.NodeIO` (see
that module for the contract), so the rclpy node (``mlesam_ros/node/``) and bag replay
(:mod:`mlesam_ros.replay`) run exactly this code. Lifecycle::

    core = SegmentationCore(io, threaded=True)   # live: inference on a worker thread
    core.configure()   # read parameters, load the engine, subscribe, advertise, LabelInfo
    ...                # callbacks and timers drive it
    core.cleanup()     # stop the worker, free the engine

Data flow (the callbacks are :class:`~mlesam_ros.pipeline.ingest.FrameIngest`, the worker
:class:`~mlesam_ros.pipeline.worker.FrameWorker`): each input callback offers its message to a
:class:`~mlesam_ros.sync.TimeoutSynchronizer` keyed on the RGB stamp (optional members, a
timeout, so a dead sensor never stops the output); every synced frame goes into a one-slot
latest-frame-wins mailbox; the worker runs :class:`~mlesam_ros.pipeline.frame.FramePath` on
it and publishes ``/mlesam/labels`` (always), ``/mlesam/labels_color``, ``/mlesam/confidence``
and ``/mlesam/labeled_points`` (each when enabled and subscribed), ``/mlesam/label_info``
once (latched) and ``/diagnostics`` on a timer. Callbacks never raise: bad input is logged
once per kind, counted and reported in the diagnostics, and the frame goes on without it.

Frame accounting: every RGB message either leaves as a labelled frame or is counted once in
:meth:`SegmentationCore.dropped_frames` under a reason (the synchroniser's reasons, see
:mod:`mlesam_ros.sync.synchronizer`, plus ``zero_stamp``, ``invalid_stamp`` (the stamp rule
of :mod:`mlesam_ros.msgs.stamps`), ``bad_header``, ``undecodable``, ``rgb_unusable``,
``inference_error``, ``callback_error``, ``worker_busy`` and ``stopped``: frames still waiting
in the synchroniser or the worker's slot when the node was deactivated).
Counts survive a new synchroniser (deactivation, a run-time change of ``sync.*``).
``/diagnostics`` carries the totals and goes WARN whenever frames were dropped since the
previous report.
"""

from __future__ import annotations

import collections
import copy
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.engine import default_checkpoint_candidates, resolve_default_checkpoint
from mlesam_ros.engine.segmenter import Segmenter as EngineSegmenter
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import (
    SENSOR_INPUTS,
    NodeConfig,
    check_update,
    validate_parameters,
)
from mlesam_ros.pipeline.diagnostics import (
    FrameRecord,
    OnceLog,
    PipelineStats,
    diagnostic_statuses,
)
from mlesam_ros.pipeline.frame import FramePath, FrameResult, Issue
from mlesam_ros.pipeline.health import SensorHealth
from mlesam_ros.pipeline.image_transport import input_msgtype, input_topic
from mlesam_ros.pipeline.ingest import FrameIngest
from mlesam_ros.pipeline.interface import NodeIO, Segmenter
from mlesam_ros.pipeline.naming import node_of
from mlesam_ros.pipeline.rig import CameraRig
from mlesam_ros.pipeline.worker import FrameWorker, LatestSlot
from mlesam_ros.sync import MemberConfig, SyncConfig, TimeoutSynchronizer
from mlesam_ros.text import quote, shown

# Outputs switched by output.<name> at run time: relative topic and message type.
_OPTIONAL_OUTPUTS = {
    "labels_color": (m.LABELS_COLOR_OUT, m.IMAGE),
    "confidence": (m.CONFIDENCE_OUT, m.IMAGE),
    "labeled_points": (m.LABELED_POINTS_OUT, m.POINTCLOUD2),
}


def default_model_path() -> Path:
    """Return the shipped demo model: ONNX when present (no torch needed), else the checkpoint."""
    for checkpoint in default_checkpoint_candidates():
        onnx = checkpoint.with_suffix(".onnx")
        if onnx.is_file():
            return onnx
    return resolve_default_checkpoint()


def open_segmenter(config: NodeConfig) -> Segmenter:
    """Load ``model.path`` (or the demo model) with ``model.backend`` (its runtime loads now)."""
    path = Path(config.model_path) if config.model_path else default_model_path()
    try:
        return EngineSegmenter(
            path,
            config.backend,
            precision=config.precision,
            threads=config.threads,
            rebuild_engine=config.rebuild_engine,
            max_batch=max(1, len(config.cameras)),  # a dynamic batch: one frame per camera
        )
    except (ValueError, FileNotFoundError) as error:
        # Name the parameters: "backend: torch cannot run an onnx file" alone does not say
        # which setting to change. The type is kept so callers can still tell a missing file.
        raise type(error)(
            f"parameters model.path={quote(str(path), 200)}, model.backend={config.backend!r}: "
            f"{error}"
        ) from error


class SegmentationCore(FrameIngest, FrameWorker):
    """The segmentation node without ROS; see the module docstring.

    ``segmenter`` injects an already-loaded model (bench, tests); otherwise ``configure``
    opens ``model.path``. ``threaded=False`` processes each synced frame inside the callback
    that completed it (deterministic replay) through the same latest-frame slot. With
    ``cameras.names`` set, ``rig`` (:class:`~mlesam_ros.pipeline.rig.CameraRig`) runs the
    cameras: their inputs, batches and outputs.
    """

    def __init__(
        self, io: NodeIO, *, threaded: bool = True, segmenter: Segmenter | None = None
    ) -> None:
        self.io = io
        self.threaded = threaded
        self._injected = segmenter
        self.segmenter: Segmenter | None = None
        self.config: NodeConfig | None = None
        self.path: FramePath | None = None
        self.health: SensorHealth | None = None
        self.sync: TimeoutSynchronizer | None = None
        self.rig: CameraRig | None = None
        self.stats = PipelineStats()
        self.listeners: list[Callable[[FrameResult, FrameRecord], None]] = []
        self._lock = threading.RLock()
        self._infos: dict[str, Any] = {}
        self._rgb_arrivals: dict[int, int] = {}
        self._publishers: dict[str, Any] = {}
        self._slot = LatestSlot()
        self._worker: threading.Thread | None = None
        self._running = False
        self._active = False
        self._configured = False
        self._values: dict[str, Any] = {}
        self._next_diagnostics_ns = 0
        self._once = OnceLog(lambda: self.io.logger)
        self._dropped_reported = 0

    # -- lifecycle ----------------------------------------------------------------------------
    # configure → activate ⇄ deactivate → cleanup, as a ROS 2 lifecycle node (Nav2,
    # yolo_ros) is driven. configure() activates too unless told not to, so replay, bench and
    # tests keep one call; the lifecycle shell calls configure(activate=False), activate().

    @property
    def active(self) -> bool:
        """Whether inputs are processed and outputs published (lifecycle ``active``)."""
        return self._active

    def configure(self, activate: bool = True) -> None:
        """Read and validate the parameters, load the model; then :meth:`activate` (default).

        Raises ``ValueError`` naming the parameter (and its allowed values) on bad input.
        """
        self._values = validate_parameters(self.io.parameters())
        config = NodeConfig.from_parameters(self._values)
        self.config = config
        self.segmenter = self._injected or open_segmenter(config)
        try:
            self.path = FramePath(self.segmenter, config)
            self.rig = CameraRig(self, config) if config.cameras else None
        except Exception:
            self._free_model()
            raise
        self.sync = self._new_synchronizer(config)
        self.health = SensorHealth(self.path.modalities, config.health_config())
        self.stats = PipelineStats()
        self._dropped_reported = 0
        self._configured = True
        m.ensure_vision_msgs()
        inputs = ", ".join(f"{key}={input_topic(config, key)}" for key in config.enabled_inputs)
        if self.rig is not None:
            inputs = "; ".join(
                f"camera {lane.name}: " + ", ".join(f"{key}={input_topic(lane.config, key)}"
                                                    for key in lane.inputs)
                for lane in self.rig.lanes) + f"; points={config.topics['points'] or 'off'}"
        self.io.logger.info(
            f"{self.segmenter.backend} on {self.segmenter.device}, model "
            f"{self.segmenter.artefact}, modalities "
            f"{','.join(self.path.used)} at {self.segmenter.input_size}; inputs " + inputs
        )
        if activate:
            self.activate()

    @staticmethod
    def _new_synchronizer(config: NodeConfig) -> TimeoutSynchronizer:
        members = tuple(
            MemberConfig(key, config.slop_ns, config.offsets_ns[key])
            for key in config.enabled_inputs
            if key != "rgb"
        )
        return TimeoutSynchronizer(
            SyncConfig(members, config.timeout_ns, anchor="rgb", strict=config.strict)
        )

    def activate(self) -> None:
        """Create publishers, subscriptions and the timer; publish LabelInfo; start the worker.

        The transport owns what it created: on deactivate the core stops using it and the
        shell destroys it (the rclpy node destroys its subscriptions/publishers/timers).
        """
        if not self._configured:
            raise RuntimeError("mlesam: activate before configure")
        if self.rig is not None:
            # Active first, as below: a message may arrive the moment a subscription exists.
            self._active = True
            try:
                self.rig.activate()
            except BaseException:
                self.deactivate()  # no half-active core: the shell releases what was created
                raise
            return
        config, io = self.config, self.io
        self._publishers = {
            "labels": self._output(m.LABELS_OUT, m.IMAGE),
            "label_info": io.create_publisher(m.LABEL_INFO_OUT, m.LABEL_INFO, latched=True),
            "diagnostics": io.create_publisher(m.DIAGNOSTICS_TOPIC, m.DIAGNOSTIC_ARRAY),
        }
        for output in _OPTIONAL_OUTPUTS:
            if getattr(config, output):
                self._ensure_output(output)
        self._next_diagnostics_ns = io.now_ns() + config.diagnostics_period_ns
        self._publishers["label_info"].publish(
            m.encode(m.label_info(self.path.classes.names, io.now_ns()), m.LABEL_INFO)
        )
        if self.threaded:
            self._slot.reopen()
            self._running = True
            self._worker = threading.Thread(
                target=self._work, name="mlesam-inference", daemon=True
            )
            self._worker.start()
        # Active before the first subscription: a message may arrive the moment a subscription
        # exists, and a callback of an inactive core ignores it (uncounted).
        self._active = True
        try:
            for key in config.enabled_inputs:
                # A failing RGB callback loses that frame: it is counted as a drop.
                drop_reason = "callback_error" if key == "rgb" else None
                io.subscribe(
                    input_topic(config, key),
                    input_msgtype(config, key),
                    self._guard(self.on_sensor, key, drop_reason=drop_reason),
                    config.reliability[key],
                )
                info_topic = config.info_topics.get(key)
                if info_topic:
                    io.subscribe(
                        info_topic,
                        m.CAMERA_INFO,
                        self._guard(self.on_camera_info, key),
                        config.reliability["camera_info"],
                    )
            io.create_timer(config.poll_period_ns, self._guard(self.poll))
        except BaseException:
            self.deactivate()  # no half-active core: the shell releases what was created
            raise

    def _output(self, topic: str, msgtype: str) -> Any:
        """Create a frame output with the output QoS (``qos.output``, ``qos.output_depth``)."""
        return self.io.create_publisher(
            topic,
            msgtype,
            latched=False,
            reliability=self.config.output_reliability,
            depth=self.config.output_depth,
        )

    def _ensure_output(self, output: str) -> None:
        if output not in self._publishers:
            topic, msgtype = _OPTIONAL_OUTPUTS[output]
            self._publishers[output] = self._output(topic, msgtype)

    def deactivate(self) -> None:
        """Stop processing: inputs are ignored, pending frames dropped, the worker stopped."""
        self._active = False
        if self.rig is not None:
            self.rig.deactivate()
            self._publishers = {}
            return
        self._running = False
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None
        with self._lock:
            if self._slot.take(timeout_s=0) is not None:
                self.stats.dropped["stopped"] += 1  # synced, never processed
            if self.config is not None:
                self._replace_synchronizer(self._new_synchronizer(self.config), "stopped")
        self._publishers = {}

    def _replace_synchronizer(self, new: TimeoutSynchronizer, pending_reason: str) -> None:
        """Swap in ``new`` keeping the old one's drop counts (call under the lock).

        Frames still pending in the old one are counted under ``pending_reason``.
        """
        old = self.sync
        if old is not None:
            self.stats.dropped.update(old.stats.anchor_dropped)
            if old.pending:
                self.stats.dropped[pending_reason] += old.pending
        self.sync = new

    def cleanup(self) -> None:
        """Deactivate and free the model (an injected segmenter is left open)."""
        self.deactivate()
        self._free_model()
        self._configured = False  # config/path stay readable for a last diagnostics()

    def _free_model(self) -> None:
        if self.segmenter is not None and self._injected is None:
            self.segmenter.close()
        self.segmenter = None

    def apply_parameters(self, changes: Mapping[str, Any]) -> None:
        """Apply a run-time parameter change, or raise ``ValueError`` with the reason.

        Dynamic parameters (:data:`~mlesam_ros.pipeline.config.DYNAMIC_PARAMETERS`) take
        effect on the next frame; static ones are refused while configured (they take effect
        at the next ``configure``) and accepted while unconfigured.
        """
        configured = self._configured
        current = self._values if configured else validate_parameters(self.io.parameters())
        coerced = check_update(changes, current, configured)
        if not configured:
            return
        values = {**current, **coerced}
        config = NodeConfig.from_parameters(values)
        with self._lock:
            old = self.config
            self._values, self.config = values, config
            if self.path is not None and hasattr(self.path, "config"):
                self.path.config = config
            sync_fields = ("slop_ns", "timeout_ns", "strict", "offsets_ns")
            released = [] if self.rig is None else self.rig.reconfigure(old, config)
            if self.rig is None and any(getattr(old, f) != getattr(config, f)
                                        for f in sync_fields):  # fmt: skip
                # Pending frames go out under the old rules, then the new ones apply.
                frames = self.sync.poll(self.io.now_ns() + old.timeout_ns)
                self._replace_synchronizer(self._new_synchronizer(config), "stopped")
            else:
                frames = []
            if config.health_config() != old.health_config() and self.path is not None:
                self.health = SensorHealth(self.path.modalities, config.health_config())
            if config.diagnostics_period_ns != old.diagnostics_period_ns:
                self._next_diagnostics_ns = self.io.now_ns() + config.diagnostics_period_ns
            if self._active and self.rig is None:  # a rig makes its own (reconfigure)
                for output in _OPTIONAL_OUTPUTS:
                    if getattr(config, output):
                        self._ensure_output(output)
        if self._active:
            self._submit(frames, self.io.now_ns())
            for lane, lane_frames in released:
                self.rig.submit(lane, lane_frames, self.io.now_ns())
        self.io.logger.info(
            "set " + ", ".join(f"{name}={shown(value)}" for name, value in coerced.items())
        )

    # -- accounting ---------------------------------------------------------------------------

    def count_drop(self, reason: str, topic: str | None = None) -> None:
        """Count one RGB frame lost before the synchroniser (replay: undecodable messages).

        ``topic``: the RGB topic it came on (which camera of a rig lost it).
        """
        if self.rig is not None and self.rig.count_drop(reason, topic):
            return
        with self._lock:
            self.stats.dropped[reason] += 1

    def report_issue(self, sensor: str, topic: str, text: str) -> None:
        """Record a problem found outside the frame path (a rejected tf, a wrong msg type)."""
        self._note(Issue(sensor, topic, text))

    def dropped_frames(self) -> dict[str, int]:
        """RGB frames that were not labelled, by reason (see the module docstring)."""
        with self._lock:
            dropped = collections.Counter(self.stats.dropped)
            if self.rig is not None:
                dropped.update(self.rig.dropped_frames())
            elif self.sync is not None:
                dropped.update(self.sync.stats.anchor_dropped)
            if self._slot.dropped:
                dropped["worker_busy"] = self._slot.dropped
        return {reason: count for reason, count in sorted(dropped.items()) if count}

    def _lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        return self.io.lookup_transform(target, source, stamp_ns, self.config.tf_timeout_ns)

    # -- diagnostics --------------------------------------------------------------------------

    def _note(self, issue: Issue) -> None:
        with self._lock:
            self.stats.issues[issue.sensor] += 1
            self.stats.last_issue[issue.sensor] = str(issue)
        self._log_once("warning", issue.kind, str(issue))

    def _log_once(self, level: str, key: str, text: str) -> None:
        self._once(level, key, text)

    def diagnostics(self) -> Any:
        """Build the current ``diagnostic_msgs/DiagnosticArray`` (:mod:`.diagnostics`)."""
        if self.rig is None:
            with self._lock:
                health = {key: copy.copy(value) for key, value in self.sync.health().items()}
                sync_stats = copy.copy(self.sync.stats)
                stats = self.stats.snapshot()
                sensors, withheld = {}, frozenset()
                if self.health is not None:
                    sensors = {key: copy.copy(state) for key, state in self.health.states.items()}
                    withheld = frozenset(self.health.withheld())
        dropped_by_reason = self.dropped_frames()
        dropped = sum(dropped_by_reason.values())
        newly_dropped, self._dropped_reported = dropped - self._dropped_reported, dropped
        segmenter = self.segmenter
        model = {"backend": segmenter.backend, "device": segmenter.device,
                 "model": str(segmenter.artefact)} if segmenter is not None else {}  # fmt: skip
        if self.rig is not None:
            statuses = self.rig.diagnostic_statuses(model, newly_dropped)
        else:
            statuses = diagnostic_statuses(self.config, stats, health, sync_stats,
                                           dropped_by_reason, newly_dropped, model,
                                           self.path.used, self._slot.dropped, sensors, withheld,
                                           node=node_of(self.io))  # fmt: skip
        return m.diagnostic_array(statuses, self.io.now_ns())

    def publish_diagnostics(self) -> None:
        """Timer: publish ``/diagnostics``."""
        publisher = self._publishers.get("diagnostics")
        if publisher is not None:
            publisher.publish(m.encode(self.diagnostics(), m.DIAGNOSTIC_ARRAY))


__all__ = ["SENSOR_INPUTS", "FrameRecord", "PipelineStats", "SegmentationCore",
           "default_model_path", "open_segmenter"]  # fmt: skip
