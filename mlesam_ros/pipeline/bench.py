"""The "full frame" row of ``mlesam bench``: one synced frame through the whole node path.

:func:`full_frame_step` renders one synthetic frame with every sensor, turns it into the ROS
messages a robot would publish, and returns a step that runs
:meth:`~mlesam_ros.pipeline.core.SegmentationCore.process` on it: decoding, depth/thermal
registration, LiDAR projection, encoding, resizing, inference, label upsampling, overlay,
painted points and message building, publishing into a transport that discards messages.
Compare it with the "model" row to see what the frame path costs around inference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mlesam_ros.pipeline.tf_buffer import TfBuffer


class _Discard:
    """A publisher with one listener that throws every message away."""

    def publish(self, data: bytes) -> None:
        """Drop ``data``."""

    def has_subscribers(self) -> bool:
        """Return True, so every optional output is computed."""
        return True


class MemoryTransport:
    """:class:`~mlesam_ros.pipeline.interface.NodeIO` with no I/O: fixed clock, tf in memory."""

    def __init__(self, parameters: Mapping[str, Any] | None = None, now_ns: int = 0) -> None:
        self.logger = logging.getLogger("mlesam.bench")
        self._parameters = dict(parameters or {})
        self.now = int(now_ns)
        self.tf = TfBuffer()

    def parameters(self) -> Mapping[str, Any]:
        """Return the parameter overrides."""
        return self._parameters

    def now_ns(self) -> int:
        """Return the fixed clock."""
        return self.now

    def subscribe(self, topic: str, msgtype: str, callback: Callable, reliability: str) -> None:
        """Ignore: the bench hands frames to the core directly."""

    def create_publisher(
        self, topic: str, msgtype: str, latched: bool = False, **qos: Any
    ) -> _Discard:
        """Return a publisher that discards."""
        return _Discard()

    def create_timer(self, period_ns: int, callback: Callable[[], None]) -> None:
        """Ignore: nothing times out in the bench."""

    def lookup_transform(
        self, target_frame: str, source_frame: str, stamp_ns: int, timeout_ns: int
    ) -> np.ndarray:
        """Look up in the in-memory tf tree."""
        return self.tf.lookup(target_frame, source_frame, stamp_ns)


def synthetic_job(size: tuple[int, int], seed: int = 0) -> tuple[Any, TfBuffer]:
    """One synthetic frame (camera ``size`` (H, W)) as a FrameJob of ROS messages plus its tf."""
    from mlesam_ros.data.synth import SyntheticDrive, default_rig
    from mlesam_ros.msgs import array_to_pointcloud2, camera_to_camera_info, numpy_to_image
    from mlesam_ros.pipeline.frame import FrameJob

    rig = default_rig(width=size[1], height=size[0])
    frame = SyntheticDrive(seed=seed, rig=rig).frame(0)
    stamps = frame.stamps_ns
    depth = np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32)
    images = {"rgb": (frame.rgb, "rgb8"), "depth": (depth, "32FC1"),
              "thermal": (frame.thermal, "mono16")}  # fmt: skip
    messages, infos = {}, {}
    for sensor, (array, encoding) in images.items():
        spec = getattr(rig, sensor)
        messages[sensor] = numpy_to_image(array, encoding, stamps[sensor], spec.frame_id)
        infos[sensor] = camera_to_camera_info(spec.camera, stamps[sensor], spec.frame_id)
    messages["points"] = array_to_pointcloud2(frame.lidar, stamps["lidar"], rig.lidar.frame_id)
    tf = TfBuffer()
    for spec in (rig.rgb, rig.depth, rig.thermal, rig.lidar):
        tf.add(rig.base_frame, spec.frame_id, spec.T_base_from_sensor, 0, static=True)
    return FrameJob(stamps["rgb"], messages, infos, stamps["rgb"]), tf


def full_frame_step(segmenter: Any, camera_size: tuple[int, int] = (480, 640)) -> Callable:
    """Build a zero-argument step running the node core's frame path on one synthetic VGA frame."""
    import dataclasses
    import time

    from mlesam_ros.pipeline.core import SegmentationCore

    job, tf = synthetic_job(camera_size)
    transport = MemoryTransport(now_ns=job.stamp_ns)
    transport.tf = tf
    core = SegmentationCore(transport, threaded=False, segmenter=segmenter)
    core.configure()

    def step() -> object:
        fresh = dataclasses.replace(job, ready_monotonic=time.monotonic())
        result = core.process(fresh)
        if result is None:
            raise ValueError("full frame step: the frame was skipped: "
                             + "; ".join(core.stats.last_issue.values()))  # fmt: skip
        return result

    return step
