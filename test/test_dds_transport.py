"""DdsTransport in-process: tf over DDS, waiting lookups, bad QoS names, graph announcement."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

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


def wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_use_sim_time_takes_the_node_clock_from_clock():
    from mlesam_ros.dds.clock import ClockPublisher

    domain = private_domain_id()
    io = DdsTransport({}, domain_id=domain, config=localhost_config(), use_sim_time=True)
    peer = open_participant(domain, localhost_config())
    try:
        assert io.now_ns() == 0  # ROS: time is zero until the first /clock message
        clock = ClockPublisher(peer)
        assert wait_until(lambda: clock.writer.has_subscribers())
        for stamp in (1_700_000_000_123_456_789, 1_700_000_001_000_000_000):
            clock.publish(stamp)
            assert wait_until(lambda stamp=stamp: io.now_ns() == stamp), io.now_ns()
        assert "mlesam play --clock" in io.clock_advice
    finally:
        io.close()
        delete_participant(peer)


def test_wall_clock_advice_names_what_the_dds_node_can_do(transport):
    io, _ = transport
    assert abs(io.now_ns() - time.time_ns()) < 1_000_000_000
    assert "mlesam node --use-sim-time" in io.clock_advice
    assert "mlesam play --clock" in io.clock_advice


def test_received_messages_are_counted_and_none_after_stop_inputs(transport):
    from mlesam_ros.msgs import make_header, numpy_to_image

    io, peer = transport
    delivered: list = []
    io.subscribe("/cam", m.IMAGE, delivered.append, "reliable")
    writer = RosWriter(peer, "/cam", m.IMAGE, depth=10)
    assert wait_until(writer.has_subscribers)
    image = numpy_to_image(np.zeros((2, 3), np.uint8), "mono8", make_header(5, "cam"))
    for _ in range(4):
        writer.publish(image)
    assert wait_until(lambda: len(delivered) == 4)
    assert io.received["/cam"] == 4
    io.stop_inputs()
    writer.publish(image)
    time.sleep(0.3)
    assert len(delivered) == 4 and io.received["/cam"] == 4


class SlowSegmenter:
    """A model slower than the camera: frames queue up behind it (worker_busy drops)."""

    modalities = ("rgb", "depth", "thermal", "lidar")
    input_size = (24, 32)
    class_names = tuple(f"c{i}" for i in range(5))
    backend, device, artefact = "fake", "cpu", "fake"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def segment(self, images, present):
        from types import SimpleNamespace

        time.sleep(self.seconds)
        labels = np.zeros(self.input_size, np.int32)
        return SimpleNamespace(labels=labels, confidence=np.ones(self.input_size, np.float32))

    def close(self) -> None:
        pass


def test_played_bag_on_sim_time_labels_or_counts_every_rgb_message(tmp_path):
    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig
    from mlesam_ros.dds.player import BagPlayer, TopicRecorder
    from mlesam_ros.dds.transport import run_node

    frames = 8
    rig = default_rig(width=64, height=48, lidar_beams=8, lidar_azimuth_steps=128)
    with BagRecorder(tmp_path / "bag") as recorder:
        for frame in SyntheticDrive(seed=2, rig=rig).frames(frames):  # 10 Hz
            recorder.write(frame)
    domain = private_domain_id()
    stop, reports = threading.Event(), []
    node = threading.Thread(target=lambda: reports.append(run_node(
        {}, stop=stop, domain_id=domain, config=localhost_config(), use_sim_time=True,
        segmenter=SlowSegmenter(0.25),  # 4 Hz against 10 Hz: most frames are dropped
    )))  # fmt: skip
    node.start()
    peer = open_participant(domain, localhost_config())
    try:
        labels = TopicRecorder(peer, m.LABELS_TOPIC, m.IMAGE, depth=50)
        player = BagPlayer(peer, tmp_path / "bag", clock_hz=100)
        player.wait_for_subscribers(["/camera/image_raw", "/clock"], timeout_s=60)
        played = player.play()
        assert len(played.stamps("/camera/image_raw")) == frames
        time.sleep(1.0)  # the last frame's sync timeout and inference, in bag time
        player.clock.publish(played.messages[-1].stamp_ns + 1_000_000_000)
        time.sleep(0.6)
    finally:
        stop.set()
        node.join(timeout=30)
        delete_participant(peer)
    (report,) = reports
    assert report.rgb_received == frames, report.text()
    assert report.published == len(labels.messages()) >= 1
    assert report.published + sum(report.dropped.values()) == frames, report.text()
    assert report.unaccounted == 0 and report.dropped.get("worker_busy", 0) >= 1
    # On /clock the bag's stamps are the node's time: latency measured for every frame.
    assert report.stats.latency_unmeasured == 0 and len(report.stats.latencies_ms) >= 1
    text = report.text()
    assert "unaccounted" not in text and text.startswith(f"{frames} RGB messages received")


def _foreign_image_writer(participant, topic: str):
    """A writer of another layout that claims ROS 2's Image type name (a broken peer)."""
    from cyclonedds.idl import make_idl_struct
    from cyclonedds.idl import types as t
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic

    from mlesam_ros.dds.domain import writer_qos
    from mlesam_ros.dds.types import dds_topic_name, dds_type_name

    foreign = make_idl_struct("ForeignImage", dds_type_name(m.IMAGE),
                              {"width": t.int32, "pixels": t.sequence[t.uint8]})  # fmt: skip
    writer = DataWriter(participant, Topic(participant, dds_topic_name(topic), foreign),
                        writer_qos(reliable=True, latched=False, depth=5))  # fmt: skip
    return writer, foreign


def test_malformed_samples_on_the_wire_are_counted_and_frames_go_on():
    """Live, on DDS: images whose content is broken cost their frame (counted, reported); a
    peer writing another layout under the Image type name is refused by DDS and reported;
    the good frames around them are labelled."""
    from conftest import FakeSegmenter

    from mlesam_ros.dds.player import TopicRecorder
    from mlesam_ros.dds.transport import run_node
    from mlesam_ros.msgs import numpy_to_image

    domain = private_domain_id()
    stop, reports = threading.Event(), []
    rgb_only = {"topics.depth": "", "topics.thermal": "", "topics.points": "",
                "qos.rgb": "reliable", "diagnostics.period_s": 0.2}  # fmt: skip
    node = threading.Thread(target=lambda: reports.append(run_node(
        rgb_only, stop=stop, domain_id=domain, config=localhost_config(),
        segmenter=FakeSegmenter())))  # fmt: skip
    node.start()
    peer = open_participant(domain, localhost_config())
    try:
        labels = TopicRecorder(peer, m.LABELS_TOPIC, m.IMAGE, depth=50)
        camera = RosWriter(peer, "/camera/image_raw", m.IMAGE, depth=10)
        assert wait_until(camera.has_subscribers, 30)
        stamp = time.time_ns()

        def image(offset_ms: int, **changes):
            message = numpy_to_image(np.zeros((24, 32, 3), np.uint8), "rgb8",
                                     stamp + offset_ms * 1_000_000, "camera")  # fmt: skip
            return replace(message, **changes)

        foreign, layout = _foreign_image_writer(peer, "/camera/image_raw")
        sent = [
            image(0),
            image(100, data=np.zeros(10, np.uint8)),  # truncated pixels
            image(200, encoding="bgr8; charset=" + "x" * 5000),  # unknown encoding
            image(300, height=1 << 30),  # claims a 2^30-row image
            image(400),
            image(500),
        ]
        for message in sent:
            camera.publish(message)
            foreign.write(layout(7, list(range(16))))  # delivers nothing, never matched
            time.sleep(0.3)  # one frame at a time: no worker_busy drops in this test
        assert labels.wait_for(3, 20)
        time.sleep(1.2)  # the transport checks for refused publishers each second
    finally:
        stop.set()
        node.join(timeout=30)
        delete_participant(peer)
    (report,) = reports
    assert report.published == 3 == len(labels.messages())
    assert report.dropped == {"rgb_unusable": 3} and report.unaccounted == 0
    issues = report.stats.last_issue
    assert "another layout under the same type name" in issues["input"]
    assert report.stats.issues["rgb"] >= 3


def test_mlesam_play_skips_a_malformed_record_and_plays_on(tmp_path):
    """A record DDS cannot send (truncated CDR) is skipped, counted and reported; the rest of
    the drive is sent."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from mlesam_ros.dds.player import BagPlayer, TopicRecorder
    from mlesam_ros.msgs import numpy_to_image

    store = m.ensure_vision_msgs()
    good = [m.encode(numpy_to_image(np.zeros((4, 4), np.uint8), "mono8", 10 + i, "c"), m.IMAGE)
            for i in range(4)]  # fmt: skip
    records = [good[0], good[1][:30], good[1], b"\x00\x01\x00\x00", good[2], good[3]]
    writer = Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connection = writer.add_connection("/cam", m.IMAGE, typestore=store)
    for index, raw in enumerate(records):
        writer.write(connection, 1_000_000_000 + index * 10_000_000, raw)
    writer.close()
    domain = private_domain_id()
    participant = open_participant(domain, localhost_config())
    try:
        recorder = TopicRecorder(participant, "/cam", m.IMAGE, depth=20)
        player = BagPlayer(participant, tmp_path / "bag")
        player.wait_for_subscribers(["/cam"], timeout_s=30)
        result = player.play()
        assert recorder.wait_for(4, 10)
    finally:
        delete_participant(participant)
    assert len(result.messages) == 4 and result.skipped == {"/cam": 2}
    assert [p.stamp_ns for p in result.messages] == [10, 11, 12, 13]
    assert "/cam: 2 skipped (DDSException" in result.skipped_text()
