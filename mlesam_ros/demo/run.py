"""``mlesam demo``: a synthetic drive, replayed through the node core, rendered for a human.

Steps: (1) render a short drive with :class:`~mlesam_ros.data.synth.SyntheticDrive` on a
per-frame schedule (daylight, then a LiDAR dropout, then night) and record it with
:class:`~mlesam_ros.data.export.BagRecorder`; (2) replay it with
:func:`mlesam_ros.replay.replay_bag` (the same code path as ``mlesam replay`` and the ROS
node) with the shipped demo model; (3) draw ``strip.png`` (one captioned row per stretch of
the drive) and ``demo.gif`` (every frame) with :mod:`mlesam_ros.demo.render`, and write
``summary.json`` with mIoU per modality combination and per condition. The schedule uses one
drive per condition over the same street and the same frame indices, so the ego keeps driving
while the light changes. Runs on the lean install (ONNX Runtime, no torch).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.demo.render import DemoFrame

DEFAULT_OUT = Path("mlesam_demo")
DEFAULT_FRAMES = 48
DEFAULT_SIZE = (240, 320)  # (H, W)
FRAME_PERIOD_S = 0.1  # SyntheticDrive's default: 10 Hz


@dataclass(frozen=True)
class Schedule:
    """Which condition and which sensor failures each frame of the demo drive has."""

    frames: int
    dropout: tuple[float, float] = (0.35, 0.55)  # LiDAR silent over this fraction of the drive
    night_from: float = 0.65  # night from this fraction on

    def condition(self, index: int) -> str:
        """``sun`` or ``night``."""
        return "night" if index >= round(self.night_from * self.frames) else "sun"

    def lidar_missing(self, index: int) -> bool:
        """Whether the LiDAR message of frame ``index`` is dropped."""
        start, end = (round(fraction * self.frames) for fraction in self.dropout)
        return start <= index < end

    def strip_frames(self) -> list[int]:
        """Return the middle frame of each stretch: daylight, LiDAR dropout, night."""
        indices = range(self.frames)
        dropout = [i for i in indices if self.lidar_missing(i)]
        night = [i for i in indices if self.condition(i) == "night"]
        daylight = [i for i in indices if i not in dropout and i not in night]
        before = [i for i in daylight if not dropout or i < dropout[0]]
        stretches = [before or daylight, dropout, night]
        return [stretch[len(stretch) // 2] for stretch in stretches if stretch]


@dataclass
class RecordedDrive:
    """What the demo keeps of the recorded drive, by RGB stamp: index, condition, images."""

    index: dict[int, int] = field(default_factory=dict)
    condition: dict[int, str] = field(default_factory=dict)
    rgb: dict[int, np.ndarray] = field(default_factory=dict)
    truth: dict[int, np.ndarray] = field(default_factory=dict)


def record_drive(
    bag: Path, schedule: Schedule, size: tuple[int, int], seed: int = 3, progress: bool = True
) -> RecordedDrive:
    """Render the scheduled drive into ``bag``; return its RGB frames and ground truth."""
    from tqdm import tqdm

    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig

    rig = default_rig(width=size[1], height=size[0])
    drives: dict[str, SyntheticDrive] = {}
    drive = RecordedDrive()
    with BagRecorder(bag) as recorder:
        for index in tqdm(range(schedule.frames), desc="record", unit="frame",
                          disable=not progress):  # fmt: skip
            condition = schedule.condition(index)
            if condition not in drives:
                drives[condition] = SyntheticDrive(seed=seed, condition=condition, rig=rig)
            frame = drives[condition].frame(index)
            if schedule.lidar_missing(index):
                frame.lidar = None
            recorder.write(frame)
            stamp = frame.stamps_ns["rgb"]
            drive.index[stamp], drive.condition[stamp] = index, condition
            drive.rgb[stamp], drive.truth[stamp] = frame.rgb, frame.labels
    return drive


def start_kernel_compile() -> subprocess.Popen | None:
    """Compile the node's numba kernels into numba's on-disk cache in a second process.

    On a fresh install the first node start compiles them (~15 s on 2 cores); started before
    the drive is rendered, that happens on the other core meanwhile and the replay loads them
    from the cache. ``None`` without numba (the node then runs its numpy paths).
    """
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        return None
    code = "import mlesam_ros.pipeline.frame\nfrom mlesam_ros import jit\njit.warm_up()\n"
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def frame_miou(labels: np.ndarray, truth: np.ndarray | None, num_classes: int) -> float | None:
    """Return one frame's mIoU over the classes in its ground truth or prediction."""
    from mlesam_ros.data.resample import nearest_resize
    from mlesam_ros.train.metrics import ConfusionMatrix

    if truth is None:
        return None
    if truth.shape != labels.shape:
        truth = nearest_resize(truth, labels.shape)
    matrix = ConfusionMatrix(num_classes)
    try:
        matrix.update(labels, truth)
    except ValueError:  # ground truth of another class set: no score, as in the replay
        return None
    value = matrix.miou()
    return None if not np.isfinite(value) else value


class _Collector:
    """Keeps what each published frame's row shows (the replay's ``on_frame`` listener)."""

    def __init__(self, drive: RecordedDrive) -> None:
        self.drive = drive
        self.frames: list[DemoFrame] = []

    def __call__(self, result: Any, record: Any) -> None:
        stamp = result.stamp_ns
        labels = np.asarray(result.labels)
        rgb = self.drive.rgb.get(stamp)
        if rgb is None:
            rgb = np.zeros((*labels.shape, 3), dtype=np.uint8)
        truth = self.drive.truth.get(stamp)
        points = result.points
        self.frames.append(
            DemoFrame(
                index=self.drive.index.get(stamp, len(self.frames)),
                stamp_ns=stamp,
                condition=self.drive.condition.get(stamp, "?"),
                rgb=rgb,
                truth=truth,
                labels=labels.copy(),
                overlay=np.array(result.overlay) if result.overlay is not None else rgb,
                point_pixels=None if points is None else np.array(result.point_pixels),
                point_labels=None if points is None else np.array(points["label"]),
                present=dict(result.present),
                miou=frame_miou(labels, truth, len(result.palette)),
            )
        )
        self.palette = np.asarray(result.palette)


def _write_media(
    collector: _Collector,
    out: Path,
    schedule: Schedule,
    class_names: list[str],
    alpha: float,
    title: str,
    progress: bool,
) -> dict[str, str]:
    """Write strip.png (one row per stretch of the drive) and demo.gif (every frame)."""
    from PIL import Image
    from tqdm import tqdm

    from mlesam_ros.demo import render

    frames = collector.frames
    if not frames:
        return {}
    palette = collector.palette
    chosen = [
        min(frames, key=lambda frame: abs(frame.index - wanted))
        for wanted in schedule.strip_frames()
    ]
    strip_path = out / "strip.png"
    Image.fromarray(
        render.strip(chosen, class_names, palette, alpha, FRAME_PERIOD_S, title)
    ).save(strip_path)
    width = frames[0].labels.shape[1] * len(render.COLUMNS)
    header = render.column_header(frames[0].labels.shape[1])
    footer = render.legend(class_names, palette, width)[0]
    pictures = []
    for frame in tqdm(frames, desc="render", unit="frame", disable=not progress):
        picture = render.animation_frame(frame, header, footer, palette, alpha, FRAME_PERIOD_S)
        # An adaptive 256-colour palette per frame (fast octree): camera images need more
        # colours than the class palette; median cut is ~10x slower for no visible gain.
        pictures.append(Image.fromarray(picture).quantize(256, Image.Quantize.FASTOCTREE))
    gif_path = out / "demo.gif"
    pictures[0].save(gif_path, save_all=True, append_images=pictures[1:],
                     duration=int(FRAME_PERIOD_S * 1000), loop=0)  # fmt: skip
    return {"strip": str(strip_path), "gif": str(gif_path)}


def _class_names(output_bag: Path, count: int) -> list[str]:
    """Class names from the LabelInfo the node published (what a ROS user reads too)."""
    from rosbags.highlevel import AnyReader

    from mlesam_ros.pipeline import messages as m

    with AnyReader([output_bag], default_typestore=m.ensure_vision_msgs()) as reader:
        connections = [c for c in reader.connections if c.msgtype == m.LABEL_INFO]
        for connection, _, raw in reader.messages(connections=connections):
            message = reader.deserialize(raw, connection.msgtype)
            names = {item.class_id: item.class_name for item in message.class_map}
            return [names.get(index, str(index)) for index in range(count)]
    return [str(index) for index in range(count)]


def header_text(out: Path, frames: int, size: tuple[int, int], model: Path | None) -> str:
    """Return the command's first line, printed before the work starts."""
    return (
        f"mlesam demo: {frames} frames at {size[1]}x{size[0]} (daylight, LiDAR dropout, "
        f"night) with {model or 'the shipped demo model'} → {out}/"
    )


def run_demo(
    out: str | Path = DEFAULT_OUT,
    frames: int = DEFAULT_FRAMES,
    backend: str = "auto",
    model: str | Path | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate, replay and render the demo into ``out``; return the summary dict."""
    from mlesam_ros.data.topics import GT_LABELS_TOPIC
    from mlesam_ros.pipeline.config import DEFAULT_PARAMETERS
    from mlesam_ros.replay.run import replay_bag

    if frames < 3:
        raise ValueError(f"frames: need at least 3 (daylight, dropout, night), got {frames}")
    out = Path(out)
    input_bag, output_bag = out / "input_bag", out / "output_bag"
    previous_demo = (out / "summary.json").is_file()
    for path in (input_bag, output_bag):
        if path.exists():
            if not previous_demo:
                raise ValueError(
                    f"demo: {path} already exists and is not a previous demo's output; "
                    "remove it or choose another --out"
                )
            # Re-running the demo into its own folder replaces its previous bags.
            shutil.rmtree(path)
    out.mkdir(parents=True, exist_ok=True)
    schedule = Schedule(frames)
    started = time.perf_counter()
    compiling = start_kernel_compile()
    try:
        drive = record_drive(input_bag, schedule, size, progress=progress)
        if compiling is not None:
            if progress and compiling.poll() is None:
                print("compile: finishing the node's numba kernels (first run only)",
                      file=sys.stderr, flush=True)  # fmt: skip
            compiling.wait(timeout=600)  # the replay then loads the kernels from the cache
    finally:
        if compiling is not None and compiling.poll() is None:
            compiling.kill()  # interrupted (or stuck): the replay compiles what it needs
    recorded = time.perf_counter()
    parameters: dict[str, Any] = {"model.backend": backend}
    if model is not None:
        parameters["model.path"] = str(model)
    collector = _Collector(drive)

    def groups(record: Any) -> list[str]:
        return [f"condition {drive.condition.get(record.stamp_ns, '?')}"]

    result = replay_bag(
        input_bag, output_bag, parameters, progress=progress, groups=groups, on_frame=collector
    )
    replayed = time.perf_counter()
    summary = result.summary()
    media: dict[str, str] = {}
    if collector.frames:
        class_names = _class_names(output_bag, len(collector.palette))
        miou = summary["miou"].get("all")
        title = (
            f"mlesam demo: synthetic drive, {frames} frames at 10 Hz · model "
            f"{Path(summary['model']).name} ({summary['backend']}) · mIoU over the drive "
            + ("n/a" if miou is None else f"{100 * miou:.1f}%")
        )
        alpha = float(DEFAULT_PARAMETERS["output.overlay_alpha"])
        media = _write_media(collector, out, schedule, class_names, alpha, title, progress)
    summary["demo"] = {
        "frames": frames,
        "size": list(size),
        "schedule": {
            "lidar_dropout_frames": [i for i in range(frames) if schedule.lidar_missing(i)],
            "night_frames": [i for i in range(frames) if schedule.condition(i) == "night"],
        },
        "ground_truth": GT_LABELS_TOPIC,
        "frame_miou": {
            str(frame.index): None if frame.miou is None else round(frame.miou, 6)
            for frame in collector.frames
        },
        "seconds": {
            "record": round(recorded - started, 2),
            "replay": round(replayed - recorded, 2),
            "render": round(time.perf_counter() - replayed, 2),
        },
        "files": {
            "input_bag": str(input_bag),
            "output_bag": str(output_bag),
            **media,
            "summary": str(out / "summary.json"),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """Format the result lines printed after the work: timings, fusion, mIoU, files."""
    demo = summary["demo"]
    seconds = demo["seconds"]
    lines = [
        f"  model: {summary['model']} ({summary['backend']})",
        f"  time: record {seconds['record']} s, replay {seconds['replay']} s, render "
        f"{seconds['render']} s",
        f"  frames labelled: {summary['frames']} of {summary['rgb_messages']} RGB messages",
    ]
    latency = summary["latency_ms"]
    if latency["p50"] is not None:
        lines.append(
            f"  latency ms (sync wait + processing): p50 {latency['p50']}, p90 "
            f"{latency['p90']}, p99 {latency['p99']}"
        )
    lines.append(
        "  fused modalities: "
        + ", ".join(f"{combo} x{count}" for combo, count in summary["fused_modalities"].items())
    )
    lines.append("  mIoU:")
    for group, value in summary["miou"].items():
        shown = "n/a" if value is None else f"{100 * value:.1f}%"
        lines.append(f"    {group:<36} {shown}")
    lines.append("  files:")
    lines += [f"    {name:<12} {path}" for name, path in demo["files"].items()]
    return "\n".join(lines)
