"""A rig's accounting: issues and drops per camera; /diagnostics per camera and LiDAR."""

from __future__ import annotations

import collections
import copy
from typing import Any

import numpy as np

from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.diagnostics import PipelineStats, diagnostic_statuses
from mlesam_ros.pipeline.frame import Issue
from mlesam_ros.pipeline.image_transport import input_topic
from mlesam_ros.pipeline.naming import node_of
from mlesam_ros.pipeline.rig.lane import SILENT_MIN_S, SILENT_PERIODS, CameraLane


class RigDiagnostics:
    """Counters and ``/diagnostics`` statuses of a :class:`~mlesam_ros.pipeline.rig.CameraRig`."""

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
        """Mark a silent camera: its RGB STALE, its pipeline WARN, its other sensors unused.

        Without frames of its camera a depth or thermal image is fused into nothing, whatever
        its last frame said: it must not read "OK, fused".
        """
        for status in statuses:
            if status.name.endswith(f"{lane.name}/rgb"):
                status.level, status.message = m.STALE, text
            elif status.name.endswith(f"{lane.name}/pipeline"):
                status.level = max(status.level, m.WARN)
                status.message = f"camera silent: {text}"
            elif status.name.rsplit(": ", 1)[-1].startswith(f"{lane.name}/"):
                status.level = max(status.level, m.WARN)
                status.message = f"not fused: the camera is silent ({text})"

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
