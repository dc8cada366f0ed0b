"""DdsTransport in-process: tf over DDS, waiting lookups, bad QoS names, graph announcement."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from mlesam_ros.dds.domain import localhost_config, open_participant, private_domain_id
from mlesam_ros.dds.endpoints import RosWriter, delete_participant
from mlesam_ros.dds.transport import DdsTransport
from mlesam_ros.msgs import matrices_to_tf_message
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.interface import NodeIO


@pytest.fixture
def transport():
    domain = private_domain_id()
    io = DdsTransport({"topics.rgb": "/cam"}, domain_id=domain, config=localhost_config())
    peer = open_participant(domain)
    yield io, peer
    io.close()
    delete_participant(peer)


def test_is_a_node_io(transport):
    io, _ = transport
    assert isinstance(io, NodeIO)
    assert io.parameters()["topics.rgb"] == "/cam"


def test_bad_reliability_names_the_topic_and_the_choices(transport):
    io, _ = transport
    with pytest.raises(ValueError, match="reliability of /cam: choose from best_effort, reli"):
        io.subscribe("/cam", m.IMAGE, lambda msg: None, "fast")


def test_lookup_waits_for_tf_static_from_a_peer(transport):
    io, peer = transport
    with pytest.raises(LookupError, match="no connection between 'base_link' and 'lidar'"):
        io.lookup_transform("base_link", "lidar", 0, timeout_ns=50_000_000)
    T = np.eye(4)
    T[:3, 3] = [1.0, -2.0, 0.5]
    static = RosWriter(peer, "/tf_static", m.TF_MESSAGE, latched=True)
    found: list[np.ndarray] = []
    waiting = threading.Thread(
        target=lambda: found.append(io.lookup_transform("base_link", "lidar", 0, 5_000_000_000))
    )
    waiting.start()  # blocks inside lookup_transform until the message arrives
    static.publish(matrices_to_tf_message({("base_link", "lidar"): T}, 1))
    waiting.join(timeout=10)
    assert found, "lookup did not return within its timeout"
    np.testing.assert_allclose(found[0], T)
    np.testing.assert_allclose(io.lookup_transform("lidar", "base_link", 0, 0), np.linalg.inv(T))


def test_graph_lists_every_endpoint_of_the_node(transport):
    io, _ = transport
    io.subscribe("/cam", m.IMAGE, lambda msg: None, "best_effort")
    io.create_publisher("~/labels", m.IMAGE)
    info = io.graph.message()
    (node,) = info.node_entities_info_seq
    assert node.node_name == "mlesam"
    assert len(node.reader_gid_seq) == 3  # /tf, /tf_static, /cam
    assert len(node.writer_gid_seq) == 1
    assert "/mlesam/labels" in io.publishers  # ~/ resolved against the node name
    assert bytes(info.gid.data)[:16] == io.participant.guid.bytes


def test_a_vanishing_writer_delivers_no_message(transport):
    # cyclonedds hands readers an invalid sample when a writer goes away; it must be skipped.
    from mlesam_ros.msgs import make_header, numpy_to_image

    io, peer = transport
    received: list = []
    arrived = threading.Event()

    def on_image(data) -> None:  # subscribers get CDR bytes, as from rclpy's raw subscriptions
        received.append(m.decode(data, m.IMAGE))
        arrived.set()

    io.subscribe("/cam", m.IMAGE, on_image, "reliable")
    writer = RosWriter(peer, "/cam", m.IMAGE)
    image = numpy_to_image(np.full((2, 3), 7, np.uint8), "mono8", make_header(11, "cam"))
    for _ in range(200):  # wait for matching, then send once
        if writer.has_subscribers():
            break
        threading.Event().wait(0.01)
    writer.publish(image)
    assert arrived.wait(5)
    writer.writer.__del__()  # dds_delete: the writer unregisters → invalid sample at the reader
    threading.Event().wait(0.3)
    assert len(received) == 1
    assert received[0].header.stamp.nanosec == 11 and bytes(received[0].data) == bytes([7] * 6)
