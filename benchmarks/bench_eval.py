"""Time the missing-modality evaluation and the torch forward with 1, 2 or 4 sensors present.

Evaluation, three ways on the same pre-rendered frames (so rendering is not timed):

- ``every subset, all encoded``: the model encodes every modality for every subset (what
  evaluation did before: absent images zeroed but still run through the ViT);
- ``every subset, absent skipped``: the whole model per subset, absent modalities skipped;
- ``encode once``: each frame's modalities encoded once, routers/decoders per subset.

All three must give identical confusion matrices (checked). Then the forward pass at batch 1
with k of M sensors present, with and without skipping absent encoder work.

Times are the process's CPU time (``time.process_time``, one torch thread), which stays
meaningful on a machine shared with other jobs, where wall time does not.

    python benchmarks/bench_eval.py [--checkpoint models/mlesam_demo_tiny.pt] [--frames 40]
    python benchmarks/bench_eval.py --preset vit_b --size 256 --frames 2   # random weights

``--preset`` times an untrained model of that encoder size instead (RGB, depth, thermal,
LiDAR), to see the split where the encoder dominates (ViT-B) rather than the decoder (tiny).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from unittest import mock

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from mlesam_ros.model import load_checkpoint
from mlesam_ros.train.data import build_eval_dataset
from mlesam_ros.train.evaluate import evaluate, torch_predictor
from mlesam_ros.train.trainer import class_names_for


def no_skipping():
    """Make ``MLESAM.encode`` run every image, as a traced graph (and the old code) does."""
    return mock.patch("mlesam_ros.model.mlesam._eager", return_value=False)


def time_forward(model, images, present, repeats: int) -> float:
    """Median CPU seconds of one forward pass."""
    times = []
    with torch.inference_mode():
        model(images, present)  # warm-up
        for _ in range(repeats):
            start = time.process_time()
            model(images, present)
            times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    """Run both benchmarks and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="models/mlesam_demo_tiny.pt")
    parser.add_argument("--preset", help="time an untrained model of this preset instead")
    parser.add_argument("--size", type=int, default=256, help="with --preset: square input")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.preset:
        from mlesam_ros.model import MLESAMConfig, build_mlesam

        config = MLESAMConfig(preset=args.preset, modalities=("rgb", "depth", "thermal", "lidar"),
                              image_size=(args.size, args.size))  # fmt: skip
        model, extra = build_mlesam(config).eval(), {}
        args.checkpoint = f"untrained {args.preset} at {args.size}x{args.size}"
    else:
        model, extra = load_checkpoint(args.checkpoint)
    config = model.config
    source = build_eval_dataset("synthetic", None, config.modalities, tuple(config.image_size),
                                seed=1000, frames=args.frames)  # fmt: skip
    frames = [source[i] for i in range(len(source))]  # rendered once, outside the timing
    names = extra.get("class_names") or class_names_for(config.num_classes)
    print(f"{platform.processor() or platform.machine()}, torch threads 1, "
          f"{args.frames} frames x 15 subsets, {args.checkpoint}\n")  # fmt: skip

    rows, matrices = [], []
    modes = (("every subset, all encoded", False, True), ("every subset, absent skipped",
             False, False), ("encode once", True, False))  # fmt: skip
    for label, once, static in modes:
        context = no_skipping() if static else contextlib.nullcontext()
        with context:
            start = time.process_time()
            result = evaluate(torch_predictor(model), frames, config.modalities, names,
                              progress=False, encode_once=once)  # fmt: skip
            seconds = time.process_time() - start
        matrices.append(np.stack([s.overall.matrix for s in result.subsets]))
        rows.append((label, seconds))
    same = all(np.array_equal(matrices[0], m) for m in matrices[1:])
    print("| evaluation | CPU s | per frame (ms) | speed-up |")
    print("|---|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {1000 * seconds / args.frames:.0f} | "
              f"{rows[0][1] / seconds:.1f}x |")  # fmt: skip
    print(f"\nconfusion matrices identical across the three: {same}\n")

    images = torch.from_numpy(np.stack([frames[0]["images"]]))
    count = config.num_modalities
    print("| sensors present | skip absent (CPU ms) | encode all (CPU ms) |")
    print("|---|---|---|")
    for present_count in sorted({1, 2, count}):
        present = torch.zeros(1, count, dtype=torch.bool)
        present[0, :present_count] = True
        skipped = time_forward(model, images, present, args.repeats)
        with no_skipping():
            full = time_forward(model, images, present, args.repeats)
        print(f"| {present_count} of {count} | {1000 * skipped:.1f} | {1000 * full:.1f} |")
    if not same:
        raise SystemExit("encode-once evaluation differs from per-subset evaluation")


if __name__ == "__main__":
    main()
