"""Each optional sensor in its own guard: a bad message, setting or image leaves only it out."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
from conftest import Record, drive_records, replay_records, statuses

from mlesam_ros.data import topics
from mlesam_ros.msgs import header_stamp_ns, numpy_to_image
from mlesam_ros.pipeline import messages as m


def test_image_on_the_lidar_topic_leaves_only_the_lidar_out(tmp_path, frames, model_path) -> None:
    recs = []
    for rec in drive_records(frames[:3]):
        if rec.topic == topics.LIDAR_TOPIC:
            image = numpy_to_image(np.zeros((4, 4), np.uint8), "mono8",
                                   header_stamp_ns(rec.message), "lidar")
            rec = Record(rec.topic, topics.IMAGE_TYPE, image, rec.log_ns)
        recs.append(rec)
    result, out = replay_records(tmp_path, recs, model_path)
    assert result.presence == {"rgb+depth+thermal": 3}
    _, level, message, values = statuses(out, "/mlesam: points")[-1]
    assert level != m.OK and "sensor_msgs/msg/Image" in message
    assert "sensor_msgs/msg/PointCloud2" in values["last_issue"]


@pytest.mark.parametrize(
    "parameters",
    [
        {"extrinsics.source": "config", "extrinsics.rgb_from_points":
            [float("nan"), 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]},
        {"lidar.max_range_m": 0.0},
        {"lidar.intensity_max": 0.0},
    ],
    ids=["nan-extrinsic", "max-range-0", "intensity-max-0"],
)
def test_bad_lidar_settings_never_cost_a_frame(tmp_path, frames, model_path, parameters) -> None:
    """Bad LiDAR settings never cost a frame: refused at start-up naming the parameter,
    with no output, or the LiDAR left out with a reason."""
    name = next(key for key in parameters if key != "extrinsics.source")
    try:
        result, out = replay_records(tmp_path, drive_records(frames[:3]), model_path, **parameters)
    except ValueError as error:
        assert name in str(error)
        assert not (tmp_path / "out").exists()
        return
    assert result.frames == 3 and "lidar" not in "".join(result.presence)
    _, level, _, values = statuses(out, "/mlesam: points")[-1]
    assert level == m.WARN and values["last_issue"].startswith("[points /lidar/points]")


@pytest.mark.parametrize("fill", [0.0, float("nan")], ids=["zeros", "nan"])
def test_sensor_image_without_a_valid_pixel_counts_as_absent(
    tmp_path, frames, model_path, fill
) -> None:
    recs = []
    for rec in drive_records(frames[:3]):
        if rec.topic in (topics.DEPTH_IMAGE_TOPIC, topics.THERMAL_IMAGE_TOPIC):
            msg = rec.message
            dtype = np.float32 if msg.encoding == "32FC1" else np.uint16
            empty = np.full((msg.height, msg.width), fill if dtype == np.float32 else 0, dtype)
            rec = replace(rec, message=numpy_to_image(empty, msg.encoding, msg.header))
        recs.append(rec)
    result, out = replay_records(tmp_path, recs, model_path)
    assert result.presence == {"rgb+lidar": 3}
    for sensor in ("depth", "thermal"):
        _, level, message, values = statuses(out, f"/mlesam: {sensor}")[-1]
        assert level == m.WARN and values["fused"] == "false"
        assert re.search(r"no (valid )?(\w+ )?pixel", message) and "left out" in message, message
