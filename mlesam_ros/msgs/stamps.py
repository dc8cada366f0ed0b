"""Time stamps and headers as integer nanoseconds, the one time unit used project-wide.

Integers avoid the float rounding that makes two stamps of the same frame compare unequal.
"""

from __future__ import annotations

from typing import Any

from mlesam_ros.msgs._typestore import message_class

NANOSECONDS_PER_SECOND = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """Convert a ``builtin_interfaces/Time`` (anything with ``sec``, ``nanosec``) to ns."""
    try:
        return int(stamp.sec) * NANOSECONDS_PER_SECOND + int(stamp.nanosec)
    except AttributeError as error:
        raise ValueError(
            f"stamp: expected an object with 'sec' and 'nanosec' fields, got "
            f"{type(stamp).__name__}"
        ) from error


def ns_to_stamp(stamp_ns: int) -> Any:
    """Build a rosbags ``builtin_interfaces/msg/Time`` from integer nanoseconds."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise ValueError(f"stamp_ns: must be >= 0, got {stamp_ns}")
    sec, nanosec = divmod(stamp_ns, NANOSECONDS_PER_SECOND)
    return message_class("builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)


def header_stamp_ns(msg: Any) -> int:
    """Return ``msg.header.stamp`` in nanoseconds (any message with a std_msgs header)."""
    header = getattr(msg, "header", None)
    if header is None:
        raise ValueError(f"{type(msg).__name__}: message has no 'header' field")
    return stamp_to_ns(header.stamp)


def make_header(header_or_stamp: Any, frame_id: str = "") -> Any:
    """Build a rosbags ``std_msgs/msg/Header``.

    ``header_or_stamp`` may be integer nanoseconds, a ``Time``-like object or a whole
    ``Header``-like object (copied; a non-empty ``frame_id`` argument overrides its frame).
    """
    header_class = message_class("std_msgs/msg/Header")
    if hasattr(header_or_stamp, "stamp"):
        stamp_ns = stamp_to_ns(header_or_stamp.stamp)
        frame_id = frame_id or str(getattr(header_or_stamp, "frame_id", ""))
    elif hasattr(header_or_stamp, "sec"):
        stamp_ns = stamp_to_ns(header_or_stamp)
    else:
        stamp_ns = int(header_or_stamp)
    return header_class(stamp=ns_to_stamp(stamp_ns), frame_id=str(frame_id))
