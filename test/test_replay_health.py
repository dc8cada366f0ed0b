"""Sensor health through replay: a frozen and a noisy sensor are flagged, a clean drive never."""

from __future__ import annotations

import pytest
from conftest import SIZE, drive_records, replay_records, statuses

from mlesam_ros.data.corruptions import ScheduledCorruption
from mlesam_ros.data.synth import SyntheticDrive, default_rig
from mlesam_ros.data.synthetic_dataset import corrupt_stream

FRAMES, FROZEN_AT, NOISE_AT = 24, 8, 14


@pytest.fixture(scope="module")
def long_drive() -> list:
    rig = default_rig(width=SIZE[1], height=SIZE[0], lidar_beams=16, lidar_azimuth_steps=256)
    return list(SyntheticDrive(seed=4, rig=rig).frames(FRAMES))


def test_a_clean_drive_has_no_suspect_sensor(tmp_path, long_drive, model_path) -> None:
    result, out = replay_records(tmp_path, drive_records(long_drive), model_path)
    assert result.summary()["sensor_health"] == {}
    for sensor in ("rgb", "depth", "thermal", "points"):
        assert all(level == 0 for _, level, _, _ in statuses(out, f"/mlesam: {sensor}")[1:])


def test_a_frozen_and_a_noisy_sensor_are_flagged_within_a_few_frames(
    tmp_path, long_drive, model_path
) -> None:
    schedule = [ScheduledCorruption.parse(f"depth:frozen@{FROZEN_AT}"),
                ScheduledCorruption.parse(f"lidar:noise:3@{NOISE_AT}")]  # fmt: skip
    frames = list(corrupt_stream(long_drive, schedule))
    result, out = replay_records(tmp_path, drive_records(frames), model_path)
    health = result.summary()["sensor_health"]
    assert set(health) == {"depth", "lidar"}
    # Frames count from 1 in the summary; the fault starts at frame index FROZEN_AT.
    assert FROZEN_AT + 1 < health["depth"]["first_frame"] <= FROZEN_AT + 1 + 10
    assert list(health["depth"]["reasons"]) == ["frozen"]
    assert NOISE_AT + 1 < health["lidar"]["first_frame"] <= NOISE_AT + 1 + 10
    assert "outliers" in health["lidar"]["reasons"]
    warned = [message for _, level, message, _ in statuses(out, "/mlesam: depth") if level == 1]
    assert warned and warned[-1].startswith("suspect: frozen") and "still fused" in warned[-1]
    assert "sensor health" in result.text()


def test_suspect_as_absent_withholds_the_frozen_sensor(tmp_path, long_drive, model_path) -> None:
    frames = list(corrupt_stream(long_drive, [ScheduledCorruption.parse("depth:frozen@6")]))
    result, out = replay_records(tmp_path, drive_records(frames), model_path,
                                 **{"health.suspect_as_absent": True})  # fmt: skip
    fused = result.summary()["fused_modalities"]
    assert fused.get("rgb+thermal+lidar", 0) >= FRAMES - 12  # depth left out once suspect
    warned = [message for _, level, message, _ in statuses(out, "/mlesam: depth") if level == 1]
    assert any("withheld from the model" in message for message in warned)
