"""End-to-end latency of the live node over DDS beside replay's processing time, same bag.

Usage: python benchmarks/bench_dds.py [--frames 30 --width 320 --height 240 --rate 1]

Records a synthetic drive (10 Hz), starts ``mlesam node --transport dds`` as its own process
on a private domain bound to 127.0.0.1, plays the drive at its recorded pace and times each
RGB frame from the player's publish to the listener receiving its ``/mlesam/labels`` (same
machine, monotonic clock). Then replays the same bag with ``mlesam replay`` (same model) and
prints its per-frame processing time. Needs the ``[dds]`` extra.
"""

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlesam_ros.dds.domain import localhost_config, open_participant, private_domain_id
from mlesam_ros.dds.endpoints import delete_participant
from mlesam_ros.dds.player import BagPlayer, TopicRecorder, warm_up
from mlesam_ros.msgs import header_stamp_ns
from mlesam_ros.pipeline import messages as m

ROOT = Path(__file__).resolve().parents[1]
RGB = "/camera/image_raw"


def record(bag: Path, frames: int, width: int, height: int) -> None:
    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig

    rig = default_rig(width=width, height=height, lidar_beams=32, lidar_azimuth_steps=512)
    with BagRecorder(bag) as recorder:
        for frame in SyntheticDrive(seed=1, rig=rig).frames(frames):
            recorder.write(frame)


def percentiles(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return "n/a"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--model", type=Path, help="default: the shipped demo model")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench_dds_"))
    bag = folder / "drive"
    record(bag, args.frames, args.width, args.height)
    config = folder / "cyclonedds.xml"
    config.write_text(localhost_config())
    domain = private_domain_id()
    env = dict(os.environ, CYCLONEDDS_URI=config.as_uri(), ROS_DOMAIN_ID=str(domain))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "mlesam_ros", "node", "--transport", "dds"]
    if args.model:
        command += ["--model", str(args.model)]
    node = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    participant = open_participant(domain, localhost_config())
    try:
        labels = TopicRecorder(participant, m.LABELS_TOPIC, m.IMAGE, depth=100)
        player = BagPlayer(participant, bag, rate=args.rate)
        player.wait_for_subscribers([RGB], timeout_s=120)
        if warm_up(player, labels, RGB, "/camera/camera_info") is None:
            print("no label for the warm-up frame", file=sys.stderr)
            return 1
        labels.received.clear()
        played = player.play()
        sent = {p.stamp_ns: p.sent_ns for p in played.messages if p.topic == RGB}
        deadline = time.monotonic() + 10
        while len(labels.received) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = [
            (item.arrival_ns - sent[header_stamp_ns(item.message)]) / 1e6
            for item in list(labels.received)
            if header_stamp_ns(item.message) in sent
        ]
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=30)
        delete_participant(participant)

    out = folder / "replay_out"
    summary = folder / "replay.json"
    replay = [sys.executable, "-m", "mlesam_ros", "replay", "--bag", str(bag), "--out", str(out),
              "--summary", str(summary), "--quiet"]  # fmt: skip
    if args.model:
        replay += ["--model", str(args.model)]
    subprocess.run(replay, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    import json

    processing = json.loads(summary.read_text())["processing_ms"]
    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; drive {args.frames} frames "
          f"{args.width}x{args.height} at {10 * args.rate:g} Hz, all sensors")  # fmt: skip
    print(f"DDS end-to-end (RGB publish -> labels received): {percentiles(latencies)}; "
          f"{len(latencies)}/{len(sent)} frames labelled")
    print(f"replay processing per frame (same bag, same model): p50 {processing['p50']} ms, "
          f"p90 {processing['p90']} ms, p99 {processing['p99']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
