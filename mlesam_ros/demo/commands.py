"""``mlesam demo``: a synthetic drive replayed through the node, drawn for a human."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlesam_ros.engine import BACKENDS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    demo = subparsers.add_parser(
        "demo",
        help="synthetic drive → replay with the demo model → strip, GIF, bags, mIoU summary",
        description=(
            "Render a short synthetic drive (daylight, a LiDAR dropout, night), replay it "
            "through the node core with the shipped demo model on CPU, and write the input "
            "and output bags, strip.png and demo.gif (per frame: camera | ground truth | "
            "prediction overlay | LiDAR points by predicted class, captioned with the "
            "condition, the fused sensors and the frame's mIoU, and a class legend) and "
            "summary.json with mIoU per modality combination into --out. Needs only the "
            "runtime install (pip install -e .: ONNX Runtime, no torch)."
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

    # The demo renders with Pillow and replays the node: loaded when the command runs.
    from mlesam_ros.demo import DEFAULT_SIZE, header_text, run_demo, summary_text
    from mlesam_ros.output_paths import CreatedOutputs, check_output_folder

    check_output_folder(args.out, "--out")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # The header first (what is about to happen, where it goes), then progress, then results.
    print(header_text(args.out, args.frames, DEFAULT_SIZE, args.model), flush=True)
    with CreatedOutputs(args.out):  # a failed first demo leaves no half-made folder
        summary = run_demo(args.out, args.frames, args.backend, args.model,
                           progress=not args.quiet)  # fmt: skip
    print(summary_text(summary))
    return 0
