"""What a four-sensor drive loses on DDS with Cyclone's defaults and with the shipped profile.

Usage: python benchmarks/bench_dds_profile.py [--frames 100 --width 640 --height 480
       --profiles default,images --repeats 2]

Records a synthetic 10 Hz drive (RGB, depth, thermal, LiDAR at the given size), then for each
profile and repeat: starts ``mlesam node`` as its own process on a private domain on the
loopback interface (``ROS_LOCALHOST_ONLY=1``; ``--dds-profile`` unless ``default``), plays
the drive at its recorded pace from this process with the same settings, and counts what
arrived: each sensor's messages at the node (its ``/diagnostics``), the RGB messages the node
accounted for (its exit report), the labels a subscriber got and their latency (RGB publish
→ labels received). The node labels what its CPU allows (latest frame wins); frames the
transport lost never reach it. Needs the ``[dds]`` extra.
"""

import argparse
import os
import platform
import re
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
from mlesam_ros.dds.profiles import profile_uri, receive_buffer_advice
from mlesam_ros.msgs import header_stamp_ns
from mlesam_ros.pipeline import messages as m

ROOT = Path(__file__).resolve().parents[1]
RGB = "/camera/image_raw"
SENSORS = ("rgb", "depth", "thermal", "points")


def record(bag: Path, frames: int, width: int, height: int, beams: int) -> None:
    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig

    rig = default_rig(width=width, height=height, lidar_beams=beams)
    with BagRecorder(bag) as recorder:
        for frame in SyntheticDrive(seed=1, rig=rig).frames(frames):
            recorder.write(frame)


def run(bag: Path, profile: str, model: Path | None) -> dict:
    domain = private_domain_id()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_LOCALHOST_ONLY="1")
    env.pop("CYCLONEDDS_URI", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "mlesam_ros", "node", "--transport", "dds"]
    if profile != "default":
        command += ["--dds-profile", profile]
    if model:
        command += ["--model", str(model)]
    node = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    # The node's own choice (mlesam.dds.commands.dds_config), for this process's player.
    config = localhost_config() if profile == "default" else profile_uri(
        profile, None if profile == "loopback" else localhost_config())  # fmt: skip
    participant = open_participant(domain, config)
    try:
        labels = TopicRecorder(participant, m.LABELS_TOPIC, m.IMAGE, depth=100)
        diagnostics = TopicRecorder(participant, m.DIAGNOSTICS_TOPIC, m.DIAGNOSTIC_ARRAY)
        player = BagPlayer(participant, bag)
        player.wait_for_subscribers([RGB], timeout_s=120)
        if warm_up(player, labels, RGB, "/camera/camera_info") is None:
            raise RuntimeError("no label for the warm-up frame")
        time.sleep(2.0)  # the warm-up's diagnostics
        before = last_received(diagnostics)
        labels.received.clear()
        played = player.play()
        time.sleep(3.0)  # the last frames' sync timeout, inference and a diagnostics period
        after = last_received(diagnostics)
        sent = {p.stamp_ns: p.sent_ns for p in played.messages if p.topic == RGB}
        latencies = [(item.arrival_ns - sent[header_stamp_ns(item.message)]) / 1e6
                     for item in list(labels.received)
                     if header_stamp_ns(item.message) in sent]  # fmt: skip
    finally:
        node.send_signal(signal.SIGINT)
        out, _ = node.communicate(timeout=60)
        delete_participant(participant)
    report = re.search(r"(\d+) RGB messages received: (\d+) frames published", out or "")
    return {
        "played": len(sent),
        "received": {key: after.get(key, 0) - before.get(key, 0) for key in SENSORS},
        "node_rgb": int(report.group(1)) if report else None,
        "labels": len(latencies),
        "latency": np.percentile(latencies, [50, 90]) if latencies else (np.nan, np.nan),
    }


def last_received(diagnostics: TopicRecorder) -> dict[str, int]:
    """Each sensor's ``received`` count in the node's latest /diagnostics."""
    counts: dict[str, int] = {}
    for array in diagnostics.messages():
        for status in array.status:
            sensor = status.name.rsplit(": ", 1)[-1]
            values = {kv.key: kv.value for kv in status.values}
            if sensor in SENSORS and "received" in values:
                counts[sensor] = int(values["received"])
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100, help="drive length at 10 Hz")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--lidar-beams", type=int, default=64)
    parser.add_argument("--profiles", default="default,images",
                        help="comma-separated: default (Cyclone's own), images, loopback, path")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", type=Path, help="default: the shipped demo model")
    args = parser.parse_args()

    bag = Path(tempfile.mkdtemp(prefix="bench_dds_profile_")) / "drive"
    record(bag, args.frames, args.width, args.height, args.lidar_beams)
    size = sum(f.stat().st_size for f in bag.rglob("*") if f.is_file()) / args.frames / 1e6
    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; drive {args.frames} frames "
          f"{args.width}x{args.height} at 10 Hz, RGB+depth+thermal+LiDAR ({size:.1f} MB per "
          f"frame), loopback; rmem_max: {receive_buffer_advice() or 'enough for the profile'}")
    for profile in args.profiles.split(","):
        for repeat in range(args.repeats):
            result = run(bag, profile, args.model)
            received = ", ".join(f"{key} {n}" for key, n in result["received"].items())
            p50, p90 = result["latency"]
            print(f"{profile:<8} run {repeat + 1}: played {result['played']}; received "
                  f"{received}; node RGB accounted {result['node_rgb']}; frames labelled "
                  f"{result['labels']}/{result['played']}; latency p50 {p50:.1f} ms, "
                  f"p90 {p90:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
