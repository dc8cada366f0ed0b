"""Synthetic drives written as ROS 2 bags (and DELIVER trees) read back like a robot's."""

import numpy as np
import pytest

from mlesam_ros.cli import main
from mlesam_ros.data import topics
from mlesam_ros.data.export import BagRecorder, export_frames
from mlesam_ros.data.loaders import DeliverDataset
from mlesam_ros.data.synth import SyntheticDrive, default_rig
from mlesam_ros.msgs import image_to_numpy, pointcloud2_to_array, typestore

EXPECTED = {
    topics.RGB_IMAGE_TOPIC: "sensor_msgs/msg/Image",
    topics.RGB_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    topics.DEPTH_IMAGE_TOPIC: "sensor_msgs/msg/Image",
    topics.DEPTH_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    topics.THERMAL_IMAGE_TOPIC: "sensor_msgs/msg/Image",
    topics.THERMAL_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    topics.LIDAR_TOPIC: "sensor_msgs/msg/PointCloud2",
    topics.TF_STATIC_TOPIC: "tf2_msgs/msg/TFMessage",
    topics.GT_LABELS_TOPIC: "sensor_msgs/msg/Image",
}


@pytest.fixture(scope="module")
def frames():
    rig = default_rig(64, 48, lidar_beams=16, lidar_azimuth_steps=256)
    return list(SyntheticDrive(seed=4, condition="rain", rig=rig).frames(3))


def _stamp(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_reads_back_with_rosbags(tmp_path, frames, storage):
    from rosbags.highlevel import AnyReader

    export_frames(frames, tmp_path, storage=storage, write_tree=False)
    with AnyReader([tmp_path / "bag"], default_typestore=typestore()) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == EXPECTED
        messages = {}
        for connection, timestamp, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            messages.setdefault(connection.topic, []).append((timestamp, msg))
    assert len(messages[topics.TF_STATIC_TOPIC]) == 1
    tf = messages[topics.TF_STATIC_TOPIC][0][1]
    assert {t.child_frame_id for t in tf.transforms} == {
        "camera_optical_frame", "depth_optical_frame", "thermal_optical_frame", "lidar"}
    for topic in (topics.RGB_IMAGE_TOPIC, topics.LIDAR_TOPIC, topics.THERMAL_IMAGE_TOPIC):
        assert len(messages[topic]) == 3
    for index, frame in enumerate(frames):
        t_rgb, rgb = messages[topics.RGB_IMAGE_TOPIC][index]
        assert rgb.encoding == "rgb8" and t_rgb == _stamp(rgb) == frame.stamps_ns["rgb"]
        np.testing.assert_array_equal(image_to_numpy(rgb), frame.rgb)
        _, depth = messages[topics.DEPTH_IMAGE_TOPIC][index]
        assert depth.encoding == "32FC1" and _stamp(depth) == frame.stamps_ns["depth"]
        depth_m = image_to_numpy(depth)
        np.testing.assert_array_equal(np.nan_to_num(depth_m), frame.depth)
        _, thermal = messages[topics.THERMAL_IMAGE_TOPIC][index]
        assert thermal.encoding == "mono16" and _stamp(thermal) == frame.stamps_ns["thermal"]
        np.testing.assert_array_equal(image_to_numpy(thermal), frame.thermal)
        _, info = messages[topics.THERMAL_INFO_TOPIC][index]
        assert (info.width, info.height) == (frame.thermal.shape[1], frame.thermal.shape[0])
        np.testing.assert_allclose(info.k.reshape(3, 3), frame.rig.thermal.camera.K)
        t_lidar, cloud = messages[topics.LIDAR_TOPIC][index]
        assert t_lidar == _stamp(cloud) == frame.stamps_ns["lidar"]
        assert cloud.header.frame_id == "lidar"
        assert [(f.name, f.datatype) for f in cloud.fields] == [
            ("x", 7), ("y", 7), ("z", 7), ("intensity", 7), ("ring", 4)]
        points = pointcloud2_to_array(cloud)
        for name in ("x", "y", "z", "intensity", "ring"):
            np.testing.assert_array_equal(points[name], frame.lidar[name])
        _, labels = messages[topics.GT_LABELS_TOPIC][index]
        assert labels.encoding == "mono8"
        np.testing.assert_array_equal(image_to_numpy(labels), frame.labels)


def test_bag_reads_back_with_the_mcap_reader(tmp_path, frames):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    export_frames(frames, tmp_path, storage="mcap", depth_encoding="16UC1", write_tree=False)
    (path,) = (tmp_path / "bag").glob("*.mcap")
    seen = {}
    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            assert schema.name == EXPECTED[channel.topic] and channel.message_encoding == "cdr"
            seen.setdefault(channel.topic, []).append((message, decoded))
    assert set(seen) == set(EXPECTED)
    depth = [decoded for _, decoded in seen[topics.DEPTH_IMAGE_TOPIC]]
    assert all(m.encoding == "16UC1" for m in depth)
    millimetres = np.rint(frames[0].depth * 1000)
    assert (millimetres > 65535).any()  # the far-range rule below is exercised
    expected_mm = np.where(millimetres <= 65535, millimetres, 0).astype(np.uint16)
    data = np.frombuffer(bytes(depth[0].data), np.uint16).reshape(expected_mm.shape)
    np.testing.assert_array_equal(data, expected_mm)
    lidar = seen[topics.LIDAR_TOPIC]
    assert [m.log_time for m, _ in lidar] == [f.stamps_ns["lidar"] for f in frames]
    assert [cloud.width for _, cloud in lidar] == [len(f.lidar) for f in frames]


def test_failed_sensors_are_missing_from_the_bag(tmp_path):
    rig = default_rig(32, 24, lidar_beams=8, lidar_azimuth_steps=64)
    drive = SyntheticDrive(seed=1, rig=rig, failure_rate=1.0, failures=("missing",))
    export_frames(drive.frames(2), tmp_path, write_tree=False)
    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "bag"], default_typestore=typestore()) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts == {topics.TF_STATIC_TOPIC: 1, topics.GT_LABELS_TOPIC: 2}
    with pytest.raises(ValueError, match="already exists"):
        BagRecorder(tmp_path / "bag")
    with pytest.raises(ValueError, match="storage"):
        BagRecorder(tmp_path / "other", storage="rosbag1")


def test_synth_command_writes_a_tree_the_deliver_loader_reads(tmp_path, capsys):
    out = tmp_path / "synth"
    code = main(["synth", "--out", str(out), "--frames", "3", "--conditions", "sun,fog",
                 "--width", "48", "--height", "32", "--lidar-beams", "16"])  # fmt: skip
    assert code == 0 and "wrote 3 frames" in capsys.readouterr().out
    dataset = DeliverDataset(out / "deliver", "train", ("rgb", "depth", "thermal", "lidar"))
    assert len(dataset) == 3
    assert sorted(s["condition"] for s in dataset) == ["fog", "sun", "sun"]
    sample = dataset[0]
    assert sample["present"].all() and sample["images"].shape == (4, 3, 32, 48)
    assert sample["labels"].max() < 25 and (sample["labels"] != 255).all()
    assert (out / "bag" / "metadata.yaml").is_file()
    assert main(["synth", "--out", str(tmp_path / "x"), "--conditions", "snow"]) == 2
    assert "choose from" in capsys.readouterr().err


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_latched_topics_are_recorded_transient_local(tmp_path, frames, storage):
    """`ros2 bag play` offers a topic with the bag's QoS: /tf_static must stay latched (tf2's
    static listener is transient local), so must the replay's LabelInfo; sensors keep none."""
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import QosDurability

    from mlesam_ros.replay.run import replay_bag

    export_frames(frames, tmp_path / "drive", storage=storage, write_tree=False)
    replay_bag(tmp_path / "drive" / "bag", tmp_path / "out", {}, progress=False)
    for bag, latched in ((tmp_path / "drive" / "bag", {topics.TF_STATIC_TOPIC}),
                         (tmp_path / "out", {"/mlesam/label_info"})):  # fmt: skip
        with AnyReader([bag]) as reader:
            offered = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
        assert latched <= set(offered)
        for topic, profiles in offered.items():
            if topic in latched:
                (qos,) = profiles
                assert qos.durability == QosDurability.TRANSIENT_LOCAL and qos.depth == 1
            else:
                assert profiles == [], topic
