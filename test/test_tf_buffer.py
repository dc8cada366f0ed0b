"""The tf buffer: tf2's rules per transform, refused transforms reported, loops refused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FULL, Record, drive_records, replay_records, statuses, tf_message

from mlesam_ros.data import topics
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.tf_buffer import TfBuffer


def test_bad_transforms_are_refused_per_message(tmp_path, frames, model_path) -> None:
    """A zero quaternion on a wheel link (and a NaN on the LiDAR's own edge) is refused with
    a diagnostic and nothing else changes: the replay goes on."""
    recs = drive_records(frames[:5])
    rig = frames[0].rig
    t1, t2 = frames[1].stamps_ns["rgb"] - 1_000_000, frames[3].stamps_ns["rgb"] - 1_000_000
    recs += [
        Record("/tf", topics.TF_TYPE,
               tf_message(rig.base_frame, "wheel_link", t1, (1.0, 0.0, 0.0), (0, 0, 0, 0)), t1),
        Record("/tf", topics.TF_TYPE,
               tf_message(rig.base_frame, rig.lidar.frame_id, t2, (float("nan"), 0.0, 0.0),
                          (0, 0, 0, 1)), t2),
    ]
    recs.sort(key=lambda rec: rec.log_ns)
    result, out = replay_records(tmp_path, recs, model_path, **{"output.labeled_points": True})
    assert result.presence == {FULL: 5}
    tf = statuses(out, "/mlesam: tf")
    assert tf and {level for _, level, _, _ in tf} == {m.WARN}
    assert int(tf[-1][3]["issues"]) == 2
    messages = " ".join(message for _, _, message, _ in tf)
    assert "'base_link' -> 'wheel_link' refused" in messages and "quaternion" in messages
    assert "'base_link' -> 'lidar' refused: non-finite" in tf[-1][2]


def test_tf_buffer_refuses_invalid_transforms_and_loops() -> None:
    """The buffer the replay uses follows tf2's rules, built from TFMessages."""

    buffer = TfBuffer()
    assert buffer.add_message(tf_message("base", "lidar", 5, (1.0, 2.0, 3.0), (0, 0, 0, 1)),
                              static=True) == []
    assert buffer.add_message(tf_message("base", "camera", 5, (0.5, 0.0, 0.0),
                                         (0.5, -0.5, 0.5, -0.5)), static=True) == []
    before = buffer.lookup("camera", "lidar", 10)
    refused = []
    for msg in (
        tf_message("base", "wheel", 6, (0.0, 0.0, 0.0), (0, 0, 0, 0)),  # zero quaternion
        tf_message("base", "imu", 6, (0.0, float("inf"), 0.0), (0, 0, 0, 1)),  # inf
        tf_message("base", "gps", 6, (0.0, 0.0, 0.0), (0, 0, float("nan"), 1)),  # NaN
        tf_message("lidar", "base", 6, (0.0, 0.0, 2.0), (0, 0, 0, 1)),  # loop base->lidar->base
        tf_message("a", "b", 6, (0.0, 0.0, 0.0), (0, 0, 0, 1)),  # unrelated tree a->b
        tf_message("b", "a", 6, (0.0, 0.0, 0.0), (0, 0, 0, 1)),  # ... and its loop
        tf_message("camera", "camera", 6, (0.0, 0.0, 0.0), (0, 0, 0, 1)),  # self parent
    ):
        refused += buffer.add_message(msg, static=False)
    assert len(refused) == 6
    assert "quaternion" in refused[0] and "'base' -> 'wheel'" in refused[0]
    assert "non-finite" in refused[1] and "non-finite" in refused[2]
    assert "loop" in refused[3] and "loop" in refused[4]
    np.testing.assert_array_equal(buffer.lookup("camera", "lidar", 10), before)
    np.testing.assert_allclose(buffer.lookup("base", "lidar", 10)[:3, 3], [1.0, 2.0, 3.0])
    with pytest.raises(LookupError, match="no connection"):
        buffer.lookup("camera", "wheel", 10)


def _with_raw_stamp(msg, sec: int, nanosec: int):
    """The TFMessage with its one transform stamped (sec, nanosec) as given (any values)."""
    stamped = msg.transforms[0]
    stamped.header.stamp.sec, stamped.header.stamp.nanosec = sec, nanosec
    return msg


def test_tf_stamps_that_are_not_times_are_refused_with_their_fault() -> None:
    """The stamp rule on /tf: nanosec >= 10^9, negative sec and (dynamic only) 0 are refused."""
    buffer = TfBuffer()
    ok = (0.0, 0.0, 0.0), (0, 0, 0, 1)
    cases = {
        "nanosec is 1999999999": _with_raw_stamp(tf_message("base", "a", 0, *ok), 1, 1999999999),
        "nanosec is 4294967295": _with_raw_stamp(tf_message("base", "b", 0, *ok), 7, 2**32 - 1),
        "sec is -3, negative": _with_raw_stamp(tf_message("base", "c", 0, *ok), -3, 10),
        "is 0 (unset)": tf_message("base", "d", 0, *ok),
    }
    for fault, msg in cases.items():
        (problem,) = buffer.feed("/tf", msg)
        assert "refused" in problem and fault in problem
    with pytest.raises(LookupError, match="no connection"):
        buffer.lookup("base", "a", 1_999_999_999)
    # Calibration holds for all time: /tf_static may be unset (0), not malformed.
    assert buffer.feed("/tf_static", tf_message("base", "e", 0, *ok)) == []
    (problem,) = buffer.feed("/tf_static",
                             _with_raw_stamp(tf_message("base", "f", 0, *ok), 0, 10**9))
    assert "nanosec is 1000000000" in problem
    assert buffer.lookup("base", "e", 123).shape == (4, 4)


def test_tf_loop_in_a_bag_leaves_the_lidar_extrinsic_alone(tmp_path, frames, model_path) -> None:
    """An edge that would close a loop is refused: the LiDAR does not move ~2 m."""
    rig = frames[0].rig
    clean, clean_out = replay_records(tmp_path / "clean", drive_records(frames[:3]), model_path,
                              **{"output.labeled_points": True})
    recs = drive_records(frames[:3])
    t = recs[0].log_ns
    recs.insert(1, Record("/tf_static", topics.TF_TYPE,
                          tf_message(rig.lidar.frame_id, rig.base_frame, t, (0.0, 0.0, 2.0),
                                     (0, 0, 0, 1)), t))
    result, out = replay_records(tmp_path / "loop", recs, model_path,
                                 **{"output.labeled_points": True})  # fmt: skip
    assert result.presence == clean.presence
    for (_, a), (_, b) in zip(out[m.LABELED_POINTS_TOPIC], clean_out[m.LABELED_POINTS_TOPIC],
                              strict=True):
        assert bytes(a.data) == bytes(b.data)
    (_, level, message, _) = statuses(out, "/mlesam: tf")[-1]
    assert level == m.WARN and "loop" in message
