"""The inference worker: the latest-frame slot, and each synced frame through path and model.

A queue would let slow inference build up latency frame after frame; a one-slot mailbox
(:class:`LatestSlot`) keeps only the newest synced frame, and a frame replaced before the
worker took it counts as dropped. Live, a worker thread blocks on :meth:`LatestSlot.take`;
replay drains the same slot synchronously after every callback, so both paths share the drop
semantics. :class:`FrameWorker` is the core's worker side: frame path, model, publishing,
the frame's record and its latency.

End-to-end latency = (node clock when the frame left the synchroniser − RGB stamp) + wall
time from there to the labels being published; live this is "RGB stamp → publish", in replay
the first part is the waiting in bag time and the second the real processing time. A stamp
more than :data:`MAX_CLOCK_AHEAD_NS` ahead of the node clock or more than
:data:`MAX_PLAUSIBLE_WAIT_NS` behind it (another clock domain: sim time vs wall time) gives
no latency sample, only an issue; a smaller lead counts as zero waiting.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from mlesam_ros.msgs import array_to_pointcloud2, numpy_to_image
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.diagnostics import FrameRecord
from mlesam_ros.pipeline.frame import FrameJob, FrameResult, Issue
from mlesam_ros.pipeline.image_transport import input_topic
from mlesam_ros.pipeline.model_output import check_model_output
from mlesam_ros.pipeline.timing import frame_stages
from mlesam_ros.text import bounded

MAX_PLAUSIBLE_WAIT_NS = 60_000_000_000
"""A frame older than this when it left the synchroniser is on another clock: no latency."""
MAX_CLOCK_AHEAD_NS = 1_000_000_000
"""A stamp this far ahead of the node clock is on another clock; less is clock skew (0 s)."""
CLOCK_ADVICE = "is the camera on another clock? set use_sim_time to match"
"""What to do about a stamp on another clock; a transport may say it its way (``clock_advice``)."""


def keep_degradations(stats: Any, job: FrameJob, degraded: dict[str, str]) -> list:
    """Keep each input's degradation in ``stats``; return the (input, note) pairs never logged.

    An input that came without one in this frame is clear again; one absent from the frame
    keeps its last state. The caller holds the core's lock (one camera's stats or a rig lane's).
    """
    for sensor in {"rgb", *job.messages}:
        note = degraded.get(sensor)
        if note:
            stats.degraded[sensor] = note
        else:
            stats.degraded.pop(sensor, None)
    new = [item for item in degraded.items() if item not in stats.degraded_logged]
    stats.degraded_logged.update(new)
    return new


def suspects_to_withhold(health: Any, images: dict) -> frozenset[str]:
    """Inspect ``images`` with sensor ``health``; return the suspects to withhold from the model.

    Never all of them: with every usable sensor suspect, the model still gets them (an empty
    input would only drop the frame) and diagnostics say why. The caller holds the lock.
    """
    health.inspect(images)
    withheld = frozenset(health.withheld() & set(images))
    return frozenset() if withheld and withheld >= set(images) else withheld


def off_clock_issue(job: FrameJob, topic: str, io: Any) -> Issue | None:
    """Return the issue of a frame stamped on another clock than the node's (None: same clock).

    Such a frame has no meaningful latency; ``io.clock_advice`` says how to fix it, per transport.
    """
    waited_ns = job.ready_ns - job.stamp_ns
    if -MAX_CLOCK_AHEAD_NS <= waited_ns <= MAX_PLAUSIBLE_WAIT_NS:
        return None
    advice = getattr(io, "clock_advice", CLOCK_ADVICE)
    return Issue("rgb", topic, f"header.stamp is {-waited_ns / 1e9:+.1f} s from the node clock; "
                               f"latency not measured ({advice})")  # fmt: skip


def stamp_latency_ms(job: FrameJob, finished_monotonic: float) -> float:
    """Stamp → publish latency of a frame on the node's clock (see :func:`off_clock_issue`)."""
    waited_ns = job.ready_ns - job.stamp_ns
    return max(waited_ns, 0) / 1e6 + (finished_monotonic - job.ready_monotonic) * 1e3


class LatestSlot:
    """One-element mailbox: ``put`` replaces, ``take`` waits for and removes the element."""

    def __init__(self) -> None:
        self._item: Any = None
        self._full = False
        self._closed = False
        self._condition = threading.Condition()
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; returns ``True`` when it replaced one the worker never took."""
        with self._condition:
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self._condition.notify()
            return replaced

    def take(self, timeout_s: float | None = None) -> Any:
        """Remove and return the item; ``None`` after ``timeout_s`` or once closed."""
        with self._condition:
            if not self._full and not self._closed:
                self._condition.wait(timeout_s)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake a waiting ``take`` for shutdown."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self) -> None:
        """Allow waiting again after :meth:`close` (lifecycle re-activation)."""
        with self._condition:
            self._closed = False


class FrameWorker:
    """The worker side of :class:`~mlesam_ros.pipeline.core.SegmentationCore` (its base).

    Uses the core's ``config``, ``path``, ``segmenter``, ``stats``, ``listeners``,
    ``_publishers``, ``_slot``, ``_lock``, ``_running``, ``_note`` and ``_log_once``.
    """

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
            text = f"frame {job.stamp_ns} failed: {type(error).__name__}: {error}"
            with self._lock:
                self.stats.inference_errors += 1
                self.stats.dropped["inference_error"] += 1
                self.stats.last_error = bounded(text, 300)
            self._log_once("error", "frame", text)

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
        self._note_degraded(job, prepared)
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
        prepared_at = time.monotonic()
        withheld = self._inspect_health(prepared)
        images, present = path.model_input(prepared, withheld)
        inputs_at = time.monotonic()
        segmentation = self.segmenter.segment(images, present)
        inferred_at = time.monotonic()
        check_model_output(segmentation, len(path.class_names))
        if self.health is not None:
            fused = {m: bool(present[0, slot]) for slot, m in enumerate(path.modalities)}
            with self._lock:
                self.health.routing(getattr(segmentation, "routing_weights", None), fused)
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
        stages = frame_stages(
            sync_wait_ms=None if job.rgb_arrival_ns is None
            else (job.ready_ns - job.rgb_arrival_ns) / 1e6,
            queue_ms=(started - job.ready_monotonic) * 1e3,
            prepare_ms=(prepared_at - started) * 1e3,
            path_steps_ms=getattr(path, "stage_ms", {}),
            model_input_ms=(inputs_at - prepared_at) * 1e3,
            inference_ms=(inferred_at - inputs_at) * 1e3,
            outputs_ms=(finished - inferred_at) * 1e3,
        )  # fmt: skip
        record = FrameRecord(
            job.stamp_ns,
            dict(result.present),
            latency_ms,
            processing_ms,
            tuple(str(issue) for issue in result.issues),
            self.health.suspects() if self.health is not None else {},
            stages,
        )
        with self._lock:
            stats = self.stats
            stats.published += 1
            if latency_ms is None:
                stats.latency_unmeasured += 1
            else:
                stats.latencies_ms.append(latency_ms)
            stats.processing_ms.append(processing_ms)
            stats.stages.add(stages)
            stats.last_present = dict(result.present)
        for listener in self.listeners:
            try:
                listener(result, record)
            except Exception as error:  # the frame is published: an observer error is no drop
                with self._lock:
                    self.stats.callback_errors += 1
                self._log_once("error", "listener", f"frame listener failed: {error!r}")
        return result

    def _note_degraded(self, job: FrameJob, prepared: Any) -> None:
        """Keep each input's degradation for diagnostics; log each kind once."""
        with self._lock:
            new = keep_degradations(self.stats, job, prepared.degraded)
        for sensor, note in new:
            topic = input_topic(self.config, sensor) if sensor in self.config.topics else ""
            self._once.log("warning", str(Issue(sensor, topic, f"degraded: {note}")))

    def _inspect_health(self, prepared: Any) -> frozenset[str]:
        """Run the sensor-health checks; return the sensors to withhold from the model."""
        if self.health is None:
            return frozenset()
        with self._lock:
            return suspects_to_withhold(self.health, prepared.images)

    def _latency_ms(self, job: FrameJob, finished_monotonic: float) -> float | None:
        """Stamp → publish latency, or None when the stamp is on another clock (see module)."""
        issue = off_clock_issue(job, input_topic(self.config, "rgb"), self.io)
        if issue is not None:
            self._note(issue)
            return None
        return stamp_latency_ms(job, finished_monotonic)

    def _publish(self, result: FrameResult) -> None:
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
