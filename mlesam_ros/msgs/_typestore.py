"""The one rosbags typestore (ROS 2 Humble) that every module builds messages from.

Loading a typestore parses a few hundred message definitions, so it is created once and
cached; callers that only read messages never pay for it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def typestore() -> Any:
    """Return the project-wide rosbags typestore (``Stores.ROS2_HUMBLE``)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def message_class(msgtype: str) -> Any:
    """Return the rosbags class for ``msgtype`` such as ``"sensor_msgs/msg/Image"``."""
    return typestore().types[msgtype]
