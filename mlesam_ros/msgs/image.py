"""``sensor_msgs/Image`` <-> numpy for the encodings the front end consumes.

Why not only ``rosbags.image.image_to_cvimage``: it builds the array from the first
``height * width * channels`` bytes and ignores ``step``, so any image with row padding (common
from GPU drivers and ``mono16`` thermal cameras with 4-byte aligned rows) comes out sheared;
and importing it loads OpenCV. Here the buffer is viewed with the message's own strides, so
padded rows decode correctly and unpadded little-endian images are zero-copy views. The
results agree with rosbags-image wherever its assumptions hold (tested).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from mlesam_ros.msgs._typestore import message_class
from mlesam_ros.msgs.stamps import make_header
from mlesam_ros.text import quote

# encoding -> (numpy base type, channels). Depth conventions follow REP 118: 16UC1 holds
# millimetres (0 = no reading), 32FC1 holds metres (NaN = no reading).
IMAGE_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "rgb16": ("u2", 3),
    "bgr16": ("u2", 3),
    "rgba16": ("u2", 4),
    "bgra16": ("u2", 4),
    "mono8": ("u1", 1),
    "mono16": ("u2", 1),
    "16UC1": ("u2", 1),
    "32FC1": ("f4", 1),
}
DEPTH_ENCODINGS = ("16UC1", "32FC1")
_NATIVE_BIGENDIAN = sys.byteorder == "big"


def _where(topic: str) -> str:
    return f"image on topic {quote(topic)}" if topic else "image"


def _encoding_info(encoding: str, topic: str) -> tuple[str, int]:
    try:
        return IMAGE_ENCODINGS[encoding]
    except KeyError:
        raise ValueError(
            f"{_where(topic)}: unsupported encoding {quote(encoding)}; supported: "
            f"{', '.join(IMAGE_ENCODINGS)} (convert on the driver side or add a decoder)"
        ) from None


def message_bytes(data: Any) -> np.ndarray:
    """View a message's ``data`` field (ndarray, bytes, array.array, list) as uint8, no copy.

    rosbags gives numpy arrays, rclpy gives ``array.array`` or ``bytes``; old rclpy a list.
    """
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def image_to_numpy(msg: Any, topic: str = "") -> np.ndarray:
    """Decode an Image message into ``(H, W)`` or ``(H, W, C)`` in its own channel order.

    Honours ``step`` (row padding) and ``is_bigendian``. The result is a view of
    ``msg.data`` when the byte order is native (read-only if the buffer is), otherwise a
    converted copy. Raises ``ValueError`` naming the topic, the encoding and the sizes for
    unsupported encodings or truncated buffers.
    """
    encoding = str(msg.encoding)
    base, channels = _encoding_info(encoding, topic)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    dtype = np.dtype(base).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * dtype.itemsize
    if height <= 0 or width <= 0:
        raise ValueError(f"{_where(topic)}: empty {encoding} image ({width}x{height})")
    if step < row_bytes:
        raise ValueError(
            f"{_where(topic)}: step {step} is smaller than width*bytes_per_pixel = {row_bytes} "
            f"for {width}x{height} {encoding}"
        )
    buffer = message_bytes(msg.data)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise ValueError(
            f"{_where(topic)}: truncated {encoding} data: {width}x{height} with step {step} "
            f"needs {step * height} bytes, got {buffer.size}"
        )
    array = np.ndarray(
        shape=(height, width, channels),
        dtype=dtype,
        buffer=buffer,
        strides=(step, channels * dtype.itemsize, dtype.itemsize),
    )
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array[:, :, 0] if channels == 1 else array


def image_to_rgb8(msg: Any, topic: str = "") -> np.ndarray:
    """Decode any colour or mono Image into a contiguous ``(H, W, 3)`` uint8 RGB array.

    Alpha is dropped; mono8 is replicated; 16-bit colour and mono16 keep their 8 most
    significant bits.
    """
    encoding = str(msg.encoding)
    array = image_to_numpy(msg, topic)
    if encoding in DEPTH_ENCODINGS:
        raise ValueError(
            f"{_where(topic)}: {encoding} is a depth encoding; use image_to_depth_m instead"
        )
    if array.dtype == np.uint16:  # mono16, rgb16, bgr16, rgba16, bgra16
        array = (array >> 8).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if encoding.startswith("bgr"):
        array = array[:, :, 2::-1]
    return np.ascontiguousarray(array[:, :, :3])


def image_to_depth_m(msg: Any, topic: str = "") -> np.ndarray:
    """Decode a 16UC1 (mm) or 32FC1 (m) depth Image into float32 metres, NaN where invalid.

    Invalid means 0 for 16UC1 and non-finite or <= 0 for 32FC1 (REP 118).
    """
    encoding = str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(
            f"{_where(topic)}: depth needs encoding 16UC1 (mm) or 32FC1 (m), got {quote(encoding)}"
        )
    array = image_to_numpy(msg, topic)
    if encoding == "16UC1":
        depth = array.astype(np.float32) * np.float32(0.001)
        depth[array == 0] = np.nan
        return depth
    depth = np.array(array, dtype=np.float32)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def numpy_to_image(
    array: np.ndarray, encoding: str, header_or_stamp: Any, frame_id: str = ""
) -> Any:
    """Build a rosbags ``sensor_msgs/msg/Image`` from an array laid out as ``encoding``.

    ``array`` is ``(H, W)`` or ``(H, W, C)`` with the encoding's exact dtype (uint8, uint16
    for mono16/16UC1, float32 for 32FC1) and channel count; ``header_or_stamp`` is integer
    nanoseconds, a Time or a Header. Rows are written unpadded in native byte order. The
    message copies ``array`` unless it is read-only and owns its memory (then it is shared).
    """
    base, channels = _encoding_info(encoding, "")
    array = np.asarray(array)
    expected_dtype = np.dtype(base)
    if array.dtype != expected_dtype:
        raise ValueError(
            f"numpy_to_image: encoding {quote(encoding)} needs dtype {expected_dtype.name}, got "
            f"{array.dtype.name}; convert with array.astype(np.{expected_dtype.name})"
        )
    if array.ndim == 3 and array.shape[2] == 1 and channels == 1:
        array = array[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        wanted = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(
            f"numpy_to_image: encoding {quote(encoding)} needs shape {wanted}, got {array.shape}"
        )
    height, width = array.shape[:2]
    if array.flags.c_contiguous and not array.flags.writeable and array.base is None:
        # Read-only and owning its memory: nothing can change it, so the message shares it
        # (the node's outputs at camera resolution are several MB per frame).
        data = array.reshape(-1).view(np.uint8)
    else:
        # A copy, so later edits of the caller's array cannot change a message in flight.
        data = np.array(array, order="C", copy=True).reshape(-1).view(np.uint8)
    return message_class("sensor_msgs/msg/Image")(
        header=make_header(header_or_stamp, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(_NATIVE_BIGENDIAN),
        step=width * channels * expected_dtype.itemsize,
        data=data,
    )
