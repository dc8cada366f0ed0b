"""Each image input's transport (``transport.<sensor>``): the topic, its type, decompression.

image_transport's naming: the user sets the base topic (``topics.rgb: /camera/image_raw``) and
the transport (``transport.rgb: compressed``), and the node subscribes to
``/camera/image_raw/compressed`` (``sensor_msgs/CompressedImage``), as ``image_transport``
subscribers and ``ros2 run image_transport republish`` do. Messages stay compressed through
the synchroniser and the latest-frame slot, so a frame that is replaced before the worker
takes it is never decoded; the frame path decompresses what it processes
(:func:`decompress_sensors`), and a payload that does not decode is an :class:`Issue` for
that sensor, counted and reported like any other bad sensor message.
"""

from __future__ import annotations

from typing import Any

from mlesam_ros.msgs.compressed import (
    decompress,
    is_compressed,
    transport_msgtype,
    transport_topic,
)
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.sensors import FrameJob, Issue

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"


def input_transport(config: NodeConfig, key: str) -> str:
    """``raw``, ``compressed`` or ``compressedDepth`` for an input (the LiDAR is always raw)."""
    return config.transports.get(key, "raw")


def input_topic(config: NodeConfig, key: str) -> str:
    """Return the topic the node subscribes to for input ``key`` (``<topic>/<transport>``)."""
    return transport_topic(config.topics[key], input_transport(config, key))


def input_msgtype(config: NodeConfig, key: str) -> str:
    """Return the message type of input ``key``: PointCloud2, Image or CompressedImage."""
    return POINTCLOUD2 if key == "points" else transport_msgtype(input_transport(config, key))


def raw_image(msg: Any, config: NodeConfig, key: str) -> Any:
    """``msg`` as an ``Image``: decompressed when it is a ``CompressedImage`` (``ValueError``)."""
    return decompress(msg, input_topic(config, key)) if is_compressed(msg) else msg


def decompress_sensors(job: FrameJob, config: NodeConfig, issues: list[Issue]) -> None:
    """Decompress the optional image inputs of ``job`` in place.

    A payload that does not decode leaves that sensor out of the frame with an issue naming
    the topic and what is wrong; the other sensors go on.
    """
    for key, msg in list(job.messages.items()):
        if key == "rgb" or not is_compressed(msg):
            continue
        try:
            job.messages[key] = raw_image(msg, config, key)
        except ValueError as error:
            del job.messages[key]
            issues.append(Issue(key, input_topic(config, key), f"{error}; {key} left out"))


__all__ = ["decompress_sensors", "input_msgtype", "input_topic", "input_transport", "raw_image"]
