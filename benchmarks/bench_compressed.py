"""Compressed inputs: decode cost per frame, and labels against the same drive recorded raw.

Usage: python benchmarks/bench_compressed.py [--sizes 640x480,1920x1080 --repeats 20
       --frames 20 --drive-size 640x480]

1. Decode: one synthetic frame per size, encoded as image_transport publishes it (RGB JPEG
   quality 95 and PNG, thermal mono16 PNG, depth compressedDepth PNG and RVL, 32FC1 and
   16UC1), decoded ``--repeats`` times with the node's decoder (``msgs.compressed``):
   median, min and max wall ms, and the payload size.
2. Labels: a ``--frames`` drive recorded raw and compressed (``mlesam synth`` and
   ``--compressed``), both replayed with the shipped demo model: the share of label pixels
   that agree frame by frame (min, mean) and mIoU of each against ground truth.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlesam_ros.msgs.compressed import compress_depth, compress_image, decompress


def decode_table(sizes, repeats: int) -> None:
    from mlesam_ros.data.export import COMPRESSED_DEPTH_MAX_M
    from mlesam_ros.data.synth import SyntheticDrive, default_rig

    decompress(compress_depth(np.ones((4, 4), np.uint16), "16UC1", 1, codec="rvl"))  # compile
    for width, height in sizes:
        rig = default_rig(width, height, lidar_beams=8, lidar_azimuth_steps=64)
        frame = next(SyntheticDrive(seed=1, rig=rig).frames(1))
        metres = np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32)
        millimetres = np.where(np.isfinite(metres), np.rint(metres * 1000), 0)
        millimetres = np.minimum(millimetres, 65535).astype(np.uint16)
        messages = {
            "rgb8 jpeg q95": compress_image(frame.rgb, "rgb8", 1, codec="jpeg"),
            "rgb8 png": compress_image(frame.rgb, "rgb8", 1, codec="png"),
            "thermal mono16 png": compress_image(frame.thermal, "mono16", 1, codec="png"),
        }
        for codec in ("png", "rvl"):
            messages[f"depth 32FC1 compressedDepth {codec}"] = compress_depth(
                metres, "32FC1", 1, codec=codec, depth_max_m=COMPRESSED_DEPTH_MAX_M)
            messages[f"depth 16UC1 compressedDepth {codec}"] = compress_depth(
                millimetres, "16UC1", 1, codec=codec, depth_max_m=COMPRESSED_DEPTH_MAX_M)
        print(f"decode {width}x{height} ({repeats} repeats): median ms [min-max], payload")
        for name, message in messages.items():
            decompress(message)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                decompress(message)
                times.append((time.perf_counter() - start) * 1e3)
            print(f"  {name:<32} {np.median(times):6.2f} [{min(times):.2f}-{max(times):.2f}]"
                  f"  {len(message.data) / 1e3:7.0f} kB")


def label_agreement(frames: int, width: int, height: int) -> None:
    from mlesam_ros.data.commands import compressed_params_yaml
    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig
    from mlesam_ros.msgs import image_to_numpy
    from mlesam_ros.pipeline import messages as m
    from mlesam_ros.pipeline.config import load_params_file
    from mlesam_ros.replay.run import replay_bag

    folder = Path(tempfile.mkdtemp(prefix="bench_compressed_"))
    rig = default_rig(width, height, lidar_beams=32, lidar_azimuth_steps=512)
    drive = list(SyntheticDrive(seed=5, rig=rig).frames(frames))
    params = folder / "compressed.yaml"
    params.write_text(compressed_params_yaml())
    labels, miou = {}, {}
    for name, compressed in (("raw", False), ("compressed", True)):
        with BagRecorder(folder / name, compressed=compressed) as recorder:
            for frame in drive:
                recorder.write(frame)
        parameters = load_params_file(params) if compressed else {}
        result = replay_bag(folder / name, folder / f"{name}_out", parameters, progress=False)
        miou[name] = result.summary()["miou"].get("all")
        from rosbags.highlevel import AnyReader

        with AnyReader([folder / f"{name}_out"], default_typestore=m.ensure_vision_msgs()) as r:
            connections = [c for c in r.connections if c.topic == m.LABELS_TOPIC]
            labels[name] = [image_to_numpy(r.deserialize(raw, c.msgtype)).copy()
                            for c, _, raw in r.messages(connections=connections)]  # fmt: skip
    agree = [float(np.mean(a == b)) for a, b in
             zip(labels["raw"], labels["compressed"], strict=True)]  # fmt: skip
    print(f"labels, {frames} frames {width}x{height} (RGB JPEG q95, thermal PNG, depth 32FC1 "
          f"compressedDepth PNG, depth_max 100 m), demo model: pixels agreeing with the raw "
          f"drive min {100 * min(agree):.2f} %, mean {100 * np.mean(agree):.2f} %; mIoU raw "
          f"{100 * miou['raw']:.1f} %, compressed {100 * miou['compressed']:.1f} %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="640x480,1920x1080")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--frames", type=int, default=20, help="drive length (0: skip)")
    parser.add_argument("--drive-size", default="640x480")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} load "
          f"{os.getloadavg()[0]:.1f}; one thread per decode (as the node's worker)")
    decode_table(sizes, args.repeats)
    if args.frames:
        width, height = (int(v) for v in args.drive_size.split("x"))
        label_agreement(args.frames, width, height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
