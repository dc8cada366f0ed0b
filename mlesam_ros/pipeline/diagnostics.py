"""What the node reports about itself: counters, the latency window, logs, ``/diagnostics``.

:class:`PipelineStats` holds the counters since configure, :class:`FrameRecord` what each
published frame leaves behind (replay and the diagnostics read them), :class:`OnceLog` logs a
kind of problem on its 1st, 10th, 100th, ... occurrence instead of every frame, and
:func:`diagnostic_statuses` turns a snapshot of all of it into ``/diagnostics`` statuses:
one ``<node>: pipeline`` status (OK / WARN when frames were dropped since the last report /
ERROR on errors) and one ``<node>: <input>`` per sensor input (fused, or why not), ``<node>``
being the node's fully qualified name (``/mlesam``, ``/front/mlesam``).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.image_transport import input_topic
from mlesam_ros.pipeline.sensors import MODALITY_OF_INPUT
from mlesam_ros.pipeline.timing import StageWindow
from mlesam_ros.text import bounded

LATENCY_WINDOW = 200
"""Frames kept for the latency percentiles in diagnostics."""


@dataclass
class FrameRecord:
    """What replay and diagnostics keep per published frame."""

    stamp_ns: int
    present: dict[str, bool]
    latency_ms: float | None  # None: the stamp is on another clock than the node's
    processing_ms: float
    issues: tuple[str, ...]
    suspects: dict[str, str] = field(default_factory=dict)  # sensor health: modality → why
    stages_ms: dict[str, float] = field(default_factory=dict)  # pipeline.timing.STAGES
    camera: str = ""  # the camera's name in a rig (cameras.names), '' for the one camera


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
    last_error: str = ""  # the last frame that failed, and why
    # Input key → what it lacks that the model's encoding uses (fused, but degraded), and the
    # (input, text) pairs already logged: each is logged once.
    degraded: dict[str, str] = field(default_factory=dict)
    degraded_logged: set[tuple[str, str]] = field(default_factory=set)
    last_present: dict[str, bool] = field(default_factory=dict)
    latencies_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW)
    )
    processing_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW)
    )
    stages: StageWindow = field(default_factory=StageWindow)

    def snapshot(self) -> PipelineStats:
        """Return a copy that later frames do not change (take it under the core's lock)."""
        return dataclasses.replace(
            self,
            dropped=collections.Counter(self.dropped),
            issues=collections.Counter(self.issues),
            last_issue=dict(self.last_issue),
            degraded=dict(self.degraded),
            degraded_logged=set(self.degraded_logged),
            last_present=dict(self.last_present),
            latencies_ms=collections.deque(self.latencies_ms, maxlen=LATENCY_WINDOW),
            processing_ms=collections.deque(self.processing_ms, maxlen=LATENCY_WINDOW),
            stages=self.stages.copy(),
        )


class OnceLog:
    """Log the 1st, 10th, 100th, ... occurrence of each kind of problem (no log flood).

    ``logger`` is called for the current logger at each line (the transport's may change).
    """

    def __init__(self, logger: Callable[[], Any]) -> None:
        self._logger = logger
        self._counts: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, level: str, key: str, text: str) -> None:
        """Log ``text`` at ``level`` if this is a logged occurrence of ``key``."""
        with self._lock:
            self._counts[key] += 1
            count = self._counts[key]
        if count == 1 or np.log10(count).is_integer():
            suffix = "" if count == 1 else f" (x{count})"
            self.log(level, f"{text}{suffix}")

    def log(self, level: str, text: str) -> None:
        """Log at ``level`` with one call site per severity.

        rclpy remembers the severity of each logging call site and raises ``ValueError:
        Logger severity cannot be changed between calls`` when one line logs at two levels,
        so ``getattr(logger, level)(...)`` would throw inside frame processing.
        """
        logger = self._logger()
        text = bounded(text)  # one line of bounded length, whatever an input echoed into it
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)


def diagnostic_statuses(
    config: NodeConfig,
    stats: PipelineStats,
    health: Mapping[str, Any],
    sync_stats: Any,
    dropped_by_reason: Mapping[str, int],
    newly_dropped: int,
    model: Mapping[str, str],
    modalities: Sequence[str],
    dropped_by_worker: int,
    sensors: Mapping[str, Any] | None = None,
    withheld: frozenset[str] = frozenset(),
    scope: str = "",
    inputs: Sequence[str] | None = None,
    node: str = "/" + m.NODE_NAME,
) -> list[Any]:
    """Return the statuses of ``/diagnostics`` from a snapshot of the core (under its lock).

    ``health``: the synchroniser's per-input health; ``model``: backend, device and model
    (artefact) of the segmenter; ``newly_dropped``: frames dropped since the last report;
    ``sensors``: sensor health per modality (:class:`~mlesam_ros.pipeline.health.SensorState`)
    and ``withheld`` the modalities it keeps from the model. ``node``: the fully qualified
    node name, which names every status and is its ``hardware_id``
    (:mod:`~mlesam_ros.pipeline.naming`). ``scope`` prefixes every status name after
    ``<node>: `` (a camera of a rig: ``front/``); ``inputs`` limits the sensor statuses to
    those inputs (default: every enabled one).
    """
    inputs = config.enabled_inputs if inputs is None else tuple(inputs)
    sensors = sensors or {}
    latencies = np.asarray(stats.latencies_ms, dtype=np.float64)
    processing = np.asarray(stats.processing_ms, dtype=np.float64)
    errors = stats.inference_errors + stats.callback_errors
    dropped = sum(dropped_by_reason.values())
    percentiles = (
        np.percentile(latencies, [50, 90, 99]) if latencies.size else (float("nan"),) * 3
    )
    pipeline_values = {
        **model,
        "modalities": ",".join(modalities),
        "frames_published": stats.published,
        "frames_skipped": stats.skipped,
        "dropped_frames": dropped,
        "dropped_by_worker": dropped_by_worker,
        "sync_timeouts": sync_stats.emitted_on_timeout,
        "latency_p50_ms": float(percentiles[0]),
        "latency_p90_ms": float(percentiles[1]),
        "latency_p99_ms": float(percentiles[2]),
        "processing_mean_ms": float(processing.mean()) if processing.size else float("nan"),
        "latency_unmeasured": stats.latency_unmeasured,
        "errors": errors,
        "last_error": stats.last_error,
    }
    pipeline_values.update(stats.stages.values())  # where the time goes, p50/p90 per stage
    pipeline_values.update({f"dropped_{key}": n for key, n in dropped_by_reason.items()})
    if errors:
        level = m.ERROR
        message = f"errors, last: {stats.last_error}" if stats.last_error else "errors, see log"
    elif newly_dropped > 0:
        level = m.WARN
        message = f"{newly_dropped} frames dropped since the last report (" + ", ".join(
            f"{key}: {n}" for key, n in dropped_by_reason.items()
        ) + " in total)"
    else:
        level, message = m.OK, "ok"
    statuses = [m.diagnostic_status(f"{node}: {scope}pipeline", level, message, pipeline_values,
                                    node)]  # fmt: skip
    last_issue, issue_counts = stats.last_issue, stats.issues
    for key in inputs:
        sensor = health.get(key)
        fused = stats.last_present.get(MODALITY_OF_INPUT[key], False)
        values = {
            "topic": input_topic(config, key),
            "modality": MODALITY_OF_INPUT[key],
            "fused": fused,
            "rate_hz": float(sensor.rate_hz) if sensor else 0.0,
            "received": sensor.received if sensor else 0,
            "missing": sensor.missing if sensor else 0,
            "issues": issue_counts.get(key, 0),
            "last_issue": last_issue.get(key, ""),
            "degraded": stats.degraded.get(key, ""),
        }
        state = sensors.get(MODALITY_OF_INPUT[key])
        if state is not None:
            values.update({
                "router_weight": state.router_weight,
                "usual_router_weight": state.usual_router_weight,
                "suspect": state.suspect,
                "suspect_frames": state.suspect_frames,
            })  # fmt: skip
        if sensor is None or sensor.received == 0:
            level, message = m.STALE, "no message received"
            if last_issue.get(key):
                message += f"; {last_issue[key]}"
        elif state is not None and state.suspect:
            withheld_now = MODALITY_OF_INPUT[key] in withheld
            level = m.WARN
            message = f"suspect: {state.reason}" + (
                "; withheld from the model" if withheld_now else "; still fused"
            )
        elif fused and stats.degraded.get(key):
            level, message = m.WARN, f"fused, degraded: {stats.degraded[key]}"
        elif fused:
            level, message = m.OK, "fused"
        else:
            level, message = m.WARN, last_issue.get(key) or "not in the last frame"
        statuses.append(m.diagnostic_status(f"{node}: {scope}{key}", level, message, values,
                                            node))  # fmt: skip
    for source in sorted(set(issue_counts) - set(inputs)):
        # Problems outside the sensors (tf, a topic of the wrong type): WARN with the last.
        values = {"issues": issue_counts[source], "last_issue": last_issue.get(source, "")}
        statuses.append(m.diagnostic_status(f"{node}: {scope}{source}", m.WARN,
                                            last_issue.get(source, ""), values, node))  # fmt: skip
    return statuses
