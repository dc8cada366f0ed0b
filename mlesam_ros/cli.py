"""The ``mlesam`` command line: one entry point, one subcommand per job.

Each subcommand lives beside the code it drives (``mlesam_ros/<concern>/commands.py``) and
exposes ``register(subparsers)``. This module only assembles them, so it stays thin and
``mlesam --help`` never imports torch, onnxruntime or rclpy: handlers import heavy modules
when they run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mlesam_ros import __version__

DEBUG_ENV = "MLESAM_DEBUG"
"""Set to 1 (or pass ``--debug``) to get the full traceback instead of the one-line error."""

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
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the full traceback of an error (or set {DEBUG_ENV}=1)",
    )
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
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt as interrupt:
        detail = str(interrupt)
        print(f"mlesam {args.command}: interrupted" + (f"; {detail}" if detail else ""),
              file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        # Bad input (a missing file, a wrong option value, a broken model or bag) is the
        # user's to fix: say what and where in one line instead of a traceback.
        print(f"mlesam {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, (FileNotFoundError, ValueError)) else 1


def one_line(error: BaseException) -> str:
    """Format the error and its notes as one line; unexpected error types get a hint."""
    text = " ".join(str(error).split())
    notes = [" ".join(str(note).split()) for note in getattr(error, "__notes__", ())]
    if isinstance(error, (FileNotFoundError, ValueError)) and text:
        return "; ".join([text, *notes])
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return "; ".join([text, *notes]) + f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"

if __name__ == "__main__":
    sys.exit(main())
