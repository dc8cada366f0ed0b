"""Compressed inputs through the node core: topics, decoding in the frame path, bad payloads.

The drive is replayed twice, once raw and once as image_transport records it
(``<topic>/compressed``, ``<topic>/compressedDepth``): lossless codecs must give the very same
labels, JPEG within a stated tolerance; corrupt and truncated payloads cost only their sensor
in their frame and are counted and reported like any other bad sensor message.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import (
    FULL,
    assert_every_rgb_frame_accounted,
    drive_records,
    replay_records,
    statuses,
    write_bag,
)

from mlesam_ros.data import topics
from mlesam_ros.msgs import image_to_numpy, numpy_to_image
from mlesam_ros.msgs.compressed import COMPRESSED_IMAGE, compress_depth, compress_image
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.image_transport import input_msgtype, input_topic
from mlesam_ros.replay.run import replay_bag

SENSOR_OF_TOPIC = {topic: sensor for sensor, topic in topics.IMAGE_TOPICS.items()}
COMPRESSED = {"transport.rgb": "compressed", "transport.depth": "compressedDepth",
              "transport.thermal": "compressed"}  # fmt: skip


def depth_in_millimetres(records):
    """The drive with 16UC1 depth (lossless through compressedDepth, unlike 32FC1)."""
    out = []
    for record in records:
        if record.topic == topics.DEPTH_IMAGE_TOPIC:
            metres = image_to_numpy(record.message)
            millimetres = np.where(np.isfinite(metres), np.rint(metres * 1000), 0)
            message = numpy_to_image(np.minimum(millimetres, 65535).astype(np.uint16), "16UC1",
                                     record.message.header)  # fmt: skip
            record = replace(record, message=message)
        out.append(record)
    return out


def compressed(records, rgb_codec="png", depth_codec="rvl", depth_max_m=100.0):
    """The drive's camera messages as image_transport publishes them."""
    out = []
    for record in records:
        sensor = SENSOR_OF_TOPIC.get(record.topic)
        if sensor is None:
            out.append(record)
            continue
        msg = record.message
        array, header = image_to_numpy(msg), msg.header
        if sensor == "depth":
            made = compress_depth(array, str(msg.encoding), header, header.frame_id,
                                  codec=depth_codec, depth_max_m=depth_max_m)  # fmt: skip
            topic = record.topic + "/compressedDepth"
        else:
            codec = rgb_codec if sensor == "rgb" else "png"
            made = compress_image(array, str(msg.encoding), header, header.frame_id, codec=codec)
            topic = record.topic + "/compressed"
        out.append(replace(record, topic=topic, msgtype=COMPRESSED_IMAGE, message=made))
    return out


def labels_of(out) -> list[np.ndarray]:
    return [image_to_numpy(msg).copy() for _, msg in out[m.LABELS_TOPIC]]


def test_transport_parameters_name_the_topic_and_type() -> None:
    config = NodeConfig.from_parameters({"topics.rgb": "/front/image_raw", **COMPRESSED})
    assert input_topic(config, "rgb") == "/front/image_raw/compressed"
    assert input_topic(config, "depth") == "/depth/image_raw/compressedDepth"
    assert input_msgtype(config, "thermal") == COMPRESSED_IMAGE
    assert input_topic(config, "points") == "/lidar/points"
    assert input_msgtype(config, "points") == m.POINTCLOUD2
    raw = NodeConfig.from_parameters({})
    assert input_topic(raw, "rgb") == "/camera/image_raw" and input_msgtype(raw, "rgb") == m.IMAGE
    with pytest.raises(ValueError, match=r"transport.rgb: choose raw or compressed"):
        NodeConfig.from_parameters({"transport.rgb": "compressedDepth"})


@pytest.mark.parametrize("depth_codec", ["rvl", "png"])
def test_lossless_compressed_drive_gives_the_raw_drives_labels(
    tmp_path, frames, model_path, depth_codec
) -> None:
    records = depth_in_millimetres(drive_records(frames))
    raw, raw_out = replay_records(tmp_path / "raw", records, model_path)
    packed, packed_out = replay_records(tmp_path / "packed", compressed(
        records, rgb_codec="png", depth_codec=depth_codec), model_path, **COMPRESSED)  # fmt: skip
    assert packed.presence == raw.presence == {FULL: len(frames)}
    assert not packed.issues
    for raw_labels, packed_labels in zip(labels_of(raw_out), labels_of(packed_out), strict=True):
        np.testing.assert_array_equal(packed_labels, raw_labels)
    (_, _, _, values) = statuses(packed_out, "/mlesam: depth")[-1]
    assert values["topic"] == "/depth/image_raw/compressedDepth"


def test_jpeg_and_quantised_depth_stay_within_tolerance(tmp_path, frames, model_path) -> None:
    """JPEG (quality 95) RGB and 32FC1 depth quantised to inverse depth: labels nearly equal.

    Measured on this drive with the tiny test model: 98.3-99.1 % of pixels per frame keep
    their label (the bound leaves margin).
    """
    records = drive_records(frames)
    _, raw_out = replay_records(tmp_path / "raw", records, model_path)
    packed, packed_out = replay_records(tmp_path / "packed", compressed(
        records, rgb_codec="jpeg", depth_codec="png"), model_path, **COMPRESSED)  # fmt: skip
    assert packed.presence == {FULL: len(frames)} and not packed.issues
    agreement = np.mean([np.mean(a == b) for a, b in
                         zip(labels_of(raw_out), labels_of(packed_out), strict=True)])  # fmt: skip
    assert agreement >= 0.95


def test_corrupt_and_truncated_payloads_cost_their_sensor_only(
    tmp_path, frames, model_path
) -> None:
    records = compressed(depth_in_millimetres(drive_records(frames)), rgb_codec="jpeg")
    spoil = {  # frame index → (sensor, how)
        1: ("rgb", lambda data: data[: len(data) // 2]),  # JPEG cut in half
        2: ("depth", lambda data: data[:40]),  # RVL words cut short
        3: ("thermal", lambda data: b"\x00" * len(data)),  # zeros: not an image
    }
    spoilt = []
    for record in records:
        sensor, how = spoil.get(record.frame, (None, None))
        if record.msgtype == COMPRESSED_IMAGE and SENSOR_OF_TOPIC.get(
                record.topic.rsplit("/", 1)[0]) == sensor:  # fmt: skip
            data = how(bytes(record.message.data))
            record = replace(record, message=replace(record.message,
                                                     data=np.frombuffer(data, np.uint8)))
        spoilt.append(record)
    result, out = replay_records(tmp_path, spoilt, model_path, **COMPRESSED)
    assert_every_rgb_frame_accounted(result)
    assert result.frames == len(frames)  # every frame still labelled
    assert result.presence[FULL] == len(frames) - 3
    assert result.presence["depth+thermal+lidar"] == 1  # the frame without its RGB
    assert result.issues == {"rgb": 1, "depth": 1, "thermal": 1}
    last = {sensor: statuses(out, f"/mlesam: {sensor}")[-1][3]["last_issue"]
            for sensor in ("rgb", "depth", "thermal")}  # fmt: skip
    assert "truncated JPEG" in last["rgb"] and "/camera/image_raw/compressed" in last["rgb"]
    assert "RVL payload truncated" in last["depth"]
    assert "not JPEG, PNG or TIFF" in last["thermal"]


def test_replay_names_the_transport_a_compressed_bag_needs(tmp_path, frames, model_path) -> None:
    bag = write_bag(tmp_path / "in", compressed(drive_records(frames[:1])))
    with pytest.raises(ValueError) as caught:
        replay_bag(bag, tmp_path / "out", {"model.path": str(model_path)}, progress=False)
    text = str(caught.value)
    assert "transport.rgb: compressed" in text and "topics.rgb: /camera/image_raw" in text
    assert not (tmp_path / "out").exists()


def test_synth_compressed_writes_a_bag_its_printed_replay_reads(
    tmp_path, monkeypatch, capsys
) -> None:
    """``mlesam synth --compressed`` → the replay line it prints (with its params file)."""
    import shlex

    from mlesam_ros.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--out", "d", "--frames", "2", "--width", "160", "--height", "120",
                 "--lidar-beams", "16", "--no-tree", "--compressed",
                 "--depth-compression", "rvl"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    replay = next(line for line in printed.splitlines() if line.startswith("replay:"))
    argv = shlex.split(replay.split(":", 1)[1])[1:]
    assert argv[-2:] == ["--params", "d/compressed.yaml"]
    from mlesam_ros.data.export import COMPRESSED_TRANSPORTS
    from mlesam_ros.replay.run import _open_reader

    reader = _open_reader(tmp_path / "d" / "bag", m.ensure_vision_msgs())
    types = {c.topic: c.msgtype for c in reader.connections}
    reader.close()
    for sensor, transport in COMPRESSED_TRANSPORTS.items():
        assert types[f"{topics.IMAGE_TOPICS[sensor]}/{transport}"] == COMPRESSED_IMAGE
    assert topics.RGB_IMAGE_TOPIC not in types
    assert main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "frames: 2 labelled of 2 RGB messages" in out and f"{FULL}  " in out


def test_compressed_publishers_feed_the_dds_node(tmp_path) -> None:
    """Live without ROS: CompressedImage publishers (a played bag) → `mlesam node` on DDS."""
    pytest.importorskip("cyclonedds")
    import threading
    import time

    from conftest import FakeSegmenter

    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig
    from mlesam_ros.dds.domain import localhost_config, open_participant, private_domain_id
    from mlesam_ros.dds.endpoints import delete_participant
    from mlesam_ros.dds.player import BagPlayer, TopicRecorder
    from mlesam_ros.dds.transport import run_node

    frames = 6
    rig = default_rig(width=64, height=48, lidar_beams=8, lidar_azimuth_steps=128)
    with BagRecorder(tmp_path / "bag", compressed=True, depth_codec="rvl") as recorder:
        for frame in SyntheticDrive(seed=2, rig=rig).frames(frames):
            recorder.write(frame)
    domain = private_domain_id()
    stop, reports = threading.Event(), []
    node = threading.Thread(target=lambda: reports.append(run_node(
        {**COMPRESSED, "qos.rgb": "reliable", "qos.depth": "reliable",
         "qos.thermal": "reliable", "qos.points": "reliable"},
        stop=stop, domain_id=domain, config=localhost_config(), use_sim_time=True,
        segmenter=FakeSegmenter())))  # fmt: skip
    node.start()
    peer = open_participant(domain, localhost_config())
    try:
        labels = TopicRecorder(peer, m.LABELS_TOPIC, m.IMAGE, depth=50)
        player = BagPlayer(peer, tmp_path / "bag", clock_hz=100)
        compressed_topics = [t for t, kind in player.connections.items()
                             if kind == COMPRESSED_IMAGE]  # fmt: skip
        assert len(compressed_topics) == 3
        # CameraInfo too: a calibration sent before its subscription matched is lost, and the
        # first frame would rightly leave that camera out.
        info_topics = [t for t, kind in player.connections.items() if kind == m.CAMERA_INFO]
        assert len(info_topics) == 3
        player.wait_for_subscribers([*compressed_topics, *info_topics, "/lidar/points"],
                                    timeout_s=60)
        played = player.play()
        time.sleep(1.0)
        player.clock.publish(played.messages[-1].stamp_ns + 1_000_000_000)
        labels.wait_for(frames, timeout_s=20)
    finally:
        stop.set()
        node.join(timeout=30)
        delete_participant(peer)
    (report,) = reports
    assert report.rgb_received == frames, report.text()
    assert report.published == len(labels.messages()) == frames, report.text()
    # Topics are not ordered against each other on DDS: the first frame may be complete before
    # its camera's first CameraInfo was handled; that camera is then left out of that frame
    # (and said so). Nothing else may go wrong.
    for sensor, count in report.stats.issues.items():
        assert count <= 1 and "CameraInfo is missing" in report.stats.last_issue[sensor], (
            report.stats.last_issue)
