"""Each optional sensor in its own guard: a bad message, setting or image leaves only it out."""

from __future__ import annotations

import logging
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


def _without_intensity(message, extra=()):
    """The cloud re-packed with x, y, z (and ``extra`` float fields) only: a Livox-like cloud."""
    from mlesam_ros.msgs import array_to_pointcloud2, pointcloud2_to_array

    points = pointcloud2_to_array(message)
    layout = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), *[(name, "<f4") for name in extra]]
    packed = np.zeros(points.shape, dtype=layout)
    for axis in "xyz":
        packed[axis] = points[axis]
    return array_to_pointcloud2(packed, header_stamp_ns(message), message.header.frame_id)


@pytest.mark.parametrize("extra", [(), ("ring", "time")], ids=["xyz", "xyz-ring-time"])
def test_a_cloud_without_intensity_is_fused_but_reported_once(
    tmp_path, frames, model_path, caplog, extra
) -> None:
    """The model's LiDAR encoding uses intensity: its absence is said once (log) and shown as
    long as it lasts (WARN 'fused, degraded'); a cloud with intensity clears it."""
    recs = drive_records(frames[:5])
    lidar = [i for i, rec in enumerate(recs) if rec.topic == topics.LIDAR_TOPIC]
    for i in lidar[:3]:
        recs[i] = replace(recs[i], message=_without_intensity(recs[i].message, extra))
    result, out = replay_records(tmp_path, recs, model_path, **{"diagnostics.period_s": 0.05})
    assert result.frames == 5 and result.presence == {"rgb+depth+thermal+lidar": 5}
    logged = [r.getMessage() for r in caplog.records if "no 'intensity' field" in r.getMessage()]
    assert len(logged) == 1 and "degraded" in logged[0] and "'x', 'y', 'z'" in logged[0]
    points = statuses(out, "/mlesam: points")
    degraded = [(level, message) for _, level, message, values in points if values["degraded"]]
    assert degraded and all(level == m.WARN and message.startswith("fused, degraded: no "
                                                                   "'intensity' field")
                            for level, message in degraded)  # fmt: skip
    assert points[-1][1] == m.OK and points[-1][3]["degraded"] == ""


@pytest.mark.parametrize(
    ("sensor", "model", "coefficients", "unusable"),
    [
        ("rgb", "rational_polynomial", [0.0, 0, 0, 0, 0, -10.0, 0, 0], True),  # 1 + k4 r2 = 0
        ("rgb", "plumb_bob", [1e308, 1e308, 0, 0, 1e308], True),  # overflows off axis
        ("thermal", "plumb_bob", [1e308, 1e308, 0, 0, 1e308], True),
        ("depth", "equidistant", [-5.0, 10.0, -50.0, 100.0], True),  # folds back at the rim
        # Diverges only outside the image (the registration's forward projection): quiet,
        # and nothing to report.
        ("thermal", "rational_polynomial", [1.0, 0, 0, 0, 0, -1.0, 0, 0], False),
    ],
)
def test_extreme_lens_models_print_no_numpy_warning_and_are_reported(
    tmp_path, frames, model_path, caplog, sensor, model, coefficients, unusable
) -> None:
    import warnings

    from mlesam_ros.msgs import camera_info_to_camera

    recs = drive_records(frames[:3])
    for i, rec in enumerate(recs):
        if rec.topic == topics.INFO_TOPICS[sensor]:
            recs[i] = replace(rec, message=replace(rec.message, distortion_model=model,
                                                   d=np.array(coefficients)))  # fmt: skip
            camera = camera_info_to_camera(recs[i].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the replay, hence the test
        result, out = replay_records(tmp_path, recs, model_path, **{"diagnostics.period_s": 0.05})
    assert result.frames == 3
    said = [r.getMessage() for r in caplog.records if "no usable ray" in r.getMessage()]
    assert (camera.unusable_ray_share > 0) == unusable == bool(said)
    if not unusable:
        return
    assert len(said) == 1 and f"[{sensor} " in said[0]  # once, for 3 frames
    values = [values for *_, values in statuses(out, f"/mlesam: {sensor}")]
    assert any("no usable ray" in (v["degraded"] + v["last_issue"]) for v in values)


def test_unusable_ray_share_measures_a_diverging_lens() -> None:
    from mlesam_ros.geometry import CameraModel

    K = np.array([[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]])
    assert CameraModel(160, 120, K).unusable_ray_share == 0.0
    assert CameraModel(160, 120, K, np.array([-0.3, 0.1, 0, 0, 0])).unusable_ray_share == 0.0
    diverging = CameraModel(160, 120, K, np.array([0, 0, 0, 0, 0, -10.0, 0, 0]),
                            "rational_polynomial")  # fmt: skip
    assert 0.3 < diverging.unusable_ray_share < 1.0
    assert diverging.max_ray_slope == float("inf")  # no finite border ray: no slope culling


def test_issues_that_differ_only_in_their_numbers_are_one_kind_in_the_log(caplog) -> None:
    """A stamp on another clock differs every frame: logged 1st, 10th, 100th, not per frame."""
    from mlesam_ros.pipeline.diagnostics import OnceLog
    from mlesam_ros.pipeline.sensors import Issue

    text = "header.stamp is {:+.1f} s from the node clock; latency not measured"
    issues = [Issue("rgb", "/camera/image_raw", text.format(-96418427.8 - 0.1 * i))
              for i in range(40)]  # fmt: skip
    assert len({issue.kind for issue in issues}) == 1
    assert Issue("rgb", "/c", "header.stamp is 0 (unset)").kind != issues[0].kind
    assert Issue("depth", "/c", issues[0].text).kind != issues[0].kind
    once = OnceLog(lambda: logging.getLogger("test.once"))
    with caplog.at_level(logging.WARNING, logger="test.once"):
        for issue in issues:
            once("warning", issue.kind, str(issue))
    assert [r.getMessage()[-5:] for r in caplog.records] == [issues[0].text[-5:], "(x10)"]
