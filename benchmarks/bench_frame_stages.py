"""Per-stage cost of the node's frame path, this checkout against an older one.

Runs ``mlesam_ros.bench.frame.stage_timings`` (from *this* checkout's file, loaded by path)
once with the package of ``--baseline`` (e.g. ``git worktree add /tmp/old 4758648``) and once
with this checkout's package, each in its own process, at every ``--sizes`` camera size, and
prints one markdown table of p50 ms with ``old → new (×ratio)`` cells. Pin it to one core:

    taskset -c 1 python benchmarks/bench_frame_stages.py --baseline /tmp/old --frames 40

Both builds run ``--rounds`` times, alternately, and each stage reports the median round, so
a drift in the machine's speed lands on both sides of the ratio.

The model is the shipped ONNX on ONNX Runtime with ``--threads`` intra-op threads (1 by
default: ONNX Runtime's own default ignores ``taskset`` and oversubscribes the core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_FILE = ROOT / "mlesam_ros" / "bench" / "frame.py"

_CHILD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("stage_bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
threads = bench.thread_setup(int(sys.argv[3]))
from mlesam_ros.engine.segmenter import Segmenter
segmenter = Segmenter(sys.argv[2], "onnxruntime", threads=threads["threads"])
reports = []
for size in sys.argv[7].split(","):
    w, h = (int(v) for v in size.split("x"))
    reports.append(bench.stage_timings(segmenter, (h, w), int(sys.argv[4]), int(sys.argv[5]),
                                       outputs=sys.argv[6], depth_offset_m=float(sys.argv[8])))
print(json.dumps({"threads": threads, "reports": reports}))
"""


def run_tree(tree: Path, args: argparse.Namespace) -> dict:
    """Time the frame path with ``tree``'s package in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-c", _CHILD, str(BENCH_FILE), str(args.model), str(args.threads),
               str(args.points), str(args.frames), args.outputs, args.sizes,
               str(args.depth_offset)]  # fmt: skip
    # cwd = the tree: ``python -c`` puts the working directory first on sys.path, which would
    # otherwise import this checkout's package for the baseline as well.
    done = subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def merge_rounds(runs: list[dict]) -> dict:
    """One report per size: each stage's median over the rounds (p50, p90, CPU p50)."""
    import statistics

    merged = json.loads(json.dumps(runs[0]))
    for index, report in enumerate(merged["reports"]):
        for name, values in report["stages"].items():
            for metric in values:
                values[metric] = statistics.median(
                    run["reports"][index]["stages"][name][metric] for run in runs
                )
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="older checkout to compare against")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mlesam_demo_tiny.onnx")
    parser.add_argument("--sizes", default="320x240,640x480,1280x720,1920x1080")
    parser.add_argument("--points", type=int, default=131072)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--outputs", choices=("all", "labels"), default="all")
    parser.add_argument("--depth-offset", type=float, default=0.0,
                        help="move the depth camera this far (m): unregistered depth")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate new/old this many times; report the median round")
    parser.add_argument("--json", type=Path, help="also write both runs here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlesam_ros.bench.frame import stage_table

    # Alternate the two builds round by round: a shared VM's speed drifts by tens of percent
    # over minutes, and one run of each, back to back, would put that drift in the ratio.
    news, olds = [], []
    for index in range(args.rounds):
        # Which build goes first alternates too, so neither always runs on a warmer machine.
        order = ("new", "old") if index % 2 == 0 else ("old", "new")
        for build in order:
            if build == "new":
                news.append(run_tree(ROOT, args))
            elif args.baseline:
                olds.append(run_tree(args.baseline, args))
    new = merge_rounds(news)
    old = merge_rounds(olds) if olds else None
    print(f"threads: {new['threads']}; frames per size: {args.frames} (p50 over them); "
          f"rounds: {args.rounds} (median of the rounds' p50s); "
          f"LiDAR points: {args.points}; outputs: {args.outputs}; "
          f"depth offset: {args.depth_offset} m")
    print("\nwall time, median over the frames:")
    print(stage_table(new["reports"], old["reports"] if old else None))
    print("\nCPU time of the process, median over the frames (less inflated by other jobs):")
    print(stage_table(new["reports"], old["reports"] if old else None, metric="cpu_p50"))
    if args.json:
        args.json.write_text(json.dumps({"new": new, "old": old}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
