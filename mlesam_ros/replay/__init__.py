"""Bag replay without ROS: the node core on a recorded bag, its topics written to a new bag.

``transport`` (the bag as a node transport), ``output`` (the partial output bag), ``scoring``
(summary and mIoU against ground truth), ``run`` (:func:`replay_bag`), ``commands``
(``mlesam replay``). The names below load their module on first use, so the command line
registers ``mlesam replay`` without importing the node core.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BagTransport": "mlesam_ros.replay.transport",
    "ReplayInterrupted": "mlesam_ros.replay.run",
    "ReplayResult": "mlesam_ros.replay.scoring",
    "replay_bag": "mlesam_ros.replay.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the defining submodule on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlesam_ros.replay' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
