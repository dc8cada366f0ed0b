"""Time the z-buffered LiDAR projection: numpy (one core), torch CPU (one thread), CUDA.

Target: < 5 ms for 131,072 points into 1920x1080 with numpy on one CPU core.
The cloud is a 360-degree spinning-LiDAR-like scan, so about a quarter of the points face
the camera, as on a real car. Every path is checked against numpy before it is timed.

    python benchmarks/bench_projection.py [--points 131072] [--width 1920] [--height 1080]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core for numpy/BLAS, as the target says

import numpy as np

from mlesam_ros.geometry import CameraModel, lidar_image, make_transform, project_lidar

LIDAR_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def spinning_scan(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    azimuth = rng.uniform(-np.pi, np.pi, count)
    elevation = np.radians(rng.uniform(-25.0, 15.0, count))
    distance = rng.uniform(1.0, 80.0, count)
    points = np.stack(
        [
            distance * np.cos(elevation) * np.cos(azimuth),
            distance * np.cos(elevation) * np.sin(azimuth),
            distance * np.sin(elevation),
        ],
        axis=-1,
    ).astype(np.float32)
    return points, rng.uniform(0.0, 1.0, count).astype(np.float32)


def timed(function, repeats: int, synchronize=None) -> tuple[float, float]:
    """Median and minimum milliseconds over ``repeats`` calls after two warm-up calls."""
    for _ in range(2):
        function()
    samples = []
    for _ in range(repeats):
        if synchronize:
            synchronize()
        start = time.perf_counter()
        function()
        if synchronize:
            synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=131_072)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    camera = CameraModel(
        args.width,
        args.height,
        [
            [0.55 * args.width, 0, args.width / 2 - 0.5],
            [0, 0.55 * args.width, args.height / 2 - 0.5],
            [0, 0, 1],
        ],
        [-0.12, 0.03, 0.0005, -0.0004, 0.0],
        "plumb_bob",
    )
    T = make_transform(LIDAR_TO_OPTICAL, [0.0, -0.2, 0.1])
    points, intensity = spinning_scan(args.points)
    reference = project_lidar(points, T, camera)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs")
    print(
        f"{args.points} points -> {args.width}x{args.height}; {int(reference.valid.sum())} in "
        f"view, {int(reference.visible.sum())} after the z-buffer; plumb_bob distortion"
    )
    rows = [
        (
            "numpy project_lidar (1 core)",
            *timed(lambda: project_lidar(points, T, camera), args.repeats),
        )
    ]
    rows.append(
        (
            "numpy lidar_image (1 core)",
            *timed(lambda: lidar_image(points, intensity, T, camera), args.repeats),
        )
    )
    rows.append(
        (
            "numpy lidar_image dilation=1",
            *timed(
                lambda: lidar_image(points, intensity, T, camera, dilation=1),
                max(args.repeats // 5, 3),
            ),
        )
    )
    try:
        import torch
    except ImportError:
        torch = None
        print("torch not installed: torch rows skipped")
    if torch is not None:
        torch.set_num_threads(1)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            tensor = torch.from_numpy(points).to(device)
            result = project_lidar(tensor, T, camera)
            assert np.array_equal(result.point_index.cpu().numpy(), reference.point_index)
            assert np.array_equal(result.pixel_index.cpu().numpy(), reference.pixel_index)
            sync = torch.cuda.synchronize if device == "cuda" else None
            label = (
                "torch CPU (1 thread)"
                if device == "cpu"
                else f"torch {torch.cuda.get_device_name()}"
            )
            rows.append(
                (
                    f"{label} project_lidar",
                    *timed(lambda t=tensor: project_lidar(t, T, camera), args.repeats, sync),
                )
            )
    print(f"{'path':44s} {'median ms':>10s} {'min ms':>8s}")
    for name, median, best in rows:
        print(f"{name:44s} {median:10.2f} {best:8.2f}")
    target = rows[0][1]
    print(f"numpy target < 5 ms: {'met' if target < 5 else 'NOT met'} (median {target:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
