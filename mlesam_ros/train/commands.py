"""``mlesam train`` and ``mlesam eval``: argument handling only; the work is in this package."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training and evaluation subcommands."""
    train_parser = subparsers.add_parser(
        "train", help="train MLE-SAM from a YAML config (single process or torchrun DDP)",
        description="Train from config/train/<name>.yaml. Under torchrun (WORLD_SIZE > 1) every "
                    "rank runs this command and DistributedDataParallel keeps them in step: "
                    "torchrun --nproc_per_node N -m mlesam_ros.train --config ...")  # fmt: skip
    add_train_arguments(train_parser)
    train_parser.set_defaults(handler=run_train)

    eval_parser = subparsers.add_parser(
        "eval", help="evaluate a checkpoint: mIoU, per class, every modality combination",
        description="Score a checkpoint on held-out data with every non-empty subset of its "
                    "modalities present (the missing-modality protocol), per condition. Writes "
                    "metrics.json and eval.png to --out.")  # fmt: skip
    add_eval_arguments(eval_parser)
    eval_parser.set_defaults(handler=run_eval)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlesam train`` (also used by ``python -m mlesam_ros.train``)."""
    parser.add_argument("--config", type=Path, required=True, help="config/train/<name>.yaml")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", type=Path, help="continue from a run's last.pt")
    parser.add_argument("--epochs", type=int, help="override optim.epochs")
    parser.add_argument("--max-steps", type=int, help="override optim.max_steps")
    parser.add_argument("--batch-size", type=int, help="override optim.batch_size")
    parser.add_argument("--device", help="override device (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--num-workers", type=int, help="override num_workers")
    parser.add_argument("--seed", type=int, help="override seed")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override any field, e.g. --set optim.lr=3e-4 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true",
                        help="check and print the resolved config, then exit")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlesam eval``."""
    parser.add_argument("--checkpoint", type=Path,
                        help="MLE-SAM checkpoint (default: the shipped demo model)")
    parser.add_argument("--sam-checkpoint", type=Path,
                        help="official SAM weights the checkpoint was trained from, if any")
    parser.add_argument("--data", default="synthetic",
                        help="'synthetic' (held-out rendered frames), a DELIVER/MUSES folder, "
                             "or a folder `mlesam synth --out` wrote (its deliver/ is used)")
    parser.add_argument("--dataset", choices=("deliver", "muses", "synthetic"),
                        help="layout of the --data folder (default deliver)")
    parser.add_argument("--split",
                        help="folder datasets: split (default val; when the folder has only "
                             "one split, e.g. what `mlesam synth` wrote, that one, said aloud)")
    parser.add_argument("--conditions", help="comma-separated conditions/weathers to keep")
    parser.add_argument("--seed", type=int, default=1000,
                        help="synthetic: street seed, one training never used (default 1000)")
    parser.add_argument("--frames", type=int, default=250, help="synthetic: frames (default 250)")
    parser.add_argument("--frames-per-drive", type=int, default=10,
                        help="synthetic: frames per street; conditions cycle per street")
    parser.add_argument("--failure-rate", type=float, default=0.0,
                        help="synthetic: per-sensor failure probability (default 0)")
    parser.add_argument("--corrupt", action="append", default=[], metavar="SENSOR:KIND[:SEV]",
                        help="make a present sensor lie in every frame, e.g. lidar:noise:3 "
                             "(repeatable; kinds: mlesam_ros.data.corruptions, severity 1-5, "
                             "default 3)")
    parser.add_argument("--robustness", action="store_true",
                        help="also score every sensor x corruption: clean, corrupted and "
                             "absent mIoU per cell (writes robustness.json with --out)")
    parser.add_argument("--severity", type=int, default=3,
                        help="--robustness: corruption severity 1-5 (default 3)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--all-only", action="store_true",
                        help="only the all-modalities combination (skip the protocol)")
    parser.add_argument("--per-subset", action="store_true",
                        help="run the whole model once per combination instead of encoding "
                             "each frame once (same scores, slower; for comparison)")
    parser.add_argument("--out", type=Path, help="write metrics.json and eval.png here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace) -> int:
    """Load the config, apply overrides and train."""
    from mlesam_ros.train.config import load_train_config

    overrides = list(args.set)
    for flag, key in (("epochs", "optim.epochs"), ("max_steps", "optim.max_steps"),
                      ("batch_size", "optim.batch_size"), ("device", "device"),
                      ("num_workers", "num_workers"), ("seed", "seed")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    config = load_train_config(args.config, overrides)
    run_dir = args.out or Path("runs") / args.config.stem
    if not args.dry_run:
        from mlesam_ros.output_paths import check_output_folder

        # Before any data or model is loaded. A run that fails later keeps its folder: its
        # last.pt resumes it (--resume).
        check_output_folder(run_dir, "--out")
    if args.dry_run:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    from mlesam_ros.train.trainer import train

    result = train(config, run_dir, resume=args.resume, progress=not args.no_progress)
    if result.step and Path(result.model_path).is_file():
        print(f"trained {result.step} steps (final loss {result.final_loss:.4f}); wrote "
              f"{result.model_path} and {result.last_path}")  # fmt: skip
        print(f"evaluate: mlesam eval --checkpoint {result.model_path}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint with the missing-modality protocol and write the reports."""
    from mlesam_ros.data.corruptions import SEVERITIES, parse_corruptions
    from mlesam_ros.engine import resolve_default_checkpoint
    from mlesam_ros.model import load_checkpoint
    from mlesam_ros.output_paths import CreatedOutputs, check_output_folder
    from mlesam_ros.train.data import build_eval_dataset
    from mlesam_ros.train.distributed import resolve_device
    from mlesam_ros.train.evaluate import evaluate, modality_subsets, torch_predictor
    from mlesam_ros.train.report import format_report, write_plot
    from mlesam_ros.train.robustness import (
        evaluate_robustness,
        robustness_table,
        table_cells,
        with_corruptions,
    )

    if args.batch_size < 1 or args.frames < 1:
        raise ValueError("batch-size/frames: must be >= 1")
    if args.severity not in SEVERITIES:
        raise ValueError(f"--severity: must be 1..5, got {args.severity}")
    parse_corruptions(args.corrupt)  # a bad --corrupt fails before the model loads
    if args.out:
        check_output_folder(args.out, "--out")  # before the evaluation, not after it
    checkpoint = args.checkpoint or resolve_default_checkpoint()
    device = resolve_device(args.device)
    model, extra = load_checkpoint(checkpoint, args.sam_checkpoint, map_location=device)
    config = model.config
    conditions = [c.strip() for c in args.conditions.split(",")] if args.conditions else None
    data, split = resolve_eval_data(args.data, args.dataset, args.split)
    dataset = build_eval_dataset(
        data, args.dataset, config.modalities, tuple(config.image_size), split=split,
        seed=args.seed, frames=args.frames, frames_per_drive=args.frames_per_drive,
        failure_rate=args.failure_rate, conditions=conditions,
    )  # fmt: skip
    from mlesam_ros.train.trainer import class_names_for

    class_names = extra.get("class_names") or class_names_for(config.num_classes)
    subsets = [tuple(config.modalities)] if args.all_only else modality_subsets(config.modalities)
    corruptions = parse_corruptions(args.corrupt)
    if hasattr(dataset, "keep_frames") and args.robustness:
        dataset.keep_frames = True  # the table scores every frame once per cell
    predictor = torch_predictor(model, device)
    result = evaluate(
        predictor, with_corruptions(dataset, corruptions), config.modalities, class_names,
        subsets=subsets, batch_size=args.batch_size, progress=not args.no_progress,
        encode_once=not args.per_subset,
    )  # fmt: skip
    result.source = {"checkpoint": str(checkpoint), "data": data, "split": split,
                     "dataset": args.dataset or ("synthetic" if args.data == "synthetic"
                                                 else "deliver"),
                     "seed": args.seed, "frames": len(dataset),
                     "failure_rate": args.failure_rate,
                     "corruptions": [c.name for c in corruptions]}  # fmt: skip
    print(format_report(result))
    robustness = None
    if args.robustness:
        with_corruptions(dataset, ())
        if hasattr(dataset, "corruptions"):
            dataset.corruptions = ()
        robustness = evaluate_robustness(
            predictor, dataset, config.modalities, class_names,
            table_cells(config.modalities, args.severity), batch_size=args.batch_size,
            progress=not args.no_progress,
        )  # fmt: skip
        print()
        print(robustness_table({"model": robustness}))
    if args.out:
        import json

        reports = [args.out / name for name in ("metrics.json", "eval.png", "robustness.json")]
        with CreatedOutputs(args.out, *reports):
            args.out.mkdir(parents=True, exist_ok=True)
            reports[0].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
            write_plot(result, reports[1])
            if robustness is not None:
                reports[2].write_text(json.dumps(robustness.to_dict(), indent=2) + "\n")
        print(f"wrote {reports[0]} and {reports[1]}")
        if robustness is not None:
            print(f"wrote {reports[2]}")
    return 0


# Where `mlesam synth --out DIR` puts the DELIVER-layout tree (next to DIR/bag).
SYNTH_TREE = "deliver"
# Split folders per layout: DELIVER <modal>/<condition>/<split>/, MUSES <modal>/<split>/.
_SPLIT_GLOBS = {"deliver": "img/*/*", "muses": "frame_camera/*"}


def resolve_eval_data(data: str, dataset: str | None, split: str | None) -> tuple[str, str]:
    """(folder, split) for ``mlesam eval``: accept what other commands write, pick the split.

    ``DIR`` from ``mlesam synth --out DIR`` means ``DIR/deliver``. Without ``--split`` the
    split is ``val``, or the folder's only split when it has one (synth writes ``train`` by
    default), announced on stdout so the choice is never silent; a split the folder does not
    have is an error that lists the ones it has.
    """
    if data == "synthetic" or dataset == "synthetic":
        return data, split or "val"
    root = Path(data)
    layout = dataset or "deliver"
    if layout == "deliver" and not (root / "img").is_dir() and (root / SYNTH_TREE).is_dir():
        root = root / SYNTH_TREE
        print(f"eval: using {root} (the DELIVER tree `mlesam synth` wrote in {data})")
    if not root.is_dir():
        return str(root), split or "val"  # the dataset builder reports the missing folder
    available = sorted({path.name for path in root.glob(_SPLIT_GLOBS[layout]) if path.is_dir()})
    if split is None:
        if "val" in available or len(available) != 1:
            split = "val"
        else:
            split = available[0]
            print(f"eval: using split '{split}', the only one in {root} "
                  "(pass --split to choose another)")  # fmt: skip
    if available and split not in available:
        raise ValueError(
            f"split: {root} has no '{split}' split; it has {', '.join(available)} "
            f"(pass --split {available[0]})"
        )
    return str(root), split
