"""Bag replay drives the node core: one label image per RGB frame, robust to dead/bad sensors."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    FULL,
    SIZE,
    assert_every_rgb_frame_accounted,
    drive_records,
    read_bag,
    replay_records,
    statuses,
    write_bag,
)

from mlesam_ros import cli
from mlesam_ros.data import topics
from mlesam_ros.data.classes import DELIVER_CLASSES
from mlesam_ros.geometry import matrix_to_quaternion, project_lidar
from mlesam_ros.msgs import (
    cloud_xyz,
    header_stamp_ns,
    image_to_numpy,
    pointcloud2_to_array,
)
from mlesam_ros.pipeline import messages as m
from mlesam_ros.replay.run import replay_bag
from mlesam_ros.replay.transport import BagTransport


def write_drive(path: Path, frames, *, drop=(), edit=None, storage="mcap", tf=True) -> Path:
    """Write frames like BagRecorder (with ground truth), minus topics in ``drop``.

    ``edit(topic, frame_index, message)`` may replace a message or drop it (``None``).
    """
    records = []
    for record in drive_records(frames, tf=tf, truth=True):
        if record.topic in drop:
            continue
        if edit is not None:
            message = edit(record.topic, max(record.frame, 0), record.message)
            if message is None:
                continue
            record = dataclasses.replace(record, message=message)
        records.append(record)
    return write_bag(path, records, storage)


def replay(tmp_path, bag, model_path, **parameters):
    params = {"model.path": str(model_path), "diagnostics.period_s": 0.1, **parameters}
    out = tmp_path / "out"
    result = replay_bag(bag, out, params, progress=False)
    return result, read_bag(out)


def test_one_label_image_per_rgb_frame_with_its_header(tmp_path, frames, model_path) -> None:
    bag = write_drive(tmp_path / "in", frames)
    result, out = replay(tmp_path, bag, model_path)
    rgb_stamps = [f.stamps_ns["rgb"] for f in frames]
    labels = out[m.LABELS_TOPIC]
    assert [header_stamp_ns(msg) for _, msg in labels] == rgb_stamps
    for _, msg in labels:
        assert msg.encoding == "mono8" and (msg.height, msg.width) == SIZE
        assert msg.header.frame_id == frames[0].rig.rgb.frame_id
        assert image_to_numpy(msg).max() < len(DELIVER_CLASSES)
    for topic, encoding in ((m.LABELS_COLOR_TOPIC, "rgb8"), (m.CONFIDENCE_TOPIC, "32FC1")):
        published = out[topic]
        assert [header_stamp_ns(msg) for _, msg in published] == rgb_stamps
        assert {msg.encoding for _, msg in published} == {encoding}
    confidence = image_to_numpy(out[m.CONFIDENCE_TOPIC][0][1])
    assert confidence.shape == SIZE and confidence.min() > 0 and confidence.max() <= 1
    # LabelInfo once, with the model's classes.
    (_, info), = out[m.LABEL_INFO_TOPIC]
    assert [c.class_name for c in info.class_map] == list(DELIVER_CLASSES)
    assert [c.class_id for c in info.class_map] == list(range(25))
    # Painted LiDAR points: in the LiDAR frame, valid labels, most points of the view kept.
    clouds = out[m.LABELED_POINTS_TOPIC]
    assert len(clouds) == len(frames)
    for (_, cloud), frame in zip(clouds, frames, strict=True):
        assert cloud.header.frame_id == frame.rig.lidar.frame_id
        assert header_stamp_ns(cloud) == frame.stamps_ns["lidar"]
        points = pointcloud2_to_array(cloud)
        assert {"x", "y", "z", "intensity", "label"} <= set(points.dtype.names)
        assert 50 < points.size < frame.lidar.size
        assert points["label"].max() < len(DELIVER_CLASSES)
    # Every frame fused every sensor; mIoU scored against the bag's ground truth.
    assert result.frames == len(frames) == result.rgb_messages
    assert dict(result.presence) == {"rgb+depth+thermal+lidar": len(frames)}
    summary = result.summary()
    assert 0.0 <= summary["miou"]["all"] <= 1.0
    assert summary["latency_ms"]["p50"] > 0
    json.dumps(summary)


def test_painted_points_take_the_label_of_their_pixel(tmp_path, frames, model_path) -> None:

    bag = write_drive(tmp_path / "in", frames[:2])
    _, out = replay(tmp_path, bag, model_path)
    frame = frames[0]
    labels = image_to_numpy(out[m.LABELS_TOPIC][0][1])
    points = pointcloud2_to_array(out[m.LABELED_POINTS_TOPIC][0][1])
    projection = project_lidar(cloud_xyz(points), frame.camera_from_lidar, frame.rig.rgb.camera)
    assert projection.valid.all()
    cols = np.floor(projection.uv[:, 0] + 0.5).astype(int)
    rows = np.floor(projection.uv[:, 1] + 0.5).astype(int)
    np.testing.assert_array_equal(points["label"], labels[rows, cols])


def test_dead_lidar_and_depth_keep_labels_at_camera_rate(tmp_path, frames, model_path) -> None:
    def kill(topic, index, message):
        if topic == topics.LIDAR_TOPIC and index >= 2:
            return None
        if topic == topics.DEPTH_IMAGE_TOPIC and index >= 4:
            return None
        return message

    bag = write_drive(tmp_path / "in", frames, edit=kill)
    result, out = replay(tmp_path, bag, model_path)
    stamps = [header_stamp_ns(msg) for _, msg in out[m.LABELS_TOPIC]]
    assert stamps == [f.stamps_ns["rgb"] for f in frames]
    assert result.presence == {"rgb+depth+thermal+lidar": 2, "rgb+depth+thermal": 2,
                               "rgb+thermal": 2}
    points = statuses(out, "/mlesam: points")
    depth = statuses(out, "/mlesam: depth")
    kill_time = frames[2].stamps_ns["rgb"] + 60_000_000  # after frame 2 timed out
    before = [values["fused"] for t, _, _, values in points if t < frames[1].stamps_ns["rgb"]]
    after = [(level, values["fused"]) for t, level, _, values in points if t > kill_time]
    assert before and set(before) == {"true"}
    assert after and set(after) == {(m.WARN, "false")}
    assert depth[-1][1] == m.WARN and depth[-1][3]["fused"] == "false"
    pipeline = statuses(out, "/mlesam: pipeline")[-1][3]
    assert int(pipeline["frames_published"]) == len(frames)
    assert int(pipeline["sync_timeouts"]) == 4  # the frames that waited for a dead sensor


def test_rgb_only_bag_and_disabled_inputs(tmp_path, frames, model_path) -> None:
    drop = {topics.DEPTH_IMAGE_TOPIC, topics.DEPTH_INFO_TOPIC, topics.THERMAL_IMAGE_TOPIC,
            topics.THERMAL_INFO_TOPIC, topics.LIDAR_TOPIC, "/tf_static"}
    bag = write_drive(tmp_path / "in", frames[:4], drop=drop)
    result, out = replay(tmp_path, bag, model_path)
    assert result.presence == {"rgb": 4}
    assert len(out[m.LABELS_TOPIC]) == 4
    assert m.LABELED_POINTS_TOPIC not in out  # no LiDAR, nothing painted
    # The same bag with the other inputs switched off: no waiting, no "missing" sensors.
    result, out = replay(tmp_path / "b", bag, model_path, **{
        "topics.depth": "", "topics.thermal": "", "topics.points": ""})
    assert result.presence == {"rgb": 4}
    names = {s.name for _, array in out[m.DIAGNOSTICS_TOPIC] for s in array.status}
    assert names == {"/mlesam: pipeline", "/mlesam: rgb"}


def test_bad_encoding_is_a_diagnostic_not_a_crash(tmp_path, frames, model_path, caplog) -> None:
    def bad_depth(topic, index, message):
        if topic == topics.DEPTH_IMAGE_TOPIC:
            message.encoding = "bgr8"  # wrong for depth (and 3 bytes per pixel)
            message.step = message.width * 3
        return message

    bag = write_drive(tmp_path / "in", frames[:4], edit=bad_depth)
    result, out = replay(tmp_path, bag, model_path)
    assert len(out[m.LABELS_TOPIC]) == 4
    assert result.presence == {"rgb+thermal+lidar": 4}
    (_, level, _, values) = statuses(out, "/mlesam: depth")[-1]
    assert level == m.WARN and values["fused"] == "false"
    assert "/depth/image_raw" in values["last_issue"] and "16UC1" in values["last_issue"]
    assert any("16UC1" in record.message and "/depth/image_raw" in record.message
               for record in caplog.records)


def test_missing_camera_info_is_a_diagnostic_not_a_crash(tmp_path, frames, model_path) -> None:
    bag = write_drive(tmp_path / "in", frames[:4], drop={topics.RGB_INFO_TOPIC})
    result, out = replay(tmp_path, bag, model_path)
    assert len(out[m.LABELS_TOPIC]) == 4
    # Depth is registered (same camera, identity extrinsic) so it still fuses; the LiDAR
    # cannot be projected without the RGB intrinsics and thermal cannot be warped.
    assert result.presence == {"rgb+depth": 4}
    (_, level, _, values) = statuses(out, "/mlesam: points")[-1]
    assert level == m.WARN and "CameraInfo" in values["last_issue"]
    assert "/lidar/points" in values["last_issue"]
    assert result.issues["rgb"] == 4  # "no CameraInfo received ... topics.rgb_info" per frame


def test_missing_tf_names_the_frames(tmp_path, frames, model_path) -> None:
    bag = write_drive(tmp_path / "in", frames[:3], tf=False)
    result, out = replay(tmp_path, bag, model_path)
    assert result.presence == {"rgb": 3}
    (_, _, _, values) = statuses(out, "/mlesam: points")[-1]
    assert "lidar" in values["last_issue"] and "extrinsics.source" in values["last_issue"]
    # Configured extrinsics replace tf.
    rig = frames[0].rig

    def pose(transform):
        rotation = matrix_to_quaternion(transform[:3, :3])
        return [*transform[:3, 3].tolist(), *rotation.tolist()]

    result, _ = replay(tmp_path / "b", bag, model_path, **{
        "extrinsics.source": "config",
        "extrinsics.rgb_from_points": pose(rig.camera_from_lidar),
        "extrinsics.rgb_from_thermal": pose(rig.transform("rgb", "thermal")),
    })
    assert result.presence == {"rgb+depth+thermal+lidar": 3}


def test_output_bag_reads_with_mcap_ros2(tmp_path, frames, model_path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    bag = write_drive(tmp_path / "in", frames[:2])
    replay(tmp_path, bag, model_path)
    (path,) = (tmp_path / "out").glob("*.mcap")
    schemas, decoded = {}, {}
    with path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for schema, channel, _, message in reader.iter_decoded_messages():
            schemas[channel.topic] = schema.name
            decoded.setdefault(channel.topic, message)
    assert schemas == {
        m.LABELS_TOPIC: "sensor_msgs/msg/Image",
        m.LABELS_COLOR_TOPIC: "sensor_msgs/msg/Image",
        m.CONFIDENCE_TOPIC: "sensor_msgs/msg/Image",
        m.LABELED_POINTS_TOPIC: "sensor_msgs/msg/PointCloud2",
        m.LABEL_INFO_TOPIC: "vision_msgs/msg/LabelInfo",
        m.DIAGNOSTICS_TOPIC: "diagnostic_msgs/msg/DiagnosticArray",
    }
    assert decoded[m.LABELS_TOPIC].encoding == "mono8"
    assert decoded[m.LABEL_INFO_TOPIC].class_map[24].class_name == DELIVER_CLASSES[24]
    assert "label" in [field.name for field in decoded[m.LABELED_POINTS_TOPIC].fields]


def test_sqlite3_bag_in_gives_sqlite3_out_and_params_file(tmp_path, frames, model_path) -> None:

    bag = write_drive(tmp_path / "in", frames[:2], storage="sqlite3")
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    output:\n      confidence: false\n"
                      f"    model:\n      path: {model_path}\n")
    summary = tmp_path / "summary.json"
    code = cli.main(["replay", "--bag", str(bag), "--out", str(tmp_path / "out"),
                     "--params", str(params), "--quiet", "--summary", str(summary)])
    assert code == 0
    assert list((tmp_path / "out").glob("*.db3"))
    out = read_bag(tmp_path / "out")
    assert len(out[m.LABELS_TOPIC]) == 2 and m.CONFIDENCE_TOPIC not in out
    assert json.loads(summary.read_text())["frames"] == 2


def test_replay_rejects_bad_arguments(tmp_path, frames, model_path, capsys) -> None:

    assert cli.main(["replay", "--bag", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bag = write_drive(tmp_path / "in", frames[:1])
    with pytest.raises(ValueError, match=r"'sync\.timeout'; did you mean 'sync\.timeout_s'"):
        replay_bag(bag, tmp_path / "o2", {"sync.timeout": 1.0}, progress=False)
    with pytest.raises(ValueError, match="already exists"):
        replay_bag(bag, bag, {}, progress=False)


def test_copy_inputs_makes_the_output_bag_self_contained(tmp_path, frames, model_path) -> None:

    bag = write_drive(tmp_path / "in", frames[:2])
    out = tmp_path / "out"
    code = cli.main(["replay", "--bag", str(bag), "--out", str(out), "--quiet",
                     "--model", str(model_path), "--copy-inputs"])
    assert code == 0
    copied, original = read_bag(out), read_bag(bag)
    for topic in (topics.RGB_IMAGE_TOPIC, topics.RGB_INFO_TOPIC, topics.LIDAR_TOPIC,
                  "/tf_static", topics.GT_LABELS_TOPIC):
        assert [t for t, _ in copied[topic]] == [t for t, _ in original[topic]], topic
    first_rgb = copied[topics.RGB_IMAGE_TOPIC][0][1]
    assert np.array_equal(image_to_numpy(first_rgb), frames[0].rgb)
    assert len(copied[m.LABELS_TOPIC]) == 2


# -- the clean baseline ---------------------------------------------------------------------


def test_clean_bag_drops_nothing_and_stays_ok(tmp_path, frames, model_path) -> None:
    result, out = replay_records(tmp_path, drive_records(frames[:3]), model_path)
    assert result.presence == {FULL: 3}
    assert result.dropped == {}
    assert_every_rgb_frame_accounted(result)
    pipeline = statuses(out, "/mlesam: pipeline")
    assert {level for _, level, _, _ in pipeline} == {m.OK}
    assert pipeline[-1][3]["dropped_frames"] == "0"
    assert not any(name.startswith("/mlesam: tf") for name in
                   {s.name for _, a in out[m.DIAGNOSTICS_TOPIC] for s in a.status})


# -- time gaps --------------------------------------------------------------------------


def test_clock_jump_from_log_time_zero_fires_each_timer_once() -> None:
    """A message logged at time 0 before /clock must not tick timers from 1970."""
    transport = BagTransport(writer=None, parameters={})
    fired = []

    def tick() -> None:
        fired.append(transport.now_ns())
        assert len(fired) < 1000, "timer storm: the clock ticked through the gap"

    transport.advance(0)
    transport.create_timer(10_000_000, tick)
    transport.advance(1_700_000_000_000_000_000)
    assert fired == [1_700_000_000_000_000_000]
    transport.advance(1_700_000_000_050_000_000)  # a normal step still ticks every period
    assert len(fired) == 6 and fired[-1] == 1_700_000_000_050_000_000


def test_replay_across_a_gap_writes_few_diagnostics(tmp_path, frames, model_path) -> None:
    """End to end: an early message 200 s before the data (at 10 Hz that would be
    2000 diagnostics and 20000 polls) leaves the output small and every frame labelled."""
    recs = drive_records(frames[:3])
    early = recs[0].log_ns - 200_000_000_000
    recs.insert(0, replace(recs[0], log_ns=early))
    result, out = replay_records(tmp_path, recs, model_path)
    assert result.presence == {FULL: 3}
    assert len(out[m.DIAGNOSTICS_TOPIC]) < 20
    assert any("jumped" in note for note in result.notes)
