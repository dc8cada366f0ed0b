"""Sensor health on the model's images: each fault class flagged, a clean drive never."""

from __future__ import annotations

import numpy as np
import pytest

from mlesam_ros.data.corruptions import Corruption
from mlesam_ros.data.synthetic_dataset import SyntheticDataset, corrupt_frame, frame_to_images
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.health import HealthConfig, SensorHealth

MODALITIES = ("rgb", "depth", "thermal", "lidar")
FRAMES, ONSET = 24, 12


@pytest.fixture(scope="module")
def frames() -> list:
    dataset = SyntheticDataset(FRAMES, MODALITIES, (96, 128), frames_per_drive=FRAMES, seed=7)
    return [dataset.frame(i) for i in range(FRAMES)]


def _images(frame) -> dict[str, np.ndarray]:
    images, present = frame_to_images(frame, MODALITIES)
    return {m: images[k] for k, m in enumerate(MODALITIES) if present[k]}


def _drive(frames, corruption: Corruption | None, health: SensorHealth | None = None):
    """Feed the drive, the corruption from ONSET on; return (first suspect frame, reasons)."""
    health = health or SensorHealth(MODALITIES)
    stuck, flagged = None, {}
    for index, frame in enumerate(frames):
        if corruption is not None and index >= ONSET:
            rng = np.random.default_rng(index)
            if corruption.kind == "frozen":  # a driver stuck on the frame at the onset
                stuck = stuck or frame
                frame = corrupt_frame(frame, corruption, rng, previous=stuck)
            else:
                frame = corrupt_frame(frame, corruption, rng)
        for modality, reason in health.inspect(_images(frame)).items():
            flagged.setdefault(modality, (index, reason))
    return flagged, health


def test_a_clean_drive_raises_nothing(frames) -> None:
    flagged, health = _drive(frames, None)
    assert flagged == {}
    assert all(not state.suspect for state in health.states.values())


@pytest.mark.parametrize(
    ("corruption", "words"),
    [
        ("depth:frozen:3", "frozen"),
        ("rgb:frozen:3", "frozen"),
        ("lidar:noise:3", "outliers:"),
        ("rgb:overexposure:3", "over-exposed"),
        ("rgb:black:3", "black"),
        ("rgb:constant:3", "flat"),
        ("thermal:black:3", "black"),
        ("depth:constant:3", "same depth"),
        ("depth:occlusion:3", "near:"),
        ("depth:dropout:4", "holes"),
        ("depth:noise:3", "noisy"),
        ("lidar:constant:3", "same range"),
        ("lidar:extrinsic:3", "disagreement: differs from the depth camera"),
    ],
)
def test_each_fault_is_flagged_within_a_few_frames(frames, corruption: str, words: str) -> None:
    fault = Corruption.parse(corruption)
    flagged, _ = _drive(frames, fault)
    assert fault.modality in flagged, flagged
    index, reason = flagged[fault.modality]
    assert ONSET <= index <= ONSET + 4, (index, reason)
    assert words in reason
    # Nothing else is blamed, except the depth camera as the other half of a disagreement.
    others = {m for m in flagged if m != fault.modality}
    assert others <= ({"depth"} if "disagreement" in reason else set()), flagged


def test_a_disagreement_withholds_neither_sensor_but_an_own_fault_does(frames) -> None:
    config = HealthConfig(suspect_as_absent=True)
    moved = Corruption.parse("lidar:extrinsic:3")
    _, health = _drive(frames, moved, SensorHealth(MODALITIES, config))
    assert set(health.suspects()) == {"lidar", "depth"}
    assert health.withheld() == set()
    stuck = Corruption.parse("depth:frozen:3")
    _, health = _drive(frames, stuck, SensorHealth(MODALITIES, config))
    assert health.withheld() == {"depth"}
    assert SensorHealth(MODALITIES).withheld() == set()  # reporting only by default


def test_a_single_odd_frame_is_not_enough() -> None:
    health = SensorHealth(("rgb",), HealthConfig(window=10, min_faulty=3))
    rng = np.random.default_rng(0)
    for index in range(30):
        image = rng.integers(0, 200, (24, 32, 3), dtype=np.uint8)
        if index in (10, 20):
            image[:] = 255  # one saturated frame now and then
        assert health.inspect({"rgb": image}) == {}


def test_router_weight_falling_to_a_fraction_of_its_usual_value() -> None:
    health = SensorHealth(MODALITIES, HealthConfig(warmup=5))
    present = dict.fromkeys(MODALITIES, True)
    rng = np.random.default_rng(0)
    for index in range(40):
        # Camera images only: random depth and LiDAR images would disagree with each other.
        images = {m: rng.integers(1, 255, (24, 32, 3), dtype=np.uint8) for m in ("rgb", "thermal")}
        health.inspect(images)
        weights = np.array([0.3, 0.3, 0.15, 0.25])
        if index >= 20:  # the model stops trusting the thermal camera
            weights = np.array([0.33, 0.34, 0.02, 0.31])
        health.routing(np.tile(weights, (4, 1)), present)
        if index == 19:
            assert health.suspects() == {}
    state = health.states["thermal"]
    assert state.suspect and state.first_suspect_frame <= 24  # frames count from 1: 21st + 3
    assert state.reason == "router: the model outweighs it (weight 0.02, usually 0.15)"
    assert set(health.suspects()) == {"thermal"}


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match=r"min_faulty: must be in 1\.\.health\.window \(5\)"):
        HealthConfig(window=5, min_faulty=6)
    with pytest.raises(ValueError, match=r"parameter health\.min_faulty"):
        NodeConfig.from_parameters({"health.window": 4, "health.min_faulty": 5})
