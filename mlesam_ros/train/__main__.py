"""``python -m mlesam_ros.train`` = ``mlesam train``; the module form torchrun launches.

torchrun --nproc_per_node 2 -m mlesam_ros.train --config config/train/demo_tiny.yaml
"""

import argparse
import sys

from mlesam_ros.train.commands import add_train_arguments, run_train


def main(argv: list[str] | None = None) -> int:
    """Parse the ``mlesam train`` options and train."""
    parser = argparse.ArgumentParser(prog="python -m mlesam_ros.train")
    add_train_arguments(parser)
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
