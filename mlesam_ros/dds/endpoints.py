"""DDS readers and writers carrying ROS 2 messages, and the node's entry in the ROS graph.

:class:`RosWriter` publishes rosbags messages (or raw CDR, for the player); :class:`RosReader`
hands each received message to a callback from cyclonedds' listener thread, skipping the
invalid sample a vanishing writer leaves behind. :class:`GraphAnnouncer` publishes
``rmw_dds_common/msg/ParticipantEntitiesInfo`` on ``ros_discovery_info`` — how ROS 2 maps
DDS participants to node names, so ``ros2 node list`` shows this process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from mlesam_ros.dds.domain import reader_qos, writer_qos
from mlesam_ros.dds.types import dds_topic_name, graph_layout, idl_struct, typestore_for

LOG = logging.getLogger("mlesam.dds")
DISCOVERY_TOPIC = "ros_discovery_info"  # a plain DDS topic: no rt/ prefix
PARTICIPANT_INFO = "rmw_dds_common/msg/ParticipantEntitiesInfo"


def _topic(participant: Any, dds_name: str, msgtype: str, layout: str = "humble") -> Any:
    """One cyclonedds Topic per (participant, name), kept on the participant object."""
    from cyclonedds.topic import Topic

    cache = participant.__dict__.setdefault("_mlesam_topics", {})
    if dds_name not in cache:
        cache[dds_name] = Topic(participant, dds_name, idl_struct(msgtype, layout=layout))
    return cache[dds_name]


def delete_participant(participant: Any) -> None:
    """Delete a participant with every reader, writer and topic under it, now.

    The entity finaliser is cyclonedds' ``dds_delete``; calling it explicitly makes peers see
    the node leave at once instead of whenever the garbage collector gets to it.
    """
    participant.__dict__.pop("_mlesam_topics", None)
    participant.__del__()


def gid(entity: Any, layout: str = "humble") -> bytes:
    """Return the ROS 2 GID of a DDS entity: its 16-byte GUID, padded to 24 bytes on Humble.

    rmw_cyclonedds' ``RMW_GID_STORAGE_SIZE`` is 24 on Humble and 16 from Iron on.
    """
    return entity.guid.bytes + (bytes(8) if layout == "humble" else b"")


class RosWriter:
    """A ROS 2 publisher on DDS (reliable depth 1 by default; ``latched`` = transient local)."""

    def __init__(
        self,
        participant: Any,
        topic: str,
        msgtype: str,
        *,
        latched: bool = False,
        reliable: bool = True,
        depth: int = 1,
        dds_name: str | None = None,
        layout: str = "humble",
    ) -> None:
        from cyclonedds.pub import DataWriter

        self.topic, self.msgtype = topic, msgtype
        self._type = idl_struct(msgtype, layout=layout)
        dds_topic = _topic(participant, dds_name or dds_topic_name(topic), msgtype, layout)
        self.writer = DataWriter(
            participant,
            dds_topic,
            writer_qos(reliable=reliable, latched=latched, depth=depth, msgtype=msgtype,
                       layout=layout),
        )
        self.count = 0

    def publish(self, message: Any) -> None:
        """Send one message: CDR bytes (what the core publishes) or a rosbags message."""
        if isinstance(message, (bytes, bytearray, memoryview)):
            self.publish_cdr(bytes(message))
            return
        self.writer.write(self._type.from_message(message))
        self.count += 1

    def publish_cdr(self, data: bytes) -> None:
        """Send CDR bytes as they are (a bag's raw message)."""
        self.writer.write(self._type.from_cdr(data))
        self.count += 1

    def subscribers(self) -> int:
        """How many readers are matched now."""
        return int(self.writer.get_publication_matched_status().current_count)

    def has_subscribers(self) -> bool:
        """Whether any reader is matched (the core skips unwanted outputs)."""
        return self.subscribers() > 0


class RosReader:
    """A ROS 2 subscription on DDS: ``callback(message)`` per valid sample.

    ``raw=True`` hands the :class:`~mlesam_ros.dds.types.RosCdrSample` instead of a decoded
    message (listeners that only count or time samples skip decoding).

    By default the callback runs in cyclonedds' listener, on the thread that received the
    data. ``own_thread=True`` runs it on a thread of the reader's own that waits on a
    ``WaitSet`` instead (as an rclpy executor takes from the reader's history): a slow
    callback, or one waiting for the GIL, then never holds up cyclonedds' receive thread,
    which would otherwise let the socket drop fragments of large best-effort samples
    (images) unnoticed. Call :meth:`close` before the participant is deleted.
    """

    def __init__(
        self,
        participant: Any,
        topic: str,
        msgtype: str,
        callback: Callable[[Any], None],
        *,
        reliable: bool,
        latched: bool = False,
        depth: int = 5,
        raw: bool = False,
        dds_name: str | None = None,
        own_thread: bool = False,
        layout: str = "humble",
    ) -> None:
        from cyclonedds.core import Listener
        from cyclonedds.sub import DataReader

        self.topic, self.msgtype = topic, msgtype
        self._callback, self._raw = callback, raw
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        dds_topic = _topic(participant, dds_name or dds_topic_name(topic), msgtype, layout)
        listener = None if own_thread else Listener(on_data_available=self._on_data_available)
        self.reader = DataReader(
            participant,
            dds_topic,
            reader_qos(reliable=reliable, latched=latched, depth=depth, msgtype=msgtype,
                       layout=layout),
            listener=listener,
        )
        if own_thread:
            self._thread = threading.Thread(
                target=self._take_loop, args=(participant,), name=f"dds-reader{topic}",
                daemon=True,
            )  # fmt: skip
            self._thread.start()

    def _take_loop(self, participant: Any) -> None:
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
        from cyclonedds.util import duration

        condition = ReadCondition(self.reader, SampleState.Any | ViewState.Any | InstanceState.Any)
        waitset = WaitSet(participant)
        waitset.attach(condition)
        timeout = duration(milliseconds=100)  # how soon close() is noticed
        while not self._closed.is_set():
            waitset.wait(timeout)  # a ctypes call: the GIL is released while waiting
            if not self._closed.is_set():
                self._on_data_available(self.reader)
        waitset.detach(condition)

    def close(self) -> None:
        """Stop the reader's own thread (no-op for a listener reader)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _on_data_available(self, reader: Any) -> None:
        while True:
            with self._lock:  # listener calls may overlap; one take() at a time keeps order
                samples = reader.take(N=64)
            if not samples:
                return
            self._deliver(samples)

    def _deliver(self, samples: list[Any]) -> None:
        for sample in samples:
            info = getattr(sample, "sample_info", None)
            if sample is None or info is None or not info.valid_data:
                continue  # the invalid sample a disposed/unregistered writer delivers
            try:
                self._callback(sample if self._raw else sample.message())
            except Exception as error:  # a bad message must not kill DDS's listener thread
                LOG.error(f"{self.topic}: {type(error).__name__}: {error}")

    def publishers(self) -> int:
        """How many writers are matched now."""
        return int(self.reader.get_subscription_matched_status().current_count)


class GraphAnnouncer:
    """Publishes this participant's one ROS node and its endpoints on ``ros_discovery_info``.

    ROS 2 (rmw_dds_common) learns node names only from this topic; DDS discovery alone shows
    the endpoints but no node. Call :meth:`announce` after creating endpoints. The message's
    layout differs between Humble and later distributions (:func:`graph_layout`), and a
    peer ignores the other layout: ``ros_distro`` (default ``$ROS_DISTRO``, else Jazzy) picks
    the one the robot's ROS 2 reads.
    """

    def __init__(self, participant: Any, node_name: str, namespace: str = "/",
                 ros_distro: str | None = None) -> None:  # fmt: skip
        self.participant = participant
        self.layout = graph_layout(ros_distro if ros_distro is not None
                                   else os.environ.get("ROS_DISTRO"))  # fmt: skip
        self.node_name, self.namespace = node_name, "/" + namespace.strip("/")
        self.readers: list[Any] = []
        self.writers: list[Any] = []
        self._writer = RosWriter(
            participant, DISCOVERY_TOPIC, PARTICIPANT_INFO, latched=True,
            dds_name=DISCOVERY_TOPIC, layout=self.layout,
        )  # fmt: skip

    def message(self) -> Any:
        """Return the current ``ParticipantEntitiesInfo``."""
        types = typestore_for(self.layout).types
        gid_type = types["rmw_dds_common/msg/Gid"]

        def as_gid(entity: Any) -> Any:
            return gid_type(data=np.frombuffer(gid(entity, self.layout), dtype=np.uint8).copy())

        node = types["rmw_dds_common/msg/NodeEntitiesInfo"](
            node_namespace=self.namespace,
            node_name=self.node_name,
            reader_gid_seq=[as_gid(reader) for reader in self.readers],
            writer_gid_seq=[as_gid(writer) for writer in self.writers],
        )
        return types[PARTICIPANT_INFO](
            gid=as_gid(self.participant), node_entities_info_seq=[node]
        )

    def announce(self) -> None:
        """(Re)publish the node's entities (latched, so late ROS tools see it too)."""
        self._writer.publish(self.message())


__all__ = [
    "DISCOVERY_TOPIC",
    "GraphAnnouncer",
    "RosReader",
    "RosWriter",
    "delete_participant",
    "gid",
]
