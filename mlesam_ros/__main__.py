"""``python -m mlesam_ros`` is the same as the ``mlesam`` command."""

import sys

from mlesam_ros.cli import main

sys.exit(main())
