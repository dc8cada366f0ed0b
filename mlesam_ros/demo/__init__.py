"""``mlesam demo``: record a synthetic drive, replay it through the node, draw what it saw.

:mod:`~mlesam_ros.demo.run` drives the three steps (record, replay, render) and writes the
summary; :mod:`~mlesam_ros.demo.render` draws the captioned rows, the legend, the strip and
the GIF.
"""

from mlesam_ros.demo.run import (
    DEFAULT_FRAMES,
    DEFAULT_OUT,
    DEFAULT_SIZE,
    RecordedDrive,
    Schedule,
    header_text,
    record_drive,
    run_demo,
    summary_text,
)

__all__ = [
    "DEFAULT_FRAMES",
    "DEFAULT_OUT",
    "DEFAULT_SIZE",
    "RecordedDrive",
    "Schedule",
    "header_text",
    "record_drive",
    "run_demo",
    "summary_text",
]
