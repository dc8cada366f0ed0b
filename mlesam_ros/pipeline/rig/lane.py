"""One camera of a rig: its configuration view, frame path, synchroniser, slot and counters."""

from __future__ import annotations

import collections
from typing import Any

from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import CameraConfig, NodeConfig
from mlesam_ros.pipeline.diagnostics import PipelineStats
from mlesam_ros.pipeline.frame import FrameJob, FramePath
from mlesam_ros.pipeline.fusion import CameraPoints
from mlesam_ros.pipeline.health import SensorHealth
from mlesam_ros.pipeline.image_transport import input_topic

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
