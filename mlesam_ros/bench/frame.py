"""The "full frame" row of ``mlesam bench``: one synced frame through the whole node path.

:func:`full_frame_step` renders one synthetic frame with every sensor, turns it into the ROS
messages a robot would publish, and returns a step that runs
:meth:`~mlesam_ros.pipeline.core.SegmentationCore.process` on it: decoding, depth/thermal
registration, LiDAR projection, encoding, resizing, inference, label upsampling, overlay,
painted points and message building, publishing into a transport that discards messages.
Compare it with the "model" row to see what the frame path costs around inference.

:func:`stage_timings` (``mlesam bench --stages``, ``benchmarks/bench_frame_stages.py``) times
the same path stage by stage at any camera size and LiDAR density, in wall and CPU time.

This file imports only what every version of the frame path has (``FramePath``, ``FrameJob``,
``NodeConfig``, ``TfBuffer``, the message converters), so ``benchmarks/bench_frame_stages.py``
can load it by path into an older checkout and time the old path with the same harness.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from mlesam_ros.data.synth import SyntheticDrive, default_rig
from mlesam_ros.msgs import array_to_pointcloud2, camera_to_camera_info, numpy_to_image
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.frame import FrameJob, FramePath
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


def synthetic_job(
    size: tuple[int, int], seed: int = 0, points: int = 65536, depth_offset_m: float = 0.0
) -> tuple[Any, TfBuffer]:
    """One synthetic frame (camera ``size`` (H, W)) as a FrameJob of ROS messages plus its tf.

    ``points`` is the LiDAR's points per sweep (64 beams, so a multiple of 64).
    ``depth_offset_m`` moves the depth camera's tf sideways, so depth is *not* registered to
    the RGB camera and the node reprojects it (for timing; the image is not re-rendered).
    """
    rig = default_rig(width=size[1], height=size[0], lidar_azimuth_steps=max(8, points // 64))
    frame = SyntheticDrive(seed=seed, rig=rig).frame(0)
    if depth_offset_m:
        moved = rig.depth.T_base_from_sensor.copy()
        moved[1, 3] += depth_offset_m
        rig = dataclasses.replace(rig, depth=dataclasses.replace(rig.depth,
                                                                 T_base_from_sensor=moved))
    return frame_job(frame, rig)


def frame_job(frame: Any, rig: Any) -> tuple[Any, TfBuffer]:
    """Turn a rendered synthetic frame into a robot's ROS messages (a FrameJob) plus tf."""
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


# -- per-stage benchmark (``mlesam bench --stages``) ----------------------------------------
# Written against the FramePath API alone (prepare / model_input / postprocess, plus the
# optional ``stage_ms`` the frame path fills in), so ``benchmarks/bench_frame_stages.py`` can
# load this file into an older checkout and time the old path with the very same harness.

OUTPUT_SETS = {
    "all": {"confidence": True, "overlay": True, "points": True},
    "labels": {"confidence": False, "overlay": False, "points": False},
}


def stage_timings(
    segmenter: Any,
    size: tuple[int, int],
    points: int = 131072,
    frames: int = 50,
    warmup: int = 5,
    outputs: str = "all",
    depth_offset_m: float = 0.0,
) -> dict[str, Any]:
    """Time the node's frame path on one synthetic frame, stage by stage.

    Returns p50/p90 ms per stage (``prepare``/``model_input``/``inference``/``postprocess``/
    ``publish`` always; the finer stages the frame path records in ``stage_ms`` when it has
    them), plus ``overhead`` (frame minus inference) and ``frame``; ``cpu_p50`` is the median
    CPU time of this process (fine stages, inference, frame, overhead), which other jobs on a
    shared core inflate far less than wall time. Each frame is a fresh
    ``prepare`` of the same messages, so caches behave as on a robot with a fixed calibration.
    """
    if outputs not in OUTPUT_SETS:
        raise ValueError(f"outputs: choose from {', '.join(OUTPUT_SETS)}, got '{outputs}'")
    wants = OUTPUT_SETS[outputs]
    job, tf = synthetic_job(size, points=points, depth_offset_m=depth_offset_m)
    path = FramePath(segmenter, NodeConfig.from_parameters())
    samples: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def run_once(record: bool) -> None:
        cpu_start = time.process_time()
        marks = [time.perf_counter()]
        prepared = path.prepare(job, tf.lookup)
        if prepared.issues:
            raise ValueError("stage bench: " + "; ".join(str(i) for i in prepared.issues))
        marks.append(time.perf_counter())
        images, present = path.model_input(prepared)
        marks.append(time.perf_counter())
        cpu_before = time.process_time()
        segmentation = segmenter.segment(images, present)
        cpu_inference = time.process_time() - cpu_before
        marks.append(time.perf_counter())
        result = path.postprocess(prepared, segmentation.labels, segmentation.confidence,
                                  present, want_confidence=wants["confidence"],
                                  want_overlay=wants["overlay"], want_points=wants["points"])
        marks.append(time.perf_counter())
        numpy_to_image(result.labels, path.label_encoding, result.header)
        if result.overlay is not None:
            numpy_to_image(result.overlay, "rgb8", result.header)
        if result.confidence is not None:
            numpy_to_image(result.confidence, "32FC1", result.header)
        if result.points is not None:
            array_to_pointcloud2(result.points, result.points_header)
        marks.append(time.perf_counter())
        cpu_frame = time.process_time() - cpu_start
        if not record:
            return
        names = ("prepare", "model_input", "inference", "postprocess", "publish")
        for name, start, end in zip(names, marks, marks[1:], strict=False):
            samples.setdefault(name, []).append((end - start) * 1e3)
        frame_ms = (marks[-1] - marks[0]) * 1e3
        samples.setdefault("frame", []).append(frame_ms)
        samples.setdefault("overhead", []).append(frame_ms - samples["inference"][-1])
        for name, value in (getattr(path, "stage_ms", None) or {}).items():
            samples.setdefault(f"  {name}", []).append(value)
        for name, value in (getattr(path, "stage_cpu_ms", None) or {}).items():
            cpu.setdefault(f"  {name}", []).append(value)
        cpu.setdefault("inference", []).append(cpu_inference * 1e3)
        cpu.setdefault("frame", []).append(cpu_frame * 1e3)
        cpu.setdefault("overhead", []).append((cpu_frame - cpu_inference) * 1e3)

    for _ in range(warmup):
        run_once(False)
    for _ in range(frames):
        run_once(True)
    stages = {name: {"p50": float(np.percentile(values, 50)),
                     "p90": float(np.percentile(values, 90))}
              for name, values in samples.items()}  # fmt: skip
    for name, values in cpu.items():
        stages.setdefault(name, {})["cpu_p50"] = float(np.percentile(values, 50))
    return {"size": f"{size[1]}x{size[0]}", "points": points, "frames": frames,
            "outputs": outputs, "depth_offset_m": depth_offset_m, "stages": stages}  # fmt: skip


def thread_setup(threads: int) -> dict[str, int]:
    """Resolve ``--threads`` (0 = the CPUs this process may run on) and apply it to torch/cv2.

    ONNX Runtime's default (0) sizes its pool to every core of the machine and ignores CPU
    affinity, so a ``taskset -c 1`` run would oversubscribe its one core: resolve 0 here.
    """
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 1
    resolved = threads if threads > 0 else allowed
    cv2.setNumThreads(resolved)
    try:
        import torch

        torch.set_num_threads(resolved)
    except ImportError:
        pass
    return {"threads": resolved, "cpus_allowed": allowed}


def stage_table(
    reports: list[dict[str, Any]],
    baseline: list[dict[str, Any]] | None = None,
    p90: bool = False,
    metric: str = "p50",
) -> str:
    """Markdown table of ``metric`` ms per stage and size; with ``baseline``, old → new (×).

    ``metric`` is ``p50`` (wall) or ``cpu_p50``; ``p90`` adds the wall 90th percentile.
    """
    sizes = [r["size"] for r in reports]
    names: list[str] = []
    for report in (*reports, *(baseline or ())):
        names += [n for n in report["stages"] if n not in names]
    order = ["prepare", "model_input", "inference", "postprocess", "publish", "frame", "overhead"]
    coarse = [n for n in order if n in names]
    fine = [n for n in names if n not in order]
    old = {r["size"]: r["stages"] for r in baseline or ()}
    unit = ("p50 / p90 ms" if p90 else "p50 ms") if metric == "p50" else "CPU ms, median"
    lines = [f"| stage ({unit}) | " + " | ".join(sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]  # fmt: skip
    for name in [*fine, *coarse]:
        if not any(metric in r["stages"].get(name, {}) for r in reports):
            continue
        cells = []
        for report in reports:
            new = report["stages"].get(name, {}).get(metric)
            before = old.get(report["size"], {}).get(name, {}).get(metric)
            text = "" if new is None else f"{new:.1f}"
            if p90 and new is not None:
                text += f" / {report['stages'][name]['p90']:.1f}"
            if before is not None and new:
                text = f"{before:.1f} → {text} (×{before / new:.1f})"
            cells.append(text)
        label = f"**{name}**" if name == "overhead" else name.strip()
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
