"""Time the node's one message codec: CDR → message (every input) and message → CDR (outputs).

The live node hands the core raw CDR and publishes the CDR the core serialises
(:mod:`mlesam_ros.pipeline.messages`), so these are the whole message cost per frame on top
of rclpy's own transport. Sizes: a VGA rgb8 image and a 64-beam, 1024-column cloud.

    python benchmarks/bench_codec.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from mlesam_ros.msgs import array_to_pointcloud2, numpy_to_image
from mlesam_ros.pipeline import messages as m


def _time_ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = numpy_to_image(rng.integers(0, 255, (480, 640, 3), np.uint8), "rgb8", 1, "camera")
    points = np.zeros(64 * 1024, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                        ("intensity", "f4")])  # fmt: skip
    cloud = array_to_pointcloud2(points, 1, "lidar")
    for name, message, msgtype in (("rgb8 640x480", image, m.IMAGE),
                                   ("cloud 65536 points", cloud, m.POINTCLOUD2)):  # fmt: skip
        data = m.encode(message, msgtype)
        decode = _time_ms(lambda d=data, t=msgtype: m.decode(d, t), args.repeat)
        encode = _time_ms(lambda s=message, t=msgtype: m.encode(s, t), args.repeat)
        print(f"{name:<20} {len(data):>8} B  decode {decode:.3f} ms  encode {encode:.3f} ms "
              "(median)")


if __name__ == "__main__":
    main()
