"""Time stamps and headers as integer nanoseconds, and the one rule for which stamps are times.

Integers avoid the float rounding that makes two stamps of the same frame compare unequal.

The stamp rule (:func:`checked_stamp_ns`), applied where a message enters every transport
(the core's sensor and CameraInfo callbacks, the tf buffer of the DDS and bag transports):

- ``nanosec`` must be below 10^9. ``builtin_interfaces/Time`` is seconds plus a fraction;
  ``nanosec = 1999999999`` is not a time, and read as nanoseconds it would put the message
  a second or more ahead of the ones after it (outputs must be strictly increasing).
- ``sec`` must not be negative (``sec`` is a signed 32-bit field; ROS time starts at 0).
- A stamp of exactly 0 is *unset* (a driver that never fills the header). It is refused
  where the stamp is used as a time (sensor data, dynamic ``/tf``) and accepted where it is
  not (CameraInfo, ``/tf_static``: calibration holds for all time).

A refused stamp raises :class:`StampError` naming the fault; the message is ignored, counted
(an RGB image as ``dropped_zero_stamp`` or ``dropped_invalid_stamp``) and reported.
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


class StampError(ValueError):
    """A header stamp that is not a time; ``reason`` is the drop reason it is counted under."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text)
        self.reason = reason


def checked_stamp_ns(stamp: Any, *, allow_zero: bool = False, field: str = "header.stamp") -> int:
    """Return ``stamp`` in ns if it is a valid time (the module's rule), else :class:`StampError`.

    ``allow_zero``: accept an unset (0) stamp where the time is not used (calibration).
    """
    try:
        sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    except (AttributeError, TypeError, ValueError) as error:
        raise StampError(
            f"{field}: expected 'sec' and 'nanosec' integer fields, got {type(stamp).__name__}",
            "invalid_stamp",
        ) from error
    if not 0 <= nanosec < NANOSECONDS_PER_SECOND:
        raise StampError(
            f"{field}.nanosec is {nanosec}, not below 10^9 (not a time: the driver's stamp is "
            "corrupt)",
            "invalid_stamp",
        )
    if sec < 0:
        raise StampError(
            f"{field}.sec is {sec}, negative (before 1970: the driver's stamp is corrupt)",
            "invalid_stamp",
        )
    stamp_ns = sec * NANOSECONDS_PER_SECOND + nanosec
    if stamp_ns == 0 and not allow_zero:
        raise StampError(f"{field} is 0 (unset)", "zero_stamp")
    return stamp_ns


def checked_header_stamp_ns(msg: Any, *, allow_zero: bool = False) -> int:
    """``msg.header.stamp`` in ns under the stamp rule (:func:`checked_stamp_ns`)."""
    header = getattr(msg, "header", None)
    if header is None:
        raise StampError(f"{type(msg).__name__}: message has no 'header' field", "bad_header")
    return checked_stamp_ns(getattr(header, "stamp", None), allow_zero=allow_zero)


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
