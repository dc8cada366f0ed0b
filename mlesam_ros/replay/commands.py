"""``mlesam replay``: the node core on a bag, without ROS."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlesam_ros.engine import BACKENDS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``replay`` subcommand."""
    replay = subparsers.add_parser(
        "replay",
        help="run the segmentation node on a recorded bag and write its topics to a new bag",
        description=(
            "Replay a rosbag2 (mcap or sqlite3) through the node core with the bag's clock, "
            "write /mlesam/labels, labels_color, confidence, labeled_points, label_info and "
            "/diagnostics to OUT, and print frames, fused modalities, latency and (with "
            "/mlesam/gt_labels in the bag) mIoU."
        ),
    )
    replay.add_argument("--bag", type=Path, required=True, help="input bag folder")
    replay.add_argument("--out", type=Path, required=True, help="output bag folder (new)")
    replay.add_argument("--params", type=Path, help="ROS 2 params YAML (/**: ros__parameters:)")
    replay.add_argument("--backend", choices=BACKENDS, help="overrides model.backend")
    replay.add_argument("--model", type=Path, help="overrides model.path (.onnx/.engine/.pt)")
    replay.add_argument(
        "--storage", choices=("mcap", "sqlite3"), help="output storage (default: the input's)"
    )
    replay.add_argument(
        "--copy-inputs",
        action="store_true",
        help="also copy the input topics the node read (and tf) into --out, for playback",
    )
    replay.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    replay.add_argument("--quiet", action="store_true", help="no progress bar")
    replay.set_defaults(handler=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    import json
    import logging
    import signal

    from mlesam_ros.output_paths import CreatedOutputs, check_output_file, check_output_folder
    from mlesam_ros.pipeline.config import command_line_parameters
    from mlesam_ros.pipeline.params_file import is_ros_parameter
    from mlesam_ros.replay.run import replay_bag

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # `timeout`/`kill` end a replay like Ctrl-C: output kept

    # Every output path before any work: a bad --summary must not fail after the replay.
    check_output_folder(args.out, "--out", new=True)
    check_output_file(args.summary, "--summary")
    signal.signal(signal.SIGTERM, stop)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    # Replay runs the node as /mlesam on the bag's clock: ROS's own parameters do not apply.
    parameters = {name: value for name, value in
                  command_line_parameters(args.params, args.backend, args.model).items()
                  if not is_ros_parameter(name)}  # fmt: skip
    created = CreatedOutputs(args.out, args.summary)
    result = replay_bag(
        args.bag,
        args.out,
        parameters,
        storage=args.storage,
        progress=not args.quiet,
        copy_inputs=args.copy_inputs,
    )
    if args.summary:
        partial = args.summary.with_name(args.summary.name + ".partial")
        try:
            partial.write_text(json.dumps(result.summary(), indent=2) + "\n")
            partial.replace(args.summary)  # never a half-written summary
        except Exception:
            partial.unlink(missing_ok=True)
            created.discard()  # the command failed: no OUT without its summary
            raise
    print(result.text())
    return 0 if result.frames else 1


