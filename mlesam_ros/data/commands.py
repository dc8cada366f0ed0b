"""``mlesam synth``: render synthetic drives into a ROS 2 bag and a DELIVER-layout tree."""

from __future__ import annotations

import argparse
from pathlib import Path
from shlex import quote


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic multi-sensor drives as a ROS 2 bag and a DELIVER-layout tree",
        description=(
            "Render a procedural street with RGB, depth, thermal and LiDAR sensors and exact "
            "labels. Writes OUT/bag (ROS 2 bag) and OUT/deliver (DELIVER folder layout). "
            "With several conditions the frames are split between them, one drive each."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--frames", type=int, default=20, help="total frames (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--conditions", default="sun",
                        help="comma-separated: sun,cloud,night,fog,rain (default sun)")
    parser.add_argument("--width", type=int, default=640, help="RGB/depth width (default 640)")
    parser.add_argument("--height", type=int, default=480, help="RGB/depth height (default 480)")
    parser.add_argument("--lidar-beams", type=int, default=64, help="LiDAR rings (default 64)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="bag storage plugin (default mcap)")
    parser.add_argument("--depth-encoding", choices=("32FC1", "16UC1"), default="32FC1",
                        help="depth image encoding: float metres or uint16 millimetres")
    parser.add_argument("--failure-rate", type=float, default=0.0,
                        help="per-frame, per-sensor failure probability (default 0)")
    parser.add_argument("--corrupt", action="append", default=[],
                        metavar="SENSOR:KIND[:SEV][@START[-STOP]]",
                        help="make a sensor lie from frame START on, e.g. lidar:noise:3@20 or "
                             "depth:frozen@12 (repeatable; kinds: mlesam_ros.data.corruptions)")
    parser.add_argument("--compressed", action="store_true",
                        help="record the cameras as image_transport streams them: RGB JPEG and "
                             "thermal PNG on <topic>/compressed, depth on "
                             "<topic>/compressedDepth; "
                             "also writes OUT/compressed.yaml (the transport.* params to read it)")
    parser.add_argument("--depth-compression", choices=("png", "rvl"), default="png",
                        help="compressedDepth codec with --compressed (default png; rvl needs "
                             "image_transport_plugins newer than Humble's)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="train",
                        help="DELIVER split folder to write (default train)")
    parser.add_argument("--cameras", type=int, default=1,
                        help="N > 1: a surround rig of N RGB-D cameras (front, left, rear, right, "
                             "...) around the LiDAR, each with exact labels; writes the bag "
                             "and OUT/cameras.yaml (its node parameters), no DELIVER tree")
    parser.add_argument("--lidar-azimuth-steps", type=int, default=None,
                        help="LiDAR columns per sweep (default 1024; 2048 with --cameras)")
    parser.add_argument("--dead-camera", action="append", default=[], metavar="CAMERA@FRAME",
                        help="with --cameras: CAMERA publishes nothing from FRAME on "
                             "(repeatable), e.g. left@10")
    parser.add_argument("--no-bag", action="store_true", help="skip the bag")
    parser.add_argument("--no-tree", action="store_true", help="skip the DELIVER tree")
    parser.set_defaults(handler=_run)  # fmt: skip


def compressed_params_yaml() -> str:
    """Return the params file that reads a ``--compressed`` recording (its transports)."""
    from mlesam_ros.data.export import COMPRESSED_TRANSPORTS

    lines = ["# transport.* for a bag written by `mlesam synth --compressed`",
             "/**:", "  ros__parameters:"]  # fmt: skip
    lines += [f"    transport.{sensor}: {transport}"
              for sensor, transport in COMPRESSED_TRANSPORTS.items()]  # fmt: skip
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace) -> int:
    from itertools import chain

    from tqdm import tqdm

    from mlesam_ros.data.corruptions import ScheduledCorruption
    from mlesam_ros.data.export import export_frames
    from mlesam_ros.data.synth import CONDITIONS, SyntheticDrive, default_rig
    from mlesam_ros.data.synthetic_dataset import corrupt_stream
    from mlesam_ros.output_paths import CreatedOutputs, check_output_folder

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise ValueError(
            f"--conditions: unknown {unknown or 'empty'}; choose from {', '.join(CONDITIONS)}"
        )
    if args.frames <= 0:
        raise ValueError(f"--frames: must be > 0, got {args.frames}")
    if args.cameras != 1:
        return _run_surround(args, conditions)
    schedule = [ScheduledCorruption.parse(text) for text in args.corrupt]
    check_output_folder(args.out, "--out")
    rig = default_rig(args.width, args.height, lidar_beams=args.lidar_beams,
                      lidar_azimuth_steps=args.lidar_azimuth_steps or 1024)
    counts = [args.frames // len(conditions) + (i < args.frames % len(conditions))
              for i in range(len(conditions))]  # fmt: skip
    streams = []
    start_ns = None
    for number, (condition, count) in enumerate(zip(conditions, counts, strict=True)):
        drive = SyntheticDrive(seed=args.seed * 1000 + number, condition=condition, rig=rig,
                               failure_rate=args.failure_rate)  # fmt: skip
        if start_ns is None:
            start_ns = drive.start_ns
        # One continuous recording: each drive's stamps continue after the previous one.
        drive.start_ns = start_ns + sum(counts[:number]) * drive.frame_period_ns
        streams.append(drive.frames(count))
    frames = tqdm(corrupt_stream(chain(*streams), schedule, args.seed), total=args.frames,
                  unit="frame", desc="synth")  # fmt: skip
    with CreatedOutputs(args.out):  # a failure leaves no half-written drive behind
        summary = export_frames(
            frames, args.out, storage=args.storage, depth_encoding=args.depth_encoding,
            split=args.split, write_tree=not args.no_tree, write_bag=not args.no_bag,
            compressed=args.compressed, depth_codec=args.depth_compression,
        )  # fmt: skip
        params = ""
        if args.compressed and not args.no_bag:
            params_file = Path(args.out) / "compressed.yaml"
            params_file.write_text(compressed_params_yaml())
            params = f" --params {quote(str(params_file))}"
    print(f"wrote {summary['frames']} frames: bag {summary['bag']}, deliver {summary['deliver']}")
    # The next commands, with the paths just written (eval takes OUT itself, see its --data).
    if not args.no_tree:
        print(f"evaluate: mlesam eval --data {quote(str(args.out))} --split {args.split}")
    if not args.no_bag:
        print(f"replay:   mlesam replay --bag {quote(str(summary['bag']))} "
              f"--out {quote(str(Path(args.out) / 'replay'))}{params}")  # fmt: skip
    return 0


def _run_surround(args: argparse.Namespace, conditions: list[str]) -> int:
    """``--cameras N``: the surround rig's drive as a bag, plus the node parameters for it."""
    import yaml
    from tqdm import tqdm

    from mlesam_ros.data.export import camera_parameters, write_surround_bag
    from mlesam_ros.data.synth.surround import SurroundDrive, surround_rig
    from mlesam_ros.output_paths import CreatedOutputs, check_output_folder
    from mlesam_ros.text import shown

    if args.corrupt or args.failure_rate:
        raise ValueError("--cameras: --corrupt and --failure-rate are for the one-camera rig; "
                         "use --dead-camera CAMERA@FRAME")
    if args.compressed:
        raise ValueError("--cameras: --compressed is for the one-camera rig; the surround rig "
                         "records raw images")
    if len(conditions) != 1:
        raise ValueError("--cameras: give one condition (--conditions sun)")
    rig = surround_rig(args.cameras, args.width, args.height, lidar_beams=args.lidar_beams,
                       lidar_azimuth_steps=args.lidar_azimuth_steps or 2048)
    dead = {}
    for text in args.dead_camera:
        camera, _, frame = text.partition("@")
        if camera not in rig.cameras or not frame.isdigit():
            raise ValueError(f"--dead-camera: expected CAMERA@FRAME with CAMERA one of "
                             f"{', '.join(rig.cameras)}, got {shown(text)}")
        dead[camera] = int(frame)
    drive = SurroundDrive(seed=args.seed, condition=conditions[0], rig=rig, dead=dead)
    check_output_folder(args.out, "--out")
    out = Path(args.out)
    params = out / "cameras.yaml"
    with CreatedOutputs(out):  # a failure leaves no half-written drive behind
        out.mkdir(parents=True, exist_ok=True)
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": camera_parameters(rig)}},
                                         sort_keys=False))
        if not args.no_bag:
            frames = tqdm(drive.frames(args.frames), total=args.frames, unit="frame",
                          desc="synth")  # fmt: skip
            count = write_surround_bag(frames, out / "bag", args.storage, args.depth_encoding)
    if not args.no_bag:
        print(f"wrote {count} frames of {len(rig.cameras)} cameras "
              f"({', '.join(rig.cameras)}): bag {out / 'bag'}, parameters {params}")
        print(f"replay:   mlesam replay --bag {quote(str(out / 'bag'))} --params "
              f"{quote(str(params))} --out {quote(str(out / 'replay'))}")
    return 0
