"""The node core: parameters, subscriptions, sync, inference worker, publishing, diagnostics.

Transport-agnostic: it talks only to a :class:`~mlesam_ros.pipeline.interface.NodeIO` (see
that module for the contract), so the rclpy node (``mlesam_ros/node/``) and bag replay
(:mod:`mlesam_ros.replay`) run exactly this code. Lifecycle::

    core = SegmentationCore(io, threaded=True)   # live: inference on a worker thread
    core.configure()   # read parameters, load the engine, subscribe, advertise, LabelInfo
    ...                # callbacks and timers drive it
    core.cleanup()     # stop the worker, free the engine

Data flow: each input callback offers its message to a
:class:`~mlesam_ros.sync.TimeoutSynchronizer` keyed on the RGB stamp (optional members, a
timeout, so a dead sensor never stops the output); every synced frame goes into a one-slot
latest-frame-wins mailbox; the worker runs :class:`~mlesam_ros.pipeline.frame.FramePath` on
it and publishes ``/mlesam/labels`` (always), ``/mlesam/labels_color``, ``/mlesam/confidence``
and ``/mlesam/labeled_points`` (each when enabled and subscribed), ``/mlesam/label_info``
once (latched) and ``/diagnostics`` on a timer. Callbacks never raise: bad input is logged
once per kind, counted and reported in the diagnostics, and the frame goes on without it.

End-to-end latency = (node clock when the frame left the synchroniser − RGB stamp) + wall
time from there to the labels being published; live this is "RGB stamp → publish", in replay
the first part is the waiting in bag time and the second the real processing time. A stamp
more than :data:`MAX_CLOCK_AHEAD_NS` ahead of the node clock or more than
:data:`MAX_PLAUSIBLE_WAIT_NS` behind it (another clock domain: sim time vs wall time) gives
no latency sample, only an issue; a smaller lead counts as zero waiting.

Frame accounting: every RGB message either leaves as a labelled frame or is counted once in
:meth:`SegmentationCore.dropped_frames` under a reason (the synchroniser's reasons, see
:mod:`mlesam_ros.sync.synchronizer`, plus ``zero_stamp``, ``bad_header``, ``undecodable``,
``rgb_unusable``, ``inference_error``, ``callback_error``, ``worker_busy`` and ``stopped``:
frames still waiting in the synchroniser or the worker's slot when the node was deactivated).
Counts survive a new synchroniser (deactivation, a run-time change of ``sync.*``).
``/diagnostics`` carries the totals and goes WARN whenever frames were dropped since the
previous report.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import (
    SENSOR_INPUTS,
    NodeConfig,
    check_update,
    validate_parameters,
)
from mlesam_ros.pipeline.frame import MODALITY_OF_INPUT, FrameJob, FramePath, FrameResult, Issue
from mlesam_ros.pipeline.interface import NodeIO
from mlesam_ros.pipeline.worker import LatestSlot

_LATENCY_WINDOW = 200  # frames kept for the latency percentiles in diagnostics
MAX_PLAUSIBLE_WAIT_NS = 60_000_000_000
"""A frame older than this when it left the synchroniser is on another clock: no latency."""
MAX_CLOCK_AHEAD_NS = 1_000_000_000
"""A stamp this far ahead of the node clock is on another clock; less is clock skew (0 s)."""
CLOCK_ADVICE = "is the camera on another clock? set use_sim_time to match"
"""What to do about a stamp on another clock; a transport may say it its way (``clock_advice``)."""
# Outputs switched by output.<name> at run time: relative topic and message type.
_OPTIONAL_OUTPUTS = {
    "labels_color": (m.LABELS_COLOR_OUT, m.IMAGE),
    "confidence": (m.CONFIDENCE_OUT, m.IMAGE),
    "labeled_points": (m.LABELED_POINTS_OUT, m.POINTCLOUD2),
}


def default_model_path() -> Path:
    """Return the shipped demo model: ONNX when present (no torch needed), else the checkpoint."""
    from mlesam_ros.engine import default_checkpoint_candidates, resolve_default_checkpoint

    for checkpoint in default_checkpoint_candidates():
        onnx = checkpoint.with_suffix(".onnx")
        if onnx.is_file():
            return onnx
    return resolve_default_checkpoint()


def open_segmenter(config: NodeConfig) -> Any:
    """Load ``model.path`` (or the demo model) with ``model.backend``."""
    from mlesam_ros.engine.segmenter import Segmenter

    path = Path(config.model_path) if config.model_path else default_model_path()
    try:
        return Segmenter(
            path,
            config.backend,
            precision=config.precision,
            threads=config.threads,
            rebuild_engine=config.rebuild_engine,
        )
    except (ValueError, FileNotFoundError) as error:
        # Name the parameters: "backend: torch cannot run an onnx file" alone does not say
        # which setting to change. The type is kept so callers can still tell a missing file.
        raise type(error)(
            f"parameters model.path={str(path)!r}, model.backend={config.backend!r}: {error}"
        ) from error


@dataclass
class FrameRecord:
    """What replay and diagnostics keep per published frame."""

    stamp_ns: int
    present: dict[str, bool]
    latency_ms: float | None  # None: the stamp is on another clock than the node's
    processing_ms: float
    issues: tuple[str, ...]


@dataclass
class PipelineStats:
    """Counters since configure (read under the core's lock)."""

    published: int = 0
    skipped: int = 0
    inference_errors: int = 0
    callback_errors: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    latency_unmeasured: int = 0
    issues: collections.Counter = field(default_factory=collections.Counter)
    last_issue: dict[str, str] = field(default_factory=dict)
    last_present: dict[str, bool] = field(default_factory=dict)
    latencies_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=_LATENCY_WINDOW)
    )
    processing_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=_LATENCY_WINDOW)
    )


class SegmentationCore:
    """The segmentation node without ROS; see the module docstring.

    ``segmenter`` injects an already-loaded model (bench, tests); otherwise ``configure``
    opens ``model.path``. ``threaded=False`` processes each synced frame inside the callback
    that completed it (deterministic replay) through the same latest-frame slot.
    """

    def __init__(self, io: NodeIO, *, threaded: bool = True, segmenter: Any = None) -> None:
        self.io = io
        self.threaded = threaded
        self._injected = segmenter
        self.segmenter: Any = None
        self.config: NodeConfig | None = None
        self.path: FramePath | None = None
        self.sync: Any = None
        self.stats = PipelineStats()
        self.listeners: list[Callable[[FrameResult, FrameRecord], None]] = []
        self._lock = threading.RLock()
        self._infos: dict[str, Any] = {}
        self._publishers: dict[str, Any] = {}
        self._slot = LatestSlot()
        self._worker: threading.Thread | None = None
        self._running = False
        self._active = False
        self._configured = False
        self._values: dict[str, Any] = {}
        self._next_diagnostics_ns = 0
        self._logged: collections.Counter = collections.Counter()
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
        except Exception:
            self._free_model()
            raise
        self.sync = self._new_synchronizer(config)
        self.stats = PipelineStats()
        self._dropped_reported = 0
        self._configured = True
        m.ensure_vision_msgs()
        self.io.logger.info(
            f"mlesam: {getattr(self.segmenter, 'backend', '?')} on "
            f"{getattr(self.segmenter, 'device', '?')}, model "
            f"{getattr(self.segmenter, 'artefact', '?')}, modalities "
            f"{','.join(self.path.used)} at {self.segmenter.input_size}; inputs "
            + ", ".join(f"{key}={config.topics[key]}" for key in config.enabled_inputs)
        )
        if activate:
            self.activate()

    @staticmethod
    def _new_synchronizer(config: NodeConfig) -> Any:
        from mlesam_ros.sync import MemberConfig, SyncConfig, TimeoutSynchronizer

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
        config, io = self.config, self.io
        self._publishers = {
            "labels": self._output(m.LABELS_OUT, m.IMAGE),
            "label_info": io.create_publisher(m.LABEL_INFO_OUT, m.LABEL_INFO, latched=True),
            "diagnostics": io.create_publisher(m.DIAGNOSTICS_TOPIC, m.DIAGNOSTIC_ARRAY),
        }
        for output in _OPTIONAL_OUTPUTS:
            if getattr(config, output):
                self._ensure_output(output)
        for key in config.enabled_inputs:
            msgtype = m.POINTCLOUD2 if key == "points" else m.IMAGE
            # A failing RGB callback loses that frame: it is counted as a drop.
            drop_reason = "callback_error" if key == "rgb" else None
            io.subscribe(
                config.topics[key],
                msgtype,
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
        self._next_diagnostics_ns = io.now_ns() + config.diagnostics_period_ns
        self._publishers["label_info"].publish(
            m.encode(m.label_info(self.path.class_names, io.now_ns()), m.LABEL_INFO)
        )
        if self.threaded:
            self._slot.reopen()
            self._running = True
            self._worker = threading.Thread(
                target=self._work, name="mlesam-inference", daemon=True
            )
            self._worker.start()
        self._active = True

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

    def _replace_synchronizer(self, new: Any, pending_reason: str) -> None:
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
            if any(getattr(old, f) != getattr(config, f) for f in sync_fields):
                # Pending frames go out under the old rules, then the new ones apply.
                frames = self.sync.poll(self.io.now_ns() + old.timeout_ns)
                self._replace_synchronizer(self._new_synchronizer(config), "stopped")
            else:
                frames = []
            if config.diagnostics_period_ns != old.diagnostics_period_ns:
                self._next_diagnostics_ns = self.io.now_ns() + config.diagnostics_period_ns
            if self._active:
                for output in _OPTIONAL_OUTPUTS:
                    if getattr(config, output):
                        self._ensure_output(output)
        if self._active:
            self._submit(frames, self.io.now_ns())
        self.io.logger.info(
            "mlesam: set " + ", ".join(f"{name}={value!r}" for name, value in coerced.items())
        )

    # -- callbacks ----------------------------------------------------------------------------

    def _guard(
        self, function: Callable[..., None], *bound: Any, drop_reason: str | None = None
    ) -> Callable[..., None]:
        """Wrap a callback so nothing escapes into the transport's executor.

        ``drop_reason``: a failure of this callback costs a frame, counted under that reason.
        """

        def guarded(*args: Any) -> None:
            if not self._active:
                return  # a callback already queued when the node was deactivated
            try:
                function(*bound, *args)
            except Exception as error:
                with self._lock:
                    self.stats.callback_errors += 1
                    if drop_reason is not None:
                        self.stats.dropped[drop_reason] += 1
                self._log_once(
                    "error",
                    f"callback {function.__name__}{bound}",
                    f"{type(error).__name__}: {error}",
                )

        return guarded

    def on_camera_info(self, key: str, msg: Any) -> None:
        """Keep the latest CameraInfo of each camera (they rarely change); ``msg`` may be CDR."""
        msg = m.decode(msg, m.CAMERA_INFO)
        with self._lock:
            self._infos[key] = msg

    def on_sensor(self, key: str, msg: Any) -> None:
        """Offer one sensor message (CDR bytes or a message) to the synchroniser.

        Frames that became ready are handed to the worker.
        """
        from mlesam_ros.msgs import header_stamp_ns

        msg = m.decode(msg, m.POINTCLOUD2 if key == "points" else m.IMAGE)
        now = self.io.now_ns()
        topic = self.config.topics[key]
        try:
            stamp = header_stamp_ns(msg)
        except ValueError as error:
            self._note(Issue(key, topic, f"{error}; message ignored"))
            if key == "rgb":
                self.count_drop("bad_header")
            return
        if stamp <= 0:
            # An unset stamp (a driver that never fills the header) matches nothing in time;
            # taking the arrival time instead would pair unrelated messages silently.
            self._note(Issue(key, topic, "header.stamp is 0 (unset); message ignored"))
            if key == "rgb":
                self.count_drop("zero_stamp")
            return
        with self._lock:
            # Poll first: a frame whose timeout has passed is emitted before a newer message
            # can complete a later frame and make it stale.
            frames = self.sync.poll(now) + self.sync.add(key, stamp, msg, now)
        self._submit(frames, now)

    def poll(self) -> None:
        """Timer: emit frames whose timeout passed; publish diagnostics when they are due.

        Diagnostics ride on this timer (rather than a timer of their own) so that
        ``diagnostics.period_s`` can change at run time without the transport having to
        cancel timers.
        """
        now = self.io.now_ns()
        with self._lock:
            frames = self.sync.poll(now)
            diagnostics_due = now >= self._next_diagnostics_ns
            if diagnostics_due:
                self._next_diagnostics_ns = max(
                    self._next_diagnostics_ns + self.config.diagnostics_period_ns, now
                )
        self._submit(frames, now)
        if diagnostics_due:
            self.publish_diagnostics()

    def flush(self) -> None:
        """Emit every pending frame as if its timeout had passed and process it (bag end)."""
        with self._lock:
            now = self.io.now_ns() + self.config.timeout_ns
            frames = self.sync.poll(now)
        self._submit(frames, now)
        self.process_pending()

    def _submit(self, frames: list, now_ns: int) -> None:
        for frame in frames:
            with self._lock:
                infos = dict(self._infos)
            self._slot.put(FrameJob(frame.stamp_ns, frame.messages, infos, now_ns))
            if not self.threaded:
                self.process_pending()

    # -- worker -------------------------------------------------------------------------------

    def _work(self) -> None:
        while self._running:
            job = self._slot.take(timeout_s=0.5)
            if job is not None:
                self._process_guarded(job)

    def process_pending(self) -> None:
        """Process the frame waiting in the slot, if any (replay's synchronous worker)."""
        job = self._slot.take(timeout_s=0)
        if job is not None:
            self._process_guarded(job)

    def _process_guarded(self, job: FrameJob) -> None:
        try:
            self.process(job)
        except Exception as error:
            with self._lock:
                self.stats.inference_errors += 1
                self.stats.dropped["inference_error"] += 1
            self._log_once(
                "error", "frame", f"frame {job.stamp_ns} failed: {type(error).__name__}: {error}"
            )

    def _wants(self, output: str) -> bool:
        publisher = self._publishers.get(output)
        return (
            getattr(self.config, output)
            and publisher is not None
            and bool(publisher.has_subscribers())
        )

    def process(self, job: FrameJob) -> FrameResult | None:
        """Run the frame path on one job and publish; returns the result (None if skipped)."""
        path = self.path
        started = time.monotonic()
        prepared = path.prepare(job, self._lookup)
        for issue in prepared.issues:
            self._note(issue)
        if prepared.size == (0, 0) or not prepared.images:
            if prepared.size != (0, 0):
                self._note(
                    Issue(
                        "rgb",
                        self.config.topics["rgb"],
                        "no modality usable in this frame; frame skipped",
                    )
                )
            with self._lock:
                self.stats.skipped += 1
                self.stats.dropped["rgb_unusable"] += 1
            return None
        images, present = path.model_input(prepared)
        segmentation = self.segmenter.segment(images, present)
        result = path.postprocess(
            prepared,
            segmentation.labels,
            segmentation.confidence,
            present,
            want_confidence=self._wants("confidence"),
            want_overlay=self._wants("labels_color"),
            want_points=self._wants("labeled_points"),
        )
        self._publish(result)
        finished = time.monotonic()
        processing_ms = (finished - started) * 1e3
        latency_ms = self._latency_ms(job, finished)
        record = FrameRecord(
            job.stamp_ns,
            dict(result.present),
            latency_ms,
            processing_ms,
            tuple(str(issue) for issue in result.issues),
        )
        with self._lock:
            stats = self.stats
            stats.published += 1
            if latency_ms is None:
                stats.latency_unmeasured += 1
            else:
                stats.latencies_ms.append(latency_ms)
            stats.processing_ms.append(processing_ms)
            stats.last_present = dict(result.present)
        for listener in self.listeners:
            try:
                listener(result, record)
            except Exception as error:  # the frame is published: an observer error is no drop
                with self._lock:
                    self.stats.callback_errors += 1
                self._log_once("error", "listener", f"frame listener failed: {error!r}")
        return result

    def _latency_ms(self, job: FrameJob, finished_monotonic: float) -> float | None:
        """Stamp → publish latency, or None when the stamp is on another clock (see module)."""
        waited_ns = job.ready_ns - job.stamp_ns
        if waited_ns > MAX_PLAUSIBLE_WAIT_NS or waited_ns < -MAX_CLOCK_AHEAD_NS:
            self._note(
                Issue(
                    "rgb",
                    self.config.topics["rgb"],
                    f"header.stamp is {-waited_ns / 1e9:+.1f} s from the node clock; latency "
                    f"not measured ({getattr(self.io, 'clock_advice', CLOCK_ADVICE)})",
                )
            )
            return None
        return max(waited_ns, 0) / 1e6 + (finished_monotonic - job.ready_monotonic) * 1e3

    # -- accounting ---------------------------------------------------------------------------

    def count_drop(self, reason: str) -> None:
        """Count one RGB frame lost before the synchroniser (replay: undecodable messages)."""
        with self._lock:
            self.stats.dropped[reason] += 1

    def report_issue(self, sensor: str, topic: str, text: str) -> None:
        """Record a problem found outside the frame path (a rejected tf, a wrong msg type)."""
        self._note(Issue(sensor, topic, text))

    def dropped_frames(self) -> dict[str, int]:
        """RGB frames that were not labelled, by reason (see the module docstring)."""
        with self._lock:
            dropped = collections.Counter(self.stats.dropped)
            if self.sync is not None:
                dropped.update(self.sync.stats.anchor_dropped)
            if self._slot.dropped:
                dropped["worker_busy"] = self._slot.dropped
        return {reason: count for reason, count in sorted(dropped.items()) if count}

    def _lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        return self.io.lookup_transform(target, source, stamp_ns, self.config.tf_timeout_ns)

    def _publish(self, result: FrameResult) -> None:
        from mlesam_ros.msgs import array_to_pointcloud2, numpy_to_image

        publishers = self._publishers
        publishers["labels"].publish(
            m.encode(
                numpy_to_image(result.labels, self.path.label_encoding, result.header), m.IMAGE
            )
        )
        if result.overlay is not None:
            publishers["labels_color"].publish(
                m.encode(numpy_to_image(result.overlay, "rgb8", result.header), m.IMAGE)
            )
        if result.confidence is not None:
            publishers["confidence"].publish(
                m.encode(numpy_to_image(result.confidence, "32FC1", result.header), m.IMAGE)
            )
        if result.points is not None:
            publishers["labeled_points"].publish(
                m.encode(array_to_pointcloud2(result.points, result.points_header), m.POINTCLOUD2)
            )

    # -- diagnostics --------------------------------------------------------------------------

    def _note(self, issue: Issue) -> None:
        with self._lock:
            self.stats.issues[issue.sensor] += 1
            self.stats.last_issue[issue.sensor] = str(issue)
        self._log_once("warning", f"{issue.sensor}:{issue.text[:60]}", str(issue))

    def _log_once(self, level: str, key: str, text: str) -> None:
        """Log the 1st, 10th, 100th, ... occurrence of a kind of problem (no log flood)."""
        with self._lock:
            self._logged[key] += 1
            count = self._logged[key]
        if count == 1 or np.log10(count).is_integer():
            suffix = "" if count == 1 else f" (x{count})"
            self._log(level, f"mlesam: {text}{suffix}")

    def _log(self, level: str, text: str) -> None:
        """Log at ``level`` with one call site per severity.

        rclpy remembers the severity of each logging call site and raises ``ValueError:
        Logger severity cannot be changed between calls`` when one line logs at two levels,
        so ``getattr(logger, level)(...)`` would throw inside frame processing.
        """
        logger = self.io.logger
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    def diagnostics(self) -> Any:
        """Build the current ``diagnostic_msgs/DiagnosticArray``."""
        config, stats = self.config, self.stats
        with self._lock:
            health = {key: dataclass_copy(value) for key, value in self.sync.health().items()}
            sync_stats = dataclass_copy(self.sync.stats)
            latencies = np.asarray(stats.latencies_ms, dtype=np.float64)
            processing = np.asarray(stats.processing_ms, dtype=np.float64)
            last_present = dict(stats.last_present)
            last_issue = dict(stats.last_issue)
            issue_counts = dict(stats.issues)
            published, skipped = stats.published, stats.skipped
            errors = stats.inference_errors + stats.callback_errors
            latency_unmeasured = stats.latency_unmeasured
        dropped_by_reason = self.dropped_frames()
        dropped = sum(dropped_by_reason.values())
        newly_dropped, self._dropped_reported = dropped - self._dropped_reported, dropped
        percentiles = (
            np.percentile(latencies, [50, 90, 99]) if latencies.size else (float("nan"),) * 3
        )
        pipeline_values = {
            "backend": getattr(self.segmenter, "backend", "?"),
            "device": getattr(self.segmenter, "device", "?"),
            "model": str(getattr(self.segmenter, "artefact", "?")),
            "modalities": ",".join(self.path.used),
            "frames_published": published,
            "frames_skipped": skipped,
            "dropped_frames": dropped,
            "dropped_by_worker": self._slot.dropped,
            "sync_timeouts": sync_stats.emitted_on_timeout,
            "latency_p50_ms": float(percentiles[0]),
            "latency_p90_ms": float(percentiles[1]),
            "latency_p99_ms": float(percentiles[2]),
            "processing_mean_ms": float(processing.mean()) if processing.size else float("nan"),
            "latency_unmeasured": latency_unmeasured,
            "errors": errors,
        }
        pipeline_values.update({f"dropped_{key}": n for key, n in dropped_by_reason.items()})
        if errors:
            level, message = m.ERROR, "errors, see log"
        elif newly_dropped > 0:
            level = m.WARN
            message = f"{newly_dropped} frames dropped since the last report (" + ", ".join(
                f"{key}: {n}" for key, n in dropped_by_reason.items()
            ) + " in total)"
        else:
            level, message = m.OK, "ok"
        statuses = [m.diagnostic_status("mlesam: pipeline", level, message, pipeline_values)]
        for key in config.enabled_inputs:
            modality = MODALITY_OF_INPUT[key]
            sensor = health.get(key)
            fused = last_present.get(modality, False)
            values = {
                "topic": config.topics[key],
                "modality": modality,
                "fused": fused,
                "rate_hz": float(sensor.rate_hz) if sensor else 0.0,
                "received": sensor.received if sensor else 0,
                "missing": sensor.missing if sensor else 0,
                "issues": issue_counts.get(key, 0),
                "last_issue": last_issue.get(key, ""),
            }
            if sensor is None or sensor.received == 0:
                level, message = m.STALE, "no message received"
                if last_issue.get(key):
                    message += f"; {last_issue[key]}"
            elif fused:
                level, message = m.OK, "fused"
            else:
                level, message = m.WARN, last_issue.get(key) or "not in the last frame"
            statuses.append(m.diagnostic_status(f"mlesam: {key}", level, message, values))
        for source in sorted(set(issue_counts) - set(config.enabled_inputs)):
            # Problems outside the sensors (tf, a topic of the wrong type): WARN with the last.
            values = {"issues": issue_counts[source], "last_issue": last_issue.get(source, "")}
            statuses.append(
                m.diagnostic_status(
                    f"mlesam: {source}", m.WARN, last_issue.get(source, ""), values
                )
            )
        return m.diagnostic_array(statuses, self.io.now_ns())

    def publish_diagnostics(self) -> None:
        """Timer: publish ``/diagnostics``."""
        publisher = self._publishers.get("diagnostics")
        if publisher is not None:
            publisher.publish(m.encode(self.diagnostics(), m.DIAGNOSTIC_ARRAY))


def dataclass_copy(value: Any) -> Any:
    """Shallow copy of a dataclass instance (health snapshots taken under the lock)."""
    import copy

    return copy.copy(value)


__all__ = [
    "SENSOR_INPUTS",
    "FrameRecord",
    "PipelineStats",
    "SegmentationCore",
    "default_model_path",
    "open_segmenter",
]
