"""Time the synthetic world: one frame with every sensor, on one CPU core.

Usage: python benchmarks/bench_synthetic.py [--width 640 --height 480 --frames 10]
Prints median/p90 wall time per frame (RGB + registered depth + thermal + LiDAR + labels)
and, separately, the model-input encoding (depth/thermal/LiDAR into the RGB camera).
"""

import os

# One core, as the goal is stated: pin BLAS/OpenMP pools before numpy loads.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from mlesam_ros.data.synth import SyntheticDrive, default_rig  # noqa: E402
from mlesam_ros.data.synthetic_dataset import frame_to_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--lidar-beams", type=int, default=64)
    parser.add_argument("--azimuth-steps", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--condition", default="sun")
    args = parser.parse_args()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    rig = default_rig(args.width, args.height, args.lidar_beams, args.azimuth_steps)
    drive = SyntheticDrive(seed=0, condition=args.condition, rig=rig)
    drive.frame(0)  # warm-up: per-sensor ray tables are built once per rig
    render_times, encode_times = [], []
    for index in range(1, args.frames + 1):
        start = time.perf_counter()
        frame = drive.frame(index)
        render_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        frame_to_images(frame, ("rgb", "depth", "thermal", "lidar"))
        encode_times.append(time.perf_counter() - start)
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"(BLAS/OpenMP/OpenCV threads = 1)")
    print(f"rig: RGB+depth {args.width}x{args.height}, thermal {rig.thermal.width}x"
          f"{rig.thermal.height}, LiDAR {args.lidar_beams}x{args.azimuth_steps}, "
          f"condition {args.condition}, {args.frames} frames, {len(frame.lidar)} points/frame")
    for name, times in (("render frame", render_times), ("encode to model input", encode_times)):
        ms = np.array(times) * 1000
        print(f"{name:>22}: median {np.median(ms):7.1f} ms   p90 {np.percentile(ms, 90):7.1f} ms")


if __name__ == "__main__":
    main()
