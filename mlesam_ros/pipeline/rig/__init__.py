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

from mlesam_ros.pipeline.rig.lane import CameraLane, camera_topic
from mlesam_ros.pipeline.rig.rig import CameraRig

__all__ = ["CameraLane", "CameraRig", "camera_topic"]
