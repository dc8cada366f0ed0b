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
from mlesam_ros.text import LINE_LIMIT, bounded

DEBUG_ENV = "MLESAM_DEBUG"
"""Set to 1 (or pass ``--debug``) to get the full traceback instead of the one-line error."""

# Modules that provide subcommands, in the order `--help` lists them: each concern registers
# its own (`register(subparsers)`); this list is the only thing the command line knows of them.
COMMAND_MODULES: tuple[str, ...] = (
    "mlesam_ros.data.commands",  # synth
    "mlesam_ros.model.commands",  # model-info
    "mlesam_ros.train.commands",  # train, eval
    "mlesam_ros.engine.commands",  # export, build-engine
    "mlesam_ros.bench.commands",  # bench
    "mlesam_ros.replay.commands",  # replay
    "mlesam_ros.demo.commands",  # demo
    "mlesam_ros.dds.commands",  # node, play
)


class HelpFormatter(argparse.HelpFormatter):
    """Show each option's default after its help text (when it has a default worth showing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "(default" in text
            or default in (None, False, argparse.SUPPRESS, [])
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


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
    add_parser = subparsers.add_parser

    def add_subcommand(name: str, **kwargs: object) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", HelpFormatter)
        return add_parser(name, **kwargs)

    subparsers.add_parser = add_subcommand  # every subcommand shows its defaults
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def parse_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported with its subcommand's usage, not the top's."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        subcommand = _subparsers(parser).choices.get(getattr(args, "command", None) or "")
        (subcommand or parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mlesam`` command; returns the process exit code."""
    parser = build_parser()
    args = parse_arguments(parser, argv)
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
    text = " ".join(bounded(error, 20 * LINE_LIMIT).split())
    notes = [" ".join(bounded(note).split()) for note in getattr(error, "__notes__", ())]
    if isinstance(error, (FileNotFoundError, ValueError)) and text:
        return bounded("; ".join([text, *notes]))
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return bounded("; ".join([text, *notes])) + (
        f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
    )


if __name__ == "__main__":
    sys.exit(main())
