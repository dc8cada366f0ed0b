"""``mlesam demo``: a synthetic drive, replayed through the node core, rendered for a human.

Steps: (1) render a short drive with :class:`~mlesam_ros.data.synth.SyntheticDrive` on a
per-frame schedule (daylight, then a LiDAR dropout, then night) and record it with
:class:`~mlesam_ros.data.export.BagRecorder`; (2) replay it with
:func:`mlesam_ros.replay.run.replay_bag` (the same code path as ``mlesam replay`` and the ROS
node) with the shipped demo model; (3) write a PNG strip and an animated GIF of
RGB | labels overlay | LiDAR painted, and ``summary.json`` with mIoU per modality combination
and per condition. The schedule uses one drive per condition over the same street and the same
frame indices, so the ego keeps driving while the light changes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.engine import BACKENDS

DEFAULT_OUT = Path("mlesam_demo")
DEFAULT_FRAMES = 48
DEFAULT_SIZE = (240, 320)  # (H, W)


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


def record_drive(bag: Path, schedule: Schedule, size: tuple[int, int], seed: int = 3) -> dict:
    """Render the scheduled drive into ``bag``; return ``{stamp_ns: condition}`` of RGB frames."""
    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig

    rig = default_rig(width=size[1], height=size[0])
    drives: dict[str, SyntheticDrive] = {}
    conditions: dict[int, str] = {}
    with BagRecorder(bag) as recorder:
        for index in range(schedule.frames):
            condition = schedule.condition(index)
            if condition not in drives:
                drives[condition] = SyntheticDrive(seed=seed, condition=condition, rig=rig)
            frame = drives[condition].frame(index)
            if schedule.lidar_missing(index):
                frame.lidar = None
            recorder.write(frame)
            conditions[frame.stamps_ns["rgb"]] = condition
    return conditions


def _lidar_panel(result: Any) -> np.ndarray:
    """Draw the overlay darkened, with every painted LiDAR point drawn in its class colour."""
    base = result.overlay if result.overlay is not None else np.zeros((*result.labels.shape, 3))
    panel = (0.25 * np.asarray(base, dtype=np.float32)).astype(np.uint8)
    if result.points is not None and result.point_pixels is not None:
        rows, cols = result.point_pixels[:, 0], result.point_pixels[:, 1]
        labels = result.points["label"].astype(np.int64)
        palette = result.palette
        colours = palette[np.clip(labels, 0, len(palette) - 1)]
        for dy in (0, 1):  # 2x2 dots: single pixels vanish in a GIF
            for dx in (0, 1):
                r = np.clip(rows + dy, 0, panel.shape[0] - 1)
                c = np.clip(cols + dx, 0, panel.shape[1] - 1)
                panel[r, c] = colours
    return panel


class _Renderer:
    """Collects RGB | overlay | LiDAR panels of each replayed frame."""

    def __init__(self, rgb_by_stamp: Callable[[int], np.ndarray | None]) -> None:
        self.rgb_by_stamp = rgb_by_stamp
        self.panels: list[np.ndarray] = []
        self.stamps: list[int] = []

    def __call__(self, result: Any, record: Any) -> None:
        rgb = self.rgb_by_stamp(result.stamp_ns)
        if rgb is None:
            rgb = np.zeros((*result.labels.shape, 3), dtype=np.uint8)
        overlay = result.overlay if result.overlay is not None else rgb
        lidar = _lidar_panel(result)
        self.panels.append(np.concatenate([rgb, overlay, lidar], axis=1))
        self.stamps.append(result.stamp_ns)


def _rgb_images(bag: Path) -> dict[int, np.ndarray]:
    """RGB frames of the input bag by stamp (the strip shows the raw camera next to labels)."""
    from rosbags.highlevel import AnyReader

    from mlesam_ros.data.topics import RGB_IMAGE_TOPIC
    from mlesam_ros.msgs import header_stamp_ns, image_to_rgb8, typestore

    images = {}
    with AnyReader([bag], default_typestore=typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == RGB_IMAGE_TOPIC]
        for connection, _, raw in reader.messages(connections=connections):
            message = reader.deserialize(raw, connection.msgtype)
            images[header_stamp_ns(message)] = image_to_rgb8(message)
    return images


def _write_media(
    renderer: _Renderer,
    out: Path,
    schedule: Schedule,
    conditions: dict[int, str],
    stamps: list[int],
) -> dict[str, str]:
    from PIL import Image

    if not renderer.panels:
        return {}
    index_of = {stamp: index for index, stamp in enumerate(stamps)}
    # One strip row per stretch of the drive: daylight, LiDAR dropout, night.
    wanted = [
        round(0.15 * schedule.frames),
        round(np.mean(schedule.dropout) * schedule.frames),
        round(0.85 * schedule.frames),
    ]
    rows = []
    for frame_index in wanted:
        best = min(
            range(len(renderer.stamps)),
            key=lambda i: abs(index_of.get(renderer.stamps[i], -99) - frame_index),
        )
        rows.append(renderer.panels[best])
    strip = out / "strip.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(strip)
    gif = out / "demo.gif"
    frames = [Image.fromarray(panel) for panel in renderer.panels]
    frames[0].save(
        gif, save_all=True, append_images=frames[1:], duration=100, loop=0, optimize=False
    )
    return {"strip": str(strip), "gif": str(gif)}


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
    conditions = record_drive(input_bag, schedule, size)
    recorded = time.perf_counter()
    stamps = sorted(conditions)
    rgb = _rgb_images(input_bag)
    parameters: dict[str, Any] = {"model.backend": backend}
    if model is not None:
        parameters["model.path"] = str(model)
    renderer = _Renderer(rgb.get)

    def groups(record: Any) -> list[str]:
        return [f"condition {conditions.get(record.stamp_ns, '?')}"]

    result = replay_bag(
        input_bag, output_bag, parameters, progress=progress, groups=groups, on_frame=renderer
    )
    replayed = time.perf_counter()
    media = _write_media(renderer, out, schedule, conditions, stamps)
    summary = result.summary()
    summary["demo"] = {
        "frames": frames,
        "size": list(size),
        "schedule": {
            "lidar_dropout_frames": [i for i in range(frames) if schedule.lidar_missing(i)],
            "night_frames": [i for i in range(frames) if schedule.condition(i) == "night"],
        },
        "ground_truth": GT_LABELS_TOPIC,
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
    """Format the printed summary: timings, fused combinations, mIoU per group, files."""
    demo = summary["demo"]
    seconds = demo["seconds"]
    lines = [
        f"mlesam demo: {demo['frames']} frames at {demo['size'][1]}x{demo['size'][0]}, "
        f"{summary['backend']}, model {summary['model']}",
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


# -- ``mlesam demo`` ------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    demo = subparsers.add_parser(
        "demo",
        help="synthetic drive → replay with the demo model → strip, GIF, bags, mIoU summary",
        description=(
            "Render a short synthetic drive (daylight, a LiDAR dropout, night), replay it "
            "through the node core with the shipped demo model on CPU, and write the input "
            "and output bags, strip.png, demo.gif (RGB | labels overlay | LiDAR painted) and "
            "summary.json with mIoU per modality combination into --out."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("mlesam_demo"), help="output folder")
    demo.add_argument("--frames", type=int, default=48, help="frames at 10 Hz (default 48)")
    demo.add_argument("--backend", choices=BACKENDS, default="auto",
                      help="inference backend (auto: TensorRT, then ONNX Runtime, then torch)")
    demo.add_argument("--model", type=Path, help="model file (default: shipped demo model)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    summary = run_demo(args.out, args.frames, args.backend, args.model, progress=not args.quiet)
    print(summary_text(summary))
    return 0
