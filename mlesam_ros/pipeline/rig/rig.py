"""The rig: several cameras around one LiDAR in one node core (see the package docstring)."""

from __future__ import annotations

import collections
import threading
from typing import Any

from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.frame import FramePath
from mlesam_ros.pipeline.health import SensorHealth
from mlesam_ros.pipeline.image_transport import input_msgtype, input_topic
from mlesam_ros.pipeline.rig.diagnostics import RigDiagnostics
from mlesam_ros.pipeline.rig.ingest import RigIngest
from mlesam_ros.pipeline.rig.lane import (
    BATCH_WINDOW,
    CAMERA_OUTPUTS,
    SYNC_FIELDS,
    CameraLane,
    camera_topic,
)
from mlesam_ros.pipeline.rig.worker import RigWorker
from mlesam_ros.pipeline.sweep import SweepCache


class CameraRig(RigIngest, RigWorker, RigDiagnostics):
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
