"""The core's input side: header stamps (zero, duplicate, backwards, another clock)."""

from __future__ import annotations

import itertools
from dataclasses import replace

from conftest import (
    assert_every_rgb_frame_accounted,
    drive_records,
    replay_records,
    statuses,
    with_stamp,
)

from mlesam_ros.data import topics
from mlesam_ros.msgs import header_stamp_ns
from mlesam_ros.pipeline import messages as m


def test_bad_stamps_are_dropped_by_rule_and_counted(tmp_path, frames, model_path) -> None:
    """Duplicate, zero, backwards and out-of-log-order RGB stamps are dropped and counted."""
    recs = drive_records(frames)
    rgb = [i for i, rec in enumerate(recs) if rec.topic == topics.RGB_IMAGE_TOPIC]
    stamps = [frame.stamps_ns["rgb"] for frame in frames]
    # frame 2: unset header stamp
    recs[rgb[2]] = replace(recs[rgb[2]], message=with_stamp(recs[rgb[2]].message, 0))
    # frame 3: stamp goes back 50 ms, before the already-labelled frame 1 (backwards)
    recs[rgb[3]] = replace(recs[rgb[3]], message=with_stamp(recs[rgb[3]].message,
                                                            stamps[1] - 50_000_000))
    # frame 4 logged after frame 5 was complete (out of log order): stale. (Logged before
    # frame 5 completes it would still be labelled, in stamp order.)
    recs[rgb[4]] = replace(recs[rgb[4]], log_ns=max(rec.log_ns for rec in recs) + 1_000_000)
    # frame 1 recorded twice (a driver resending), the copy logged 1 ms later
    recs.append(replace(recs[rgb[1]], log_ns=recs[rgb[1]].log_ns + 1_000_000))
    recs.sort(key=lambda rec: rec.log_ns)
    result, out = replay_records(tmp_path, recs, model_path)
    assert result.rgb_messages == 7
    assert_every_rgb_frame_accounted(result)
    assert result.dropped["duplicate_stamp"] == 1 and result.dropped["zero_stamp"] == 1
    assert result.dropped["stale_stamp"] == 2
    labelled = [header_stamp_ns(msg) for _, msg in out[m.LABELS_TOPIC]]
    assert labelled == [stamps[0], stamps[1], stamps[5]]
    pipeline = statuses(out, "/mlesam: pipeline")
    warned = [(msg, values) for _, level, msg, values in pipeline if level == m.WARN]
    assert warned and "dropped" in warned[0][0]
    assert int(pipeline[-1][3]["dropped_frames"]) == sum(result.dropped.values())
    assert pipeline[-1][3]["dropped_zero_stamp"] == "1"
    latency = result.summary()["latency_ms"]
    assert 0 <= latency["p50"] <= latency["p99"] < 60_000  # bag wait + real (CPU) processing
    assert "header.stamp is 0" in result.summary()["issues"] or result.issues["rgb"] >= 1


def _raw_stamp(message, sec: int, nanosec: int):
    """A copy of ``message`` whose header stamp is (sec, nanosec) as given, valid or not."""
    copy = with_stamp(message, 1)
    copy.header.stamp.sec, copy.header.stamp.nanosec = sec, nanosec
    return copy


def test_stamps_that_are_not_times_are_refused_on_every_input(tmp_path, frames, model_path):
    """nanosec >= 10^9 and a negative sec, on RGB, depth, LiDAR and CameraInfo: each message is
    ignored with its own fault named, RGB frames are counted, and the labels that go out keep
    strictly increasing stamps."""
    recs = drive_records(frames)
    stamps = [frame.stamps_ns["rgb"] for frame in frames]

    def index(topic: str, frame: int) -> int:
        return next(i for i, rec in enumerate(recs) if rec.topic == topic and rec.frame == frame)

    def corrupt(topic: str, frame: int, sec: int, nanosec: int) -> None:
        i = index(topic, frame)
        recs[i] = replace(recs[i], message=_raw_stamp(recs[i].message, sec, nanosec))

    sec1 = stamps[1] // 10**9
    corrupt(topics.RGB_IMAGE_TOPIC, 1, sec1, stamps[1] % 10**9 + 10**9)  # 1 s "ahead"
    corrupt(topics.RGB_IMAGE_TOPIC, 3, sec1, 2**32 - 1)  # 4.29 s "ahead"
    corrupt(topics.RGB_IMAGE_TOPIC, 4, -5, 0)
    corrupt(topics.DEPTH_IMAGE_TOPIC, 2, sec1, 1_999_999_999)
    corrupt(topics.LIDAR_TOPIC, 5, -1, 5)
    corrupt(topics.INFO_TOPICS["thermal"], 4, 3, 10**9)  # the earlier CameraInfo stays in use
    result, out = replay_records(tmp_path, recs, model_path)
    assert_every_rgb_frame_accounted(result)
    assert result.dropped == {"invalid_stamp": 3}
    labelled = [header_stamp_ns(msg) for _, msg in out[m.LABELS_TOPIC]]
    assert labelled == [stamps[0], stamps[2], stamps[5]]
    assert all(a < b for a, b in itertools.pairwise(labelled))
    issues = {name: " ".join(values["last_issue"] for *_, values in statuses(out, name))
              for name in ("/mlesam: rgb", "/mlesam: depth", "/mlesam: points",
                           "/mlesam: thermal")}
    assert "nanosec is" in issues["/mlesam: rgb"]
    assert "sec is -5, negative" in issues["/mlesam: rgb"]
    assert "nanosec is 1999999999" in issues["/mlesam: depth"]
    assert "sec is -1, negative" in issues["/mlesam: points"]
    assert "CameraInfo header.stamp.nanosec is 1000000000" in issues["/mlesam: thermal"]
    assert "is 0 (unset)" not in " ".join(issues.values())


def test_all_zero_stamps_label_nothing_and_say_why(tmp_path, frames, model_path) -> None:
    recs = [replace(rec, message=with_stamp(rec.message, 0))
            if hasattr(rec.message, "header") else rec for rec in drive_records(frames[:3])]
    result, out = replay_records(tmp_path, recs, model_path)
    assert result.frames == 0 and result.dropped == {"zero_stamp": 3}
    values = statuses(out, "/mlesam: pipeline")[-1][3]
    assert values["dropped_frames"] == "3"
    assert "nan" in values["latency_p50_ms"]
    rgb = statuses(out, "/mlesam: rgb")[-1]
    assert rgb[1] != m.OK and "stamp is 0" in rgb[2]


def test_stamps_on_another_clock_give_no_absurd_latency(tmp_path, frames, model_path) -> None:
    """Stamps on another clock than the node's give no latency sample (not 1.7e12 ms)."""
    for shift, name in ((-1_000_000_000_000, "behind"), (5_000_000_000, "ahead")):
        recs = [replace(rec, message=with_stamp(rec.message, header_stamp_ns(rec.message)
                                                + shift))
                if hasattr(rec.message, "header") else rec for rec in drive_records(frames[:3])]
        result, out = replay_records(tmp_path / name, recs, model_path,
                                     **{"extrinsics.source": "config"})  # fmt: skip
        assert result.frames == 3
        assert result.summary()["latency_ms"]["p50"] is None
        values = statuses(out, "/mlesam: pipeline")[-1][3]
        assert values["latency_unmeasured"] == "3" and values["latency_p99_ms"] == "nan"
        assert "another clock" in statuses(out, "/mlesam: rgb")[-1][3]["last_issue"]
