"""Several cameras around one LiDAR in one node: per-camera sync, batched inference, one cloud.

With ``cameras.names`` set, :class:`~mlesam_ros.pipeline.core.SegmentationCore` hands its
inputs, worker and outputs to a :class:`CameraRig`. Each camera is a :class:`CameraLane`:
its own view of the configuration (:meth:`~mlesam_ros.pipeline.config.NodeConfig.
camera_view`), its own :class:`~mlesam_ros.pipeline.frame.FramePath` (calibration caches),
synchroniser (its RGB is its anchor, with its own offsets and timeout, so a late or dead
camera never holds up another), latest-frame slot, sensor health, counters and outputs
(``~/<camera>/labels``, ``labels_color``, ``confidence``, ``label_info``). Shared: the model,
the LiDAR subscription (each sweep decoded once and offered to every camera's synchroniser,
:mod:`mlesam_ros.pipeline.sweep`), ``/diagnostics`` and the one fused ``~/labeled_points``
(:mod:`mlesam_ros.pipeline.fusion`).

Batching: when a camera's frame is ready, the worker waits up to ``cameras.batch_window_s``
for the cameras whose frame is on its way (an RGB frame pending in their synchroniser), then
runs every ready frame through the model in one call (``Segmenter.segment_batch``). Cameras
with nothing pending are not waited for, so a dead camera costs no latency. Each camera
keeps only its newest frame (latest frame wins, per camera; a replaced frame is counted as
``worker_busy`` for that camera). Live, a worker thread does this on the monotonic clock;
replay (``threaded=False``) decides at each callback and timer on the bag clock, so a replay
batches deterministically.
"""

from __future__ import annotations

import collections
import copy
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mlesam_ros.msgs import (
    StampError,
    array_to_pointcloud2,
    checked_header_stamp_ns,
    numpy_to_image,
)
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import CameraConfig, NodeConfig
from mlesam_ros.pipeline.diagnostics import FrameRecord, PipelineStats, diagnostic_statuses
from mlesam_ros.pipeline.frame import FrameJob, FramePath, Issue
from mlesam_ros.pipeline.fusion import CameraPoints, camera_points, fuse_points
from mlesam_ros.pipeline.health import SensorHealth
from mlesam_ros.pipeline.image_transport import input_msgtype, input_topic
from mlesam_ros.pipeline.ingest import RGB_ARRIVALS_KEPT
from mlesam_ros.pipeline.model_output import check_model_output
from mlesam_ros.pipeline.naming import node_of
from mlesam_ros.pipeline.sweep import SweepCache
from mlesam_ros.pipeline.timing import frame_stages
from mlesam_ros.pipeline.worker import CLOCK_ADVICE, MAX_CLOCK_AHEAD_NS, MAX_PLAUSIBLE_WAIT_NS
from mlesam_ros.text import bounded

# A camera's outputs: name → (message type, enabled by this NodeConfig field or always).
CAMERA_OUTPUTS = {"labels": (m.IMAGE, None), "labels_color": (m.IMAGE, "labels_color"),
                  "confidence": (m.IMAGE, "confidence")}  # fmt: skip
SYNC_FIELDS = ("slop_ns", "timeout_ns", "strict", "offsets_ns")
BATCH_WINDOW = 200
"""Batches kept for the mean batch size in diagnostics."""
SILENT_PERIODS = 5.0
SILENT_MIN_S = 1.0
"""A camera without an RGB image for this many of its periods (and this long) is silent."""


def camera_topic(camera: str, output: str) -> str:
    """Node-relative topic of one camera's output: ``~/<camera>/<output>``."""
    return f"~/{camera}/{output}"


class CameraLane:
    """One camera of a rig: its configuration view, frame path, sync, slot, health, outputs."""

    def __init__(self, camera: CameraConfig, config: NodeConfig, path: FramePath,
                 sync: Any, health: SensorHealth) -> None:  # fmt: skip
        self.name, self.index = camera.name, camera.index
        self.camera = camera
        self.config = config
        self.path = path
        self.sync = sync
        self.health = health
        self.stats = PipelineStats()
        self.infos: dict[str, Any] = {}
        self.rgb_arrivals: dict[int, int] = {}  # RGB stamp → arrival (its frame's sync wait)
        self.publishers: dict[str, Any] = {}
        self.job: FrameJob | None = None  # its newest synced frame, waiting for a batch
        self.job_since = 0
        self.replaced = 0  # frames replaced in the slot before a batch took them
        self.dropped_reported = 0
        self.last_points: tuple[Any, CameraPoints] | None = None  # (sweep, what it labelled)

    @property
    def inputs(self) -> tuple[str, ...]:
        """This camera's own inputs (the shared LiDAR is reported once, by the rig)."""
        return tuple(key for key in self.config.enabled_inputs if key != "points")

    @property
    def rgb_topic(self) -> str:
        """The topic this camera's RGB arrives on (its transport's: ``<topic>/compressed``)."""
        return input_topic(self.config, "rgb")

    def dropped_frames(self) -> collections.Counter:
        """Count this camera's RGB frames not labelled, by reason (call under the core's lock)."""
        dropped = collections.Counter(self.stats.dropped)
        dropped.update(self.sync.stats.anchor_dropped)
        if self.replaced:
            dropped["worker_busy"] += self.replaced
        return +dropped


class CameraRig:
    """The cameras of one node core; see the module docstring.

    Uses the core's ``io``, ``segmenter``, ``config``, ``stats``, ``threaded``, ``listeners``,
    ``_lock``, ``_active``, ``_publishers``, ``_output``, ``_lookup``, ``_log_once`` and
    ``_new_synchronizer``.
    """

    def __init__(self, core: Any, config: NodeConfig) -> None:
        self.core = core
        self.sweeps = SweepCache()
        self.lanes: list[CameraLane] = []
        for camera in config.cameras:
            view = config.camera_view(camera)
            path = FramePath(core.segmenter, view)
            path.sensors.sweeps = self.sweeps
            health = SensorHealth(path.modalities, config.health_config())
            self.lanes.append(CameraLane(camera, view, path, core._new_synchronizer(view), health))
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None
        self._running = False
        self.batch_sizes: collections.deque = collections.deque(maxlen=BATCH_WINDOW)
        self.batches = 0
        self.fused_published = 0
        self.points_decode_ms: collections.deque = collections.deque(maxlen=BATCH_WINDOW)
        self.points_received = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def activate(self) -> None:
        """Advertise every camera's outputs and the fused cloud, start the worker, subscribe.

        The core is active before this runs (a message may arrive the moment a subscription
        exists) and deactivates again when it raises.
        """
        core, io, config = self.core, self.core.io, self.core.config
        core._publishers = {
            "diagnostics": io.create_publisher(m.DIAGNOSTICS_TOPIC, m.DIAGNOSTIC_ARRAY),
        }
        self._ensure_outputs(config)
        label_info = m.encode(m.label_info(core.path.classes.names, io.now_ns()), m.LABEL_INFO)
        for lane in self.lanes:
            lane.publishers["label_info"] = io.create_publisher(
                camera_topic(lane.name, "label_info"), m.LABEL_INFO, latched=True)
            lane.publishers["label_info"].publish(label_info)
        core._next_diagnostics_ns = io.now_ns() + config.diagnostics_period_ns
        if core.threaded:
            self._running = True
            self._worker = threading.Thread(target=self._work, name="mlesam-inference",
                                            daemon=True)  # fmt: skip
            self._worker.start()
        for lane in self.lanes:
            for key in lane.inputs:
                io.subscribe(input_topic(lane.config, key), input_msgtype(lane.config, key),
                             self._guard(self.on_image, lane, key, drop=key == "rgb"),
                             config.reliability[key])  # fmt: skip
                info_topic = lane.config.info_topics.get(key)
                if info_topic:
                    io.subscribe(info_topic, m.CAMERA_INFO,
                                 self._guard(self.on_camera_info, lane, key),
                                 config.reliability["camera_info"])  # fmt: skip
        if config.topics["points"]:
            io.subscribe(input_topic(config, "points"), input_msgtype(config, "points"),
                         self._guard(self.on_points), config.reliability["points"])  # fmt: skip
        io.create_timer(config.poll_period_ns, core._guard(core.poll))

    def _ensure_outputs(self, config: NodeConfig) -> None:
        """Create the outputs the configuration enables (and keep those already there)."""
        core = self.core
        if config.labeled_points and "labeled_points" not in core._publishers:
            core._publishers["labeled_points"] = core._output(m.LABELED_POINTS_OUT,
                                                              m.POINTCLOUD2)  # fmt: skip
        for lane in self.lanes:
            for output, (msgtype, switch) in CAMERA_OUTPUTS.items():
                if output not in lane.publishers and (switch is None or getattr(config, switch)):
                    lane.publishers[output] = core._output(camera_topic(lane.name, output),
                                                           msgtype)  # fmt: skip

    def deactivate(self) -> None:
        """Stop the worker; frames waiting in a synchroniser or a slot count as ``stopped``."""
        self._running = False
        with self._ready:
            self._ready.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None
        with self.core._lock:
            for lane in self.lanes:
                if lane.job is not None:
                    lane.stats.dropped["stopped"] += 1
                    lane.job = None
                self._replace_synchronizer(lane, lane.config)
                lane.rgb_arrivals.clear()
                lane.publishers = {}

    def _replace_synchronizer(self, lane: CameraLane, config: NodeConfig) -> None:
        """Give ``lane`` a new synchroniser, keeping the old one's drop counts (under the lock)."""
        old = lane.sync
        lane.stats.dropped.update(old.stats.anchor_dropped)
        if old.pending:
            lane.stats.dropped["stopped"] += old.pending
        lane.sync = self.core._new_synchronizer(config)

    def reconfigure(self, old: NodeConfig, config: NodeConfig) -> list[tuple[CameraLane, list]]:
        """Apply run-time parameters to every camera (under the core's lock).

        Returns the frames that left a replaced synchroniser, to submit after the lock.
        """
        cameras = {camera.name: camera for camera in config.cameras}
        released = []
        for lane in self.lanes:
            view = config.camera_view(cameras[lane.name])
            if any(getattr(lane.config, f) != getattr(view, f) for f in SYNC_FIELDS):
                # Pending frames go out under the old rules, then the new ones apply.
                now = self.core.io.now_ns()
                released.append((lane, lane.sync.poll(now + lane.config.timeout_ns)))
                self._replace_synchronizer(lane, view)
            lane.config = view
            lane.path.config = view
            if config.health_config() != old.health_config():
                lane.health = SensorHealth(lane.path.modalities, config.health_config())
        if self.core._active:
            self._ensure_outputs(config)
        return released

    # -- inputs -------------------------------------------------------------------------------

    def _guard(self, function: Callable[..., None], *bound: Any,
               drop: bool = False) -> Callable[..., None]:  # fmt: skip
        """Like the core's guard; a failing RGB callback costs its camera that frame."""
        core = self.core
        lane = bound[0] if bound and isinstance(bound[0], CameraLane) else None

        def guarded(*args: Any) -> None:
            if not core._active:
                return
            try:
                function(*bound, *args)
            except Exception as error:
                with core._lock:
                    core.stats.callback_errors += 1
                    if lane is not None:
                        lane.stats.callback_errors += 1
                        if drop:
                            lane.stats.dropped["callback_error"] += 1
                where = f" of camera {lane.name}" if lane is not None else ""
                core._log_once("error", f"callback {function.__name__}{where}",
                               f"{type(error).__name__}: {error}")  # fmt: skip

        return guarded

    def _decode(self, lane: CameraLane | None, key: str, data: Any, msgtype: str,
                topic: str) -> Any:  # fmt: skip
        """Decode one input; ``None`` (reported, counted) when it cannot be (as the core's).

        An RGB image lost this way is counted as ``undecodable`` for its camera.
        """
        try:
            return m.decode(data, msgtype)
        except Exception as error:
            self.note(lane, Issue(key, topic, f"undecodable {msgtype} ({type(error).__name__}); "
                                              "message ignored"))  # fmt: skip
            if lane is not None and key == "rgb" and msgtype != m.CAMERA_INFO:
                with self.core._lock:
                    lane.stats.dropped["undecodable"] += 1
            return None

    def on_camera_info(self, lane: CameraLane, key: str, msg: Any) -> None:
        """Keep the latest CameraInfo of each of the camera's sensors.

        Its stamp may be 0 (it is not used as a time); one that is no time at all marks a
        corrupt message, which is ignored (:mod:`mlesam_ros.msgs.stamps`).
        """
        topic = lane.config.info_topics.get(key, "")
        msg = self._decode(lane, key, msg, m.CAMERA_INFO, topic)
        if msg is None:
            return
        try:
            checked_header_stamp_ns(msg, allow_zero=True)
        except StampError as error:
            self.note(lane, Issue(key, topic, f"CameraInfo {error}; message ignored"))
            return
        with self.core._lock:
            lane.infos[key] = msg

    def _stamp(self, lane: CameraLane | None, key: str, topic: str, msg: Any) -> int | None:
        """Return the header stamp, or None after noting why the message is ignored.

        The stamp rule of :mod:`mlesam_ros.msgs.stamps`; a camera's RGB image ignored this
        way is counted for that camera under the rule's reason.
        """
        try:
            return checked_header_stamp_ns(msg)
        except StampError as error:
            self.note(lane, Issue(key, topic, f"{error}; message ignored"))
            if lane is not None and key == "rgb":
                with self.core._lock:
                    lane.stats.dropped[error.reason] += 1
            return None

    def on_image(self, lane: CameraLane, key: str, msg: Any) -> None:
        """Offer one of the camera's images (raw or compressed) to its synchroniser."""
        topic = input_topic(lane.config, key)
        msg = self._decode(lane, key, msg, input_msgtype(lane.config, key), topic)
        if msg is None:
            return
        now = self.core.io.now_ns()
        stamp = self._stamp(lane, key, topic, msg)
        if stamp is None:
            return
        with self.core._lock:
            if key == "rgb":
                arrivals = lane.rgb_arrivals
                arrivals[stamp] = now
                while len(arrivals) > RGB_ARRIVALS_KEPT:  # frames the synchroniser dropped
                    del arrivals[next(iter(arrivals))]
            frames = lane.sync.poll(now) + lane.sync.add(key, stamp, msg, now)
        self._submit(lane, frames, now)

    def on_points(self, msg: Any) -> None:
        """Decode a LiDAR sweep once and offer it to every camera's synchroniser."""
        topic = input_topic(self.core.config, "points")
        started = time.perf_counter()
        msg = self._decode(None, "points", msg, input_msgtype(self.core.config, "points"), topic)
        if msg is None:
            return
        decode_ms = (time.perf_counter() - started) * 1e3
        now = self.core.io.now_ns()
        stamp = self._stamp(None, "points", topic, msg)
        with self.core._lock:
            self.points_received += 1
            self.points_decode_ms.append(decode_ms)
            if stamp is None:
                return
            released = [(lane, lane.sync.poll(now) + lane.sync.add("points", stamp, msg, now))
                        for lane in self.lanes]  # fmt: skip
        for lane, frames in released:  # every camera's frame first, then one batch
            self._submit(lane, frames, now, run=False)
        if not self.core.threaded:
            self.process_ready()

    def poll(self, now: int) -> None:
        """Timer: emit frames whose timeout passed; run a batch that is due (replay)."""
        with self.core._lock:
            released = [(lane, lane.sync.poll(now)) for lane in self.lanes]
        for lane, frames in released:
            self._submit(lane, frames, now, run=False)
        if not self.core.threaded:
            self.process_ready()

    def flush(self) -> None:
        """Emit every pending frame as if its timeout had passed and run them (bag end)."""
        with self.core._lock:
            released = [(lane, lane.sync.poll(self.core.io.now_ns() + lane.config.timeout_ns))
                        for lane in self.lanes]  # fmt: skip
        for lane, frames in released:
            self._submit(lane, frames, self.core.io.now_ns(), run=False)
        self.process_ready(force=True)

    def submit(self, lane: CameraLane, frames: list, now_ns: int) -> None:
        """Hand synced frames of ``lane`` to the batch (run-time parameter changes)."""
        self._submit(lane, frames, now_ns)

    def _submit(self, lane: CameraLane, frames: list, now_ns: int, run: bool = True) -> None:
        if not frames:
            return
        with self.core._lock:
            infos = dict(lane.infos)
            arrivals = [lane.rgb_arrivals.pop(frame.stamp_ns, None) for frame in frames]
        with self._ready:
            for frame, arrival in zip(frames, arrivals, strict=True):
                if lane.job is not None:
                    lane.replaced += 1  # latest frame wins, per camera
                lane.job = FrameJob(frame.stamp_ns, frame.messages, infos, now_ns,
                                    rgb_arrival_ns=arrival)  # fmt: skip
                lane.job_since = self._clock()
            self._ready.notify_all()
        if run and not self.core.threaded:
            self.process_ready()

    # -- batching -----------------------------------------------------------------------------

    def _clock(self) -> int:
        """Monotonic time live; the node (bag) clock in replay, so batches are reproducible."""
        return time.monotonic_ns() if self.core.threaded else self.core.io.now_ns()

    def _due(self) -> tuple[bool, int]:
        """Whether the waiting frames should run now, else how long to wait (call in _ready).

        Due when no camera without a frame has one on its way, or the window has passed.
        """
        waiting = [lane for lane in self.lanes if lane.job is not None]
        if not waiting:
            return False, 0
        with self.core._lock:
            coming = any(lane.job is None and lane.sync.pending for lane in self.lanes)
        left = min(lane.job_since for lane in waiting) + self.core.config.batch_window_ns
        left -= self._clock()
        return (not coming or left <= 0), max(left, 0)

    def _take(self) -> list[tuple[CameraLane, FrameJob]]:
        jobs = [(lane, lane.job) for lane in self.lanes if lane.job is not None]
        for lane, _ in jobs:
            lane.job = None
        return jobs

    def process_ready(self, force: bool = False) -> None:
        """Run the waiting frames as one batch if it is due (``force``: now)."""
        with self._ready:
            due, _ = self._due()
            jobs = self._take() if due or force else []
        if jobs:
            self._run_guarded(jobs)

    def _work(self) -> None:
        while self._running:
            with self._ready:
                due, wait_ns = self._due()
                while self._running and not due:
                    self._ready.wait(wait_ns / 1e9 if wait_ns else 0.5)
                    due, wait_ns = self._due()
                jobs = self._take() if self._running else []
            if jobs:
                self._run_guarded(jobs)

    def _run_guarded(self, jobs: list[tuple[CameraLane, FrameJob]]) -> None:
        core = self.core
        try:
            self.run_batch(jobs)
        except Exception as error:
            names = ", ".join(lane.name for lane, _ in jobs)
            text = f"batch of {names} failed: {type(error).__name__}: {error}"
            with core._lock:
                core.stats.inference_errors += 1
                core.stats.last_error = bounded(text, 300)
                for lane, _ in jobs:
                    lane.stats.inference_errors += 1
                    lane.stats.dropped["inference_error"] += 1
                    lane.stats.last_error = bounded(text, 300)
            core._log_once("error", "batch", text)

    # -- one batch ----------------------------------------------------------------------------

    def _wants(self, lane: CameraLane, output: str) -> bool:
        publisher = lane.publishers.get(output)
        return (getattr(self.core.config, output) and publisher is not None
                and bool(publisher.has_subscribers()))  # fmt: skip

    def _wants_cloud(self) -> bool:
        publisher = self.core._publishers.get("labeled_points")
        return (self.core.config.labeled_points and publisher is not None
                and bool(publisher.has_subscribers()))  # fmt: skip

    def run_batch(self, jobs: list[tuple[CameraLane, FrameJob]]) -> None:
        """Prepare each camera's frame, run the model once, publish per camera and the cloud.

        Each camera's frame is timed per stage as a one-camera frame is
        (:func:`~mlesam_ros.pipeline.timing.frame_stages`): its own decode, preprocessing and
        outputs, and the batch's inference (the call it shared). The model's answer is checked
        per camera (:func:`~mlesam_ros.pipeline.model_output.check_model_output`): a camera
        whose labels are out of range loses that frame as an inference error, the others are
        published.
        """
        core = self.core
        ready = []
        for lane, job in jobs:
            started = time.monotonic()
            prepared = lane.path.prepare(job, core._lookup)
            for issue in prepared.issues:
                self.note(lane, issue)
            self._note_degraded(lane, job, prepared)
            if prepared.size == (0, 0) or not prepared.images:
                if prepared.size != (0, 0):
                    self.note(lane, Issue("rgb", lane.rgb_topic,
                                          "no modality usable in this frame; frame skipped"))
                with core._lock:
                    lane.stats.skipped += 1
                    lane.stats.dropped["rgb_unusable"] += 1
                continue
            prepared_at = time.monotonic()
            withheld = self._inspect_health(lane, prepared)
            images, present = lane.path.model_input(prepared, withheld)
            marks = (started, prepared_at, time.monotonic())
            ready.append((lane, job, prepared, images, present, marks))
        if not ready:
            return
        images = np.concatenate([item[3] for item in ready])
        present = np.concatenate([item[4] for item in ready])
        inputs_at = time.monotonic()
        results = self._segment(images, present)
        inference_ms = (time.monotonic() - inputs_at) * 1e3
        with core._lock:
            self.batches += 1
            self.batch_sizes.append(len(ready))
        want_cloud = self._wants_cloud()
        num_classes = len(core.path.class_names)
        views: list[tuple[Any, CameraPoints]] = []
        for (lane, job, prepared, _, lane_present, marks), segmentation in zip(ready, results,
                                                                                 strict=True):
            try:
                check_model_output(segmentation, num_classes)
            except ValueError as error:
                self._model_output_error(lane, job, error)
                continue
            outputs_started = time.monotonic()
            if lane.health is not None:
                fused = {mod: bool(lane_present[0, slot])
                         for slot, mod in enumerate(lane.path.modalities)}  # fmt: skip
                with core._lock:
                    lane.health.routing(getattr(segmentation, "routing_weights", None), fused)
            result = lane.path.postprocess(
                prepared, segmentation.labels, segmentation.confidence, lane_present,
                want_confidence=self._wants(lane, "confidence"),
                want_overlay=self._wants(lane, "labels_color"), want_points=False,
            )  # fmt: skip
            result.camera = lane.name
            self._publish(lane, result)
            lane.last_points = None
            if want_cloud and prepared.cloud is not None:
                sweep = self.sweeps.get(job.messages.get("points"))
                if sweep is not None:
                    # Published ids (output.class_map_file), fused on the model's confidence.
                    labels = lane.path.classes.apply(segmentation.labels)
                    points = camera_points(prepared.cloud, labels, segmentation.confidence,
                                           prepared.size, lane.index)  # fmt: skip
                    lane.last_points = (sweep, points)
                    views.append((sweep, points))
            started, prepared_at, inputs_ready = marks
            finished = time.monotonic()
            stages = frame_stages(
                sync_wait_ms=None if job.rgb_arrival_ns is None
                else (job.ready_ns - job.rgb_arrival_ns) / 1e6,
                queue_ms=(started - job.ready_monotonic) * 1e3,
                prepare_ms=(prepared_at - started) * 1e3,
                path_steps_ms=getattr(lane.path, "stage_ms", {}),
                model_input_ms=(inputs_ready - prepared_at) * 1e3,
                inference_ms=inference_ms,
                outputs_ms=(finished - outputs_started) * 1e3,
            )  # fmt: skip
            # Its own work and the batch's inference; not the other cameras' preparation.
            processing_ms = sum(value for stage, value in stages.items()
                                if stage not in ("sync_wait", "queue"))  # fmt: skip
            self._record(lane, job, result, processing_ms, stages)
        if views:
            self._publish_clouds(views, {lane.name for lane, *_ in ready})

    def _model_output_error(self, lane: CameraLane, job: FrameJob, error: Exception) -> None:
        """Drop one camera's frame whose model output is out of range (an inference error)."""
        core = self.core
        text = f"camera {lane.name}: frame {job.stamp_ns} failed: {type(error).__name__}: {error}"
        with core._lock:
            core.stats.inference_errors += 1
            core.stats.last_error = bounded(text, 300)
            lane.stats.inference_errors += 1
            lane.stats.dropped["inference_error"] += 1
            lane.stats.last_error = bounded(text, 300)
        core._log_once("error", f"frame of camera {lane.name}", text)

    def _note_degraded(self, lane: CameraLane, job: FrameJob, prepared: Any) -> None:
        """Keep each of the camera's inputs' degradation for diagnostics; log each kind once.

        As the one-camera worker: an input that came without one in this frame is clear again.
        """
        with self.core._lock:
            stats = lane.stats
            for sensor in {"rgb", *job.messages}:
                note = prepared.degraded.get(sensor)
                if note:
                    stats.degraded[sensor] = note
                else:
                    stats.degraded.pop(sensor, None)
            new = [item for item in prepared.degraded.items()
                   if item not in stats.degraded_logged]  # fmt: skip
            stats.degraded_logged.update(new)
        for sensor, note in new:
            topic = input_topic(lane.config, sensor) if sensor in lane.config.topics else ""
            issue = Issue(sensor, topic, f"degraded: {note}")
            self.core._once.log("warning", f"camera {lane.name}: {issue}")

    def _segment(self, images: np.ndarray, present: np.ndarray) -> list[Any]:
        segmenter = self.core.segmenter
        if hasattr(segmenter, "segment_batch"):
            return segmenter.segment_batch(images, present)
        return [segmenter.segment(images[i : i + 1], present[i : i + 1])
                for i in range(images.shape[0])]  # fmt: skip

    def _inspect_health(self, lane: CameraLane, prepared: Any) -> frozenset[str]:
        """Return the camera's sensor-health suspects to withhold (never every usable one)."""
        if lane.health is None:
            return frozenset()
        with self.core._lock:
            lane.health.inspect(prepared.images)
            withheld = frozenset(lane.health.withheld() & set(prepared.images))
        return frozenset() if withheld and withheld >= set(prepared.images) else withheld

    def _publish(self, lane: CameraLane, result: Any) -> None:
        publishers, encoding = lane.publishers, lane.path.label_encoding
        publishers["labels"].publish(
            m.encode(numpy_to_image(result.labels, encoding, result.header), m.IMAGE))
        if result.overlay is not None:
            publishers["labels_color"].publish(
                m.encode(numpy_to_image(result.overlay, "rgb8", result.header), m.IMAGE))
        if result.confidence is not None:
            publishers["confidence"].publish(
                m.encode(numpy_to_image(result.confidence, "32FC1", result.header), m.IMAGE))

    def _publish_clouds(self, views: list[tuple[Any, CameraPoints]], batch: set[str]) -> None:
        """Publish one fused cloud per sweep in this batch, with what other cameras said."""
        in_batch = {id(sweep) for sweep, _ in views}
        for lane in self.lanes:  # cameras outside this batch that labelled the same sweep
            last = lane.last_points
            if lane.name not in batch and last is not None and id(last[0]) in in_batch:
                views.append(last)
        sweeps: dict[int, tuple[Any, list[CameraPoints]]] = {}
        for sweep, points in views:
            sweeps.setdefault(id(sweep), (sweep, []))[1].append(points)
        path = self.core.path
        packed_rgb, wanted_classes = path.points_rgb, path.points_classes
        publisher = self.core._publishers["labeled_points"]
        for sweep, cameras in sweeps.values():
            cloud = fuse_points(cameras, sweep.xyz, sweep.intensity, packed_rgb)
            if wanted_classes is not None:  # output.labeled_points_classes
                cloud = cloud[np.isin(cloud["label"], wanted_classes)]
            publisher.publish(m.encode(array_to_pointcloud2(cloud, sweep.message.header),
                                       m.POINTCLOUD2))  # fmt: skip
            with self.core._lock:
                self.fused_published += 1

    def _record(self, lane: CameraLane, job: FrameJob, result: Any, processing_ms: float,
                stages: dict[str, float]) -> None:  # fmt: skip
        core = self.core
        finished = time.monotonic()
        latency_ms = self._latency_ms(lane, job, finished)
        suspects = lane.health.suspects() if lane.health is not None else {}
        record = FrameRecord(job.stamp_ns, dict(result.present), latency_ms, processing_ms,
                             tuple(str(issue) for issue in result.issues), suspects,
                             stages_ms=stages, camera=lane.name)  # fmt: skip
        with core._lock:
            for stats in (lane.stats, core.stats):
                stats.published += 1
                if latency_ms is None:
                    stats.latency_unmeasured += 1
                else:
                    stats.latencies_ms.append(latency_ms)
                stats.processing_ms.append(processing_ms)
                stats.stages.add(stages)
            lane.stats.last_present = dict(result.present)
        for listener in core.listeners:
            try:
                listener(result, record)
            except Exception as error:  # the frame is published: an observer error is no drop
                with core._lock:
                    core.stats.callback_errors += 1
                core._log_once("error", "listener", f"frame listener failed: {error!r}")

    def _latency_ms(self, lane: CameraLane, job: FrameJob, finished: float) -> float | None:
        """Stamp → publish latency, or None when the stamp is on another clock (see worker)."""
        waited_ns = job.ready_ns - job.stamp_ns
        if waited_ns > MAX_PLAUSIBLE_WAIT_NS or waited_ns < -MAX_CLOCK_AHEAD_NS:
            advice = getattr(self.core.io, "clock_advice", CLOCK_ADVICE)
            self.note(lane, Issue("rgb", lane.rgb_topic,
                                  f"header.stamp is {-waited_ns / 1e9:+.1f} s from the node "
                                  f"clock; latency not measured ({advice})"))  # fmt: skip
            return None
        return max(waited_ns, 0) / 1e6 + (finished - job.ready_monotonic) * 1e3

    # -- accounting and diagnostics -------------------------------------------------------------

    def note(self, lane: CameraLane | None, issue: Issue) -> None:
        """Count an issue for its camera (None: the shared LiDAR) and log it once per kind."""
        core = self.core
        with core._lock:
            if lane is not None:
                lane.stats.issues[issue.sensor] += 1
                lane.stats.last_issue[issue.sensor] = str(issue)
            source = issue.sensor if lane is None else f"{lane.name}/{issue.sensor}"
            core.stats.issues[source] += 1
            core.stats.last_issue[source] = str(issue)
        core._log_once("warning", f"{issue.topic}:{issue.kind}", str(issue))

    def count_drop(self, reason: str, topic: str | None) -> bool:
        """Count an RGB frame lost before its synchroniser; False if ``topic`` is no camera's."""
        for lane in self.lanes:
            if lane.rgb_topic == topic:
                with self.core._lock:
                    lane.stats.dropped[reason] += 1
                return True
        return False

    def dropped_by_camera(self) -> dict[str, dict[str, int]]:
        """RGB frames not labelled, per camera and reason."""
        with self.core._lock:
            return {lane.name: dict(sorted(lane.dropped_frames().items())) for lane in self.lanes}

    def dropped_frames(self) -> collections.Counter:
        """RGB frames not labelled by any camera, by reason (the core's total)."""
        total: collections.Counter = collections.Counter()
        with self.core._lock:
            for lane in self.lanes:
                total.update(lane.dropped_frames())
        return total

    def diagnostic_statuses(self, model: dict[str, str], newly_dropped: int) -> list[Any]:
        """Return the rig's statuses: the shared pipeline and LiDAR, then per camera.

        ``<node>: pipeline`` and ``<node>: points``, then ``<node>: <camera>/pipeline`` and
        one per sensor of that camera (``<node>``: the fully qualified node name,
        :mod:`~mlesam_ros.pipeline.naming`).
        """
        core = self.core
        node = node_of(core.io)
        with core._lock:
            lanes = []
            for lane in self.lanes:
                sensors = {k: copy.copy(s) for k, s in lane.health.states.items()}
                dropped = dict(sorted(lane.dropped_frames().items()))
                total = sum(dropped.values())
                lanes.append((lane, lane.stats.snapshot(),
                              {k: copy.copy(v) for k, v in lane.sync.health().items()},
                              copy.copy(lane.sync.stats), dropped, total - lane.dropped_reported,
                              sensors, frozenset(lane.health.withheld())))  # fmt: skip
                lane.dropped_reported = total
            sizes = np.asarray(self.batch_sizes, np.float64)
            decode = np.asarray(self.points_decode_ms, np.float64)
            stats = core.stats.snapshot()
            received, fused_published = self.points_received, self.fused_published
        errors = stats.inference_errors + stats.callback_errors
        dropped = sum(sum(item[4].values()) for item in lanes)
        values = {**model, "cameras": ",".join(lane.name for lane in self.lanes),
                  "batches": self.batches,
                  "mean_batch": float(sizes.mean()) if sizes.size else float("nan"),
                  "frames_published": stats.published, "dropped_frames": dropped,
                  "labeled_points_published": fused_published, "errors": errors,
                  "last_error": stats.last_error}  # fmt: skip
        values.update(stats.stages.values())  # where the time goes, p50/p90 per stage
        if errors:
            level = m.ERROR
            message = f"errors, last: {stats.last_error}" if stats.last_error else (
                "errors, see log")
        elif newly_dropped > 0:
            level, message = m.WARN, f"{newly_dropped} frames dropped since the last report"
        else:
            level, message = m.OK, "ok"
        statuses = [m.diagnostic_status(f"{node}: pipeline", level, message, values, node)]
        now = core.io.now_ns()
        silent = {lane.name: text for lane, _, health, *_ in lanes
                  if (text := self._silence(health, now)) is not None}  # fmt: skip
        if core.config.topics["points"]:
            statuses.append(self._points_status(lanes, received, decode, stats, silent))
        for lane, lane_stats, health, sync_stats, by_reason, newly, sensors, withheld in lanes:
            lane_statuses = diagnostic_statuses(
                lane.config, lane_stats, health, sync_stats, by_reason, newly, model,
                lane.path.used, lane.replaced, sensors, withheld, scope=f"{lane.name}/",
                inputs=lane.inputs, node=node,
            )  # fmt: skip
            if lane.name in silent:
                self._mark_silent(lane, silent[lane.name], lane_statuses)
            statuses += lane_statuses
        return statuses

    @staticmethod
    def _silence(health: dict, now_ns: int) -> str | None:
        """Say how long a camera has been silent, or None while it sends.

        Silent: no RGB image for :data:`SILENT_PERIODS` of its usual period (at least
        :data:`SILENT_MIN_S`), as when the camera died while the others go on.
        """
        rgb = health.get("rgb")
        age = None if rgb is None else rgb.age_ns(now_ns)
        if age is None or rgb.rate_hz <= 0:
            return None
        if age / 1e9 <= max(SILENT_MIN_S, SILENT_PERIODS / rgb.rate_hz):
            return None
        return f"no image for {age / 1e9:.1f} s (usually {rgb.rate_hz:.1f} Hz)"

    @staticmethod
    def _mark_silent(lane: CameraLane, text: str, statuses: list) -> None:
        """Mark a silent camera: its RGB STALE, its pipeline WARN."""
        for status in statuses:
            if status.name.endswith(f"{lane.name}/rgb"):
                status.level, status.message = m.STALE, text
            elif status.name.endswith(f"{lane.name}/pipeline"):
                status.level = max(status.level, m.WARN)
                status.message = f"camera silent: {text}"

    def _points_status(self, lanes: list, received: int, decode: np.ndarray,
                       stats: PipelineStats, silent: dict) -> Any:  # fmt: skip
        """Return the shared LiDAR's status: received, rate, who fused it in their last frame.

        Silent cameras do not count: their last frame is old.
        """
        topic = input_topic(self.core.config, "points")
        fused_by = [lane.name for lane, lane_stats, *_ in lanes
                    if lane_stats.last_present.get("lidar", False) and lane.name not in silent]
        rate = max((item[2].get("points").rate_hz for item in lanes if item[2].get("points")),
                   default=0.0)  # fmt: skip
        last_issue = stats.last_issue.get("points", "")
        values = {"topic": topic, "modality": "lidar", "received": received,
                  "rate_hz": float(rate), "fused_by": ",".join(fused_by),
                  "decode_mean_ms": float(decode.mean()) if decode.size else float("nan"),
                  "issues": stats.issues.get("points", 0), "last_issue": last_issue}  # fmt: skip
        if received == 0:
            level, message = m.STALE, "no message received" + (f"; {last_issue}"
                                                               if last_issue else "")
        elif fused_by:
            level, message = m.OK, f"fused by {', '.join(fused_by)}"
        else:
            level, message = m.WARN, last_issue or "not fused by any camera's last frame"
        node = node_of(self.core.io)
        return m.diagnostic_status(f"{node}: points", level, message, values, node)
