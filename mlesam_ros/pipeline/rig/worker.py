"""A rig's worker: the ready frames through the model in one batch, outputs, fused cloud."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mlesam_ros.msgs import array_to_pointcloud2, numpy_to_image
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.diagnostics import FrameRecord
from mlesam_ros.pipeline.frame import FrameJob, Issue
from mlesam_ros.pipeline.fusion import CameraPoints, camera_points, fuse_points
from mlesam_ros.pipeline.image_transport import input_topic
from mlesam_ros.pipeline.model_output import check_model_output
from mlesam_ros.pipeline.rig.lane import CameraLane
from mlesam_ros.pipeline.timing import frame_stages
from mlesam_ros.pipeline.worker import (
    keep_degradations,
    off_clock_issue,
    stamp_latency_ms,
    suspects_to_withhold,
)
from mlesam_ros.text import bounded


class RigWorker:
    """Batching and one batch of a :class:`~mlesam_ros.pipeline.rig.CameraRig`."""

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
            new = keep_degradations(lane.stats, job, prepared.degraded)
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
            return suspects_to_withhold(lane.health, prepared.images)

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
        issue = off_clock_issue(job, lane.rgb_topic, self.core.io)
        if issue is not None:
            self.note(lane, issue)
            return None
        return stamp_latency_ms(job, finished)
