"""Does the node's frame path still give the same labels? Agreement and mIoU, old vs new.

Renders ``mlesam eval``'s held-out synthetic set (street seed 1000, 10 frames per street,
conditions cycling, healthy sensors, 320x240 like training), sends every frame through the
node's frame path as the robot's ROS messages (``FramePath.prepare`` → ``model_input`` →
the shipped ONNX model → ``postprocess``), and scores the camera-size labels against the
ground truth (mIoU over the classes present, all four sensors fused). With ``--baseline``
it runs an older checkout's frame path on the same frames in a second process and reports
the share of pixels where the two label images agree:

    python benchmarks/frame_path_agreement.py --baseline /tmp/old --frames 250
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_path(args: argparse.Namespace, out: Path) -> None:
    """Label every frame with the ``mlesam_ros`` on ``sys.path``; save labels + truth."""
    import importlib.util

    from mlesam_ros.data.synthetic_dataset import SyntheticDataset
    from mlesam_ros.engine.segmenter import Segmenter
    from mlesam_ros.pipeline.config import NodeConfig
    from mlesam_ros.pipeline.frame import FramePath

    # This checkout's message builder, loaded by path so an older package can use it too.
    bench_file = ROOT / "mlesam_ros" / "bench" / "frame.py"
    spec = importlib.util.spec_from_file_location("stage_bench", bench_file)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    dataset = SyntheticDataset(args.frames, size=(args.height, args.width), seed=args.seed,
                               frames_per_drive=10)  # fmt: skip
    segmenter = Segmenter(args.model, "onnxruntime", threads=1)
    path = FramePath(segmenter, NodeConfig.from_parameters())
    labels, truth = [], []
    for index in range(args.frames):
        frame = dataset.frame(index)
        job, tf = bench.frame_job(frame, dataset.rig)
        prepared = path.prepare(job, tf.lookup)
        images, present = path.model_input(prepared)
        assert present.all(), [str(i) for i in prepared.issues]
        result = segmenter.segment(images, present)
        out_frame = path.postprocess(prepared, result.labels, result.confidence, present,
                                     want_confidence=False, want_overlay=False,
                                     want_points=False)  # fmt: skip
        labels.append(out_frame.labels)
        truth.append(frame.labels)
    np.savez_compressed(out, labels=np.stack(labels), truth=np.stack(truth),
                        classes=len(segmenter.class_names))  # fmt: skip


def miou(labels: np.ndarray, truth: np.ndarray, classes: int) -> float:
    """mIoU exactly as ``mlesam eval`` computes it (its confusion matrix)."""
    from mlesam_ros.train.metrics import ConfusionMatrix

    matrix = ConfusionMatrix(classes)
    for prediction, target in zip(labels, truth, strict=True):
        matrix.update(prediction.astype(np.int64), target.astype(np.int64))
    return matrix.miou()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="older checkout to compare against")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mlesam_demo_tiny.onnx")
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--out", type=Path, default=Path("/tmp/frame_path_agreement"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # runs with the checkout under test first on PYTHONPATH
        run_path(args, args.child)
        return 0
    sys.path.insert(0, str(ROOT))
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {"new": ROOT} | ({"old": args.baseline} if args.baseline else {})
    results = {}
    for name, tree in runs.items():
        target = args.out / f"{name}.npz"
        child = [*sys.argv[1:], "--child", str(target)]
        subprocess.run([sys.executable, __file__, *child], check=True,
                       env=dict(os.environ, PYTHONPATH=str(tree)))  # fmt: skip
        results[name] = np.load(target)
    report = {}
    for name, data in results.items():
        report[f"mIoU {name}"] = round(100 * miou(data["labels"], data["truth"],
                                                  int(data["classes"])), 2)  # fmt: skip
    if "old" in results:
        same = results["new"]["labels"] == results["old"]["labels"]
        report["label agreement %"] = round(100 * float(same.mean()), 3)
        report["worst frame agreement %"] = round(100 * float(same.mean(axis=(1, 2)).min()), 2)
    report |= {"frames": args.frames, "camera": f"{args.width}x{args.height}", "seed": args.seed}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
