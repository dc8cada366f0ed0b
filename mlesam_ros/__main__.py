"""``python -m mlesam_ros`` is the same as the ``mlesam`` command."""

import sys

from mlesam_ros.cli import main

# Guarded: worker processes started with "spawn" (synthetic rendering) import this module.
if __name__ == "__main__":
    sys.exit(main())
