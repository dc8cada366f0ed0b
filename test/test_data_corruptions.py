"""Sensor corruptions: each kind changes the data as specified, at both levels."""

from __future__ import annotations

import numpy as np
import pytest

from mlesam_ros.data.corruptions import (
    APPLIES,
    KINDS,
    Corruption,
    blob_mask,
    corrupt_encoded,
    corrupt_sensor,
    kinds_for,
    parse_corruptions,
    sample_corruption,
)
from mlesam_ros.data.encode import decode_depth, encode_depth
from mlesam_ros.data.synth.render import LIDAR_DTYPE


def _rgb(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(30, 220, (12, 16, 3)), np.ones((8, 8, 1)))
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def _depth() -> np.ndarray:
    rows = np.linspace(2.0, 40.0, 96, dtype=np.float32)[:, None]
    depth = np.repeat(rows, 128, axis=1)
    depth[::7, ::5] = 0.0  # holes
    return depth


def _points(count: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.zeros(count, LIDAR_DTYPE)
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    xyz = direction * rng.uniform(3, 50, (count, 1))
    points["x"], points["y"], points["z"] = xyz.T
    points["intensity"] = rng.uniform(0, 255, count)
    return points


def _xyz(points: np.ndarray) -> np.ndarray:
    return np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)


def _rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


def _sharpness(image: np.ndarray) -> float:
    grey = image.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())


# --- parsing --------------------------------------------------------------------------------


def test_parse_reads_modality_kind_and_severity() -> None:
    assert Corruption.parse("lidar:noise:4") == Corruption("lidar", "noise", 4)
    assert Corruption.parse(" rgb : frozen ").severity == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lidar", "expected MODALITY:KIND"),
        ("rgb:sunburn", "unknown 'sunburn'"),
        ("rgb:extrinsic", "extrinsic applies to depth, lidar, thermal"),
        ("rgb:noise:9", "must be one of 1..5"),
        ("rgb:noise:x", "severity 'x' is not an integer"),
        ("rgb:" + "n" * 5000, "(5000 characters)"),
    ],
)
def test_parse_errors_name_the_fault_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as error:
        parse_corruptions([text])
    assert message in str(error.value)
    assert len(str(error.value)) < 300


def test_one_corruption_per_sensor() -> None:
    with pytest.raises(ValueError, match="lidar is given twice"):
        parse_corruptions(["lidar:noise", "lidar:frozen"])


def test_every_kind_applies_somewhere_and_sampling_respects_it() -> None:
    assert set(APPLIES) == set(KINDS)
    rng = _rng()
    for modality in ("rgb", "depth", "thermal", "lidar", "event"):
        for _ in range(30):
            drawn = sample_corruption(modality, rng)
            assert drawn is not None and drawn.kind in kinds_for(modality)
    assert sample_corruption("rgb", rng, ["jitter"]) is None


# --- the model's images ----------------------------------------------------------------------


def test_motion_blur_removes_detail_more_with_severity() -> None:
    image = _rgb()
    mild = corrupt_encoded(image, Corruption("rgb", "motion_blur", 1), _rng())
    severe = corrupt_encoded(image, Corruption("rgb", "motion_blur", 5), _rng())
    assert _sharpness(image) > _sharpness(mild) > _sharpness(severe)
    assert abs(float(severe.mean()) - float(image.mean())) < 3


def test_exposure_moves_brightness_and_saturates() -> None:
    image = _rgb()
    over = corrupt_encoded(image, Corruption("rgb", "overexposure", 3), _rng())
    under = corrupt_encoded(image, Corruption("rgb", "underexposure", 3), _rng())
    assert (over == 255).mean() > 0.3 > (image == 255).mean()
    assert under.mean() < 0.3 * image.mean()


def test_black_constant_and_frozen() -> None:
    image, previous = _rgb(0), _rgb(1)
    assert not corrupt_encoded(image, Corruption("rgb", "black"), _rng()).any()
    constant = corrupt_encoded(image, Corruption("rgb", "constant"), _rng())
    assert (constant == constant[0, 0]).all() and constant.any()
    frozen = corrupt_encoded(image, Corruption("rgb", "frozen"), _rng(), previous)
    assert np.array_equal(frozen, previous)


def test_constant_depth_is_a_close_wall_at_the_severity_distance() -> None:
    wall = corrupt_encoded(encode_depth(_depth()), Corruption("depth", "constant", 4), _rng())
    np.testing.assert_allclose(decode_depth(wall), 1.5, rtol=0.02)


def test_noise_has_the_severity_spread_and_keeps_depth_holes() -> None:
    image = _rgb()
    noisy = corrupt_encoded(image, Corruption("rgb", "noise", 3), _rng())
    spread = (noisy.astype(float) - image).std()
    assert 0.15 * 255 < spread < 0.3 * 255
    depth = encode_depth(_depth())
    noisy_depth = corrupt_encoded(depth, Corruption("depth", "noise", 3), _rng())
    holes = ~depth.any(axis=2)
    assert not noisy_depth[holes].any() and noisy_depth[~holes].all()


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_occlusion_covers_the_severity_share(severity: int) -> None:
    share = (0.1, 0.2, 0.3, 0.4, 0.55)[severity - 1]
    mask = blob_mask((96, 128), share, _rng(severity))
    assert abs(mask.mean() - share) < 0.02
    image = _rgb()
    covered = corrupt_encoded(image, Corruption("rgb", "occlusion", severity), _rng(severity))
    changed = np.any(covered != image, axis=2)
    assert abs(changed.mean() - share) < 0.03


def test_low_resolution_is_blocky_and_sparse_stays_unblended() -> None:
    sparse = np.zeros((96, 128, 3), np.uint8)
    sparse[::3, ::2] = 200
    low = corrupt_encoded(sparse, Corruption("lidar", "frozen"), _rng(), None)
    assert np.array_equal(low, sparse)  # frozen without a previous frame repeats itself
    event = corrupt_encoded(sparse, Corruption("event", "low_resolution", 2), _rng())
    assert set(np.unique(event)) <= {0, 200}  # nearest: no value that was never measured


def test_extrinsic_shifts_the_image_by_the_severity_angle() -> None:
    # A dot at the centre: the in-plane roll turns about the centre, so the dot moves by the
    # shift alone, ~1.6 px per degree for an 80-degree-wide, 128-pixel image.
    image = np.zeros((96, 128, 3), np.uint8)
    image[46:50, 62:66] = 200
    for severity, degrees in ((2, 2.0), (5, 8.0)):
        moved = corrupt_encoded(image, Corruption("lidar", "extrinsic", severity), _rng())
        rows, cols = np.nonzero(moved[:, :, 0])
        shift = np.hypot(rows.mean() - 47.5, cols.mean() - 63.5)
        assert shift == pytest.approx(degrees * 128 / 80, abs=1.0)


def test_lidar_noise_scatters_returns_in_the_image() -> None:
    sparse = np.zeros((96, 128, 3), np.uint8)
    sparse[40:60:2, ::2] = 100
    noisy = corrupt_encoded(sparse, Corruption("lidar", "noise", 3), _rng())
    outside = np.any(noisy != 0, axis=2)
    outside[40:60] = False
    assert outside.sum() > 50


def test_corruptions_are_deterministic_for_a_seed() -> None:
    image = _rgb()
    for kind in kinds_for("rgb"):
        corruption = Corruption("rgb", kind, 3)
        first = corrupt_encoded(image, corruption, _rng(7), _rgb(2))
        assert np.array_equal(first, corrupt_encoded(image, corruption, _rng(7), _rgb(2))), kind


def test_encoded_input_is_validated() -> None:
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 image"):
        corrupt_encoded(np.zeros((4, 4), np.uint8), Corruption("rgb", "black"), _rng())


# --- a sensor's own data ---------------------------------------------------------------------


def test_lidar_jitter_shakes_points_by_the_severity_std() -> None:
    points = _points()
    shaken = corrupt_sensor("lidar", points, Corruption("lidar", "jitter", 3), _rng())
    assert (_xyz(shaken) - _xyz(points)).std() == pytest.approx(0.2, rel=0.1)


def test_lidar_extrinsic_rotates_by_the_severity_angle() -> None:
    points = _points()
    moved = corrupt_sensor("lidar", points, Corruption("lidar", "extrinsic", 4), _rng())
    before, after = _xyz(points), _xyz(moved)
    # Rigid: distances between points are kept; the rotation angle is 5 degrees.
    gaps_after = np.linalg.norm(after[1:] - after[:-1], axis=1)
    gaps_before = np.linalg.norm(before[1:] - before[:-1], axis=1)
    np.testing.assert_allclose(gaps_after, gaps_before, rtol=1e-4)
    centred_b, centred_a = before - before.mean(0), after - after.mean(0)
    u, _, vt = np.linalg.svd(centred_b.T @ centred_a)
    rotation = (u @ vt).T
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
    assert angle == pytest.approx(5.0, abs=0.05)


def test_lidar_noise_dropout_and_constant() -> None:
    points = _points()
    noisy = corrupt_sensor("lidar", points, Corruption("lidar", "noise", 3), _rng())
    moved = np.any(_xyz(noisy) != _xyz(points), axis=1).mean()
    assert moved == pytest.approx(0.35, abs=0.03)
    kept = corrupt_sensor("lidar", points, Corruption("lidar", "dropout", 5), _rng())
    assert 0.1 < len(kept) / len(points) < 0.6
    wall = corrupt_sensor("lidar", points, Corruption("lidar", "constant", 5), _rng())
    np.testing.assert_allclose(np.linalg.norm(_xyz(wall), axis=1), 1.0, rtol=1e-5)


def test_depth_and_thermal_sensor_kinds() -> None:
    depth = _depth()
    holes = corrupt_sensor("depth", depth, Corruption("depth", "dropout", 3), _rng())
    assert (holes == 0).mean() > (depth == 0).mean() + 0.2
    wall = corrupt_sensor("depth", depth, Corruption("depth", "constant", 1), _rng())
    assert (wall == 3.0).all()
    thermal = (29000 + 50 * _rgb()[:, :, 0].astype(np.int64)).astype(np.uint16)
    over = corrupt_sensor("thermal", thermal, Corruption("thermal", "overexposure", 4), _rng())
    assert over.dtype == np.uint16 and over.mean() > thermal.mean()
    flat = corrupt_sensor("thermal", thermal, Corruption("thermal", "constant"), _rng())
    assert flat.std() == 0


def test_sensor_and_corruption_must_match() -> None:
    with pytest.raises(ValueError, match="data of rgb given for lidar:noise:3"):
        corrupt_sensor("rgb", _rgb(), Corruption("lidar", "noise"), _rng())
