"""The ``mlesam`` command line: one entry point, one subcommand per job.

Each subcommand lives beside the code it drives (``mlesam_ros/<concern>/commands.py``) and
exposes ``register(subparsers)``. This module only assembles them, so it stays thin and
``mlesam --help`` never imports torch, onnxruntime or rclpy: handlers import heavy modules
when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlesam_ros import __version__

# Modules that provide subcommands, in the order `--help` lists them. Add a module here when
# the issue that owns a subcommand lands; never add a placeholder.
COMMAND_MODULES: tuple[str, ...] = (
    "mlesam_ros.data.commands",
    "mlesam_ros.model.commands",
    "mlesam_ros.engine.commands",
    "mlesam_ros.train.commands",
    "mlesam_ros.pipeline.commands",
    "mlesam_ros.dds.commands",
)


def build_parser() -> argparse.ArgumentParser:
    """Create the parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="mlesam",
        description=(
            "MLE-SAM multi-modal semantic segmentation: synthetic data, training, evaluation, "
            "export, engines, bag replay and the demo."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mlesam_ros {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mlesam`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as error:
        # Bad input (a missing file, a wrong option value) is the user's to fix: say what and
        # where in one line instead of a traceback.
        print(f"mlesam {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
