"""Corrupting a sensor's own data before encoding: RGB, depth (m), thermal counts, points."""

from __future__ import annotations

import numpy as np

from mlesam_ros.data.corruptions.images import (
    _like,
    blob_mask,
    extrinsic_offset,
    gaussian_noise,
    low_resolution,
    motion_blur,
    overexposure,
    shift_image,
    underexposure,
)
from mlesam_ros.data.corruptions.spec import (
    DROPPED,
    JITTER_M,
    NOISE_SHARE,
    NOISE_SIGMA,
    OCCLUDED,
    WALL_M,
    Corruption,
)

# --- corrupting a sensor's own data (before encoding) -----------------------------------------

DEPTH_MAX_M = 80.0
THERMAL_FULL_SCALE = 65535.0


def corrupt_sensor(
    sensor: str,
    data: np.ndarray,
    corruption: Corruption,
    rng: np.random.Generator,
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """Corrupt one sensor's own data, before it is encoded for the model.

    ``data``: RGB (H, W, 3) uint8, depth (H, W) float metres (0 = no return), thermal (H, W)
    uint16 counts, LiDAR points (structured x, y, z, intensity). ``sensor`` must match
    ``corruption.modality``. ``previous`` is this sensor's data of an earlier frame
    (``frozen``). LiDAR ``extrinsic`` moves the points (the calibration stays),
    thermal/depth ``extrinsic`` shift their image: what a sensor knocked on its mount gives.
    """
    if sensor != corruption.modality:
        raise ValueError(f"corrupt_sensor: data of {sensor} given for {corruption.name}")
    kind, severity = corruption.kind, corruption.severity
    if kind == "frozen":
        return (data if previous is None else previous).copy()
    if sensor == "lidar":
        return _corrupt_points(data, kind, severity, rng)
    if sensor == "depth":
        return _corrupt_depth(np.asarray(data, np.float32), kind, severity, rng)
    full_scale = 255.0 if sensor == "rgb" else THERMAL_FULL_SCALE
    if sensor == "thermal":
        return _corrupt_thermal(data, kind, severity, rng)
    return _corrupt_camera(data, kind, severity, rng, full_scale)


def _corrupt_camera(image: np.ndarray, kind: str, severity: int, rng: np.random.Generator,
                    full_scale: float) -> np.ndarray:  # fmt: skip
    if kind == "motion_blur":
        return motion_blur(image, severity, rng)
    if kind == "overexposure":
        return overexposure(image, severity, rng, full_scale)
    if kind == "underexposure":
        return underexposure(image, severity, rng, full_scale)
    if kind == "low_resolution":
        return low_resolution(image, severity)
    if kind == "black":
        return np.zeros_like(image)
    if kind == "constant":
        channels = image.shape[2] if image.ndim == 3 else 1
        value = rng.uniform(0.15, 0.85, size=channels) * full_scale
        return _like(np.broadcast_to(value, image.shape).copy(), image)
    if kind == "noise":
        return gaussian_noise(image, NOISE_SIGMA[severity - 1] * full_scale, rng, full_scale)
    if kind == "occlusion":
        covered = blob_mask(image.shape[:2], OCCLUDED[severity - 1], rng)
        result = image.copy()
        result[covered] = _like(np.array(rng.uniform(0.0, 0.15) * full_scale), image)
        return result
    if kind == "extrinsic":
        return shift_image(image, severity, rng, sparse=False)
    raise ValueError(f"corrupt_sensor: {kind} does not apply to a camera image")


def _corrupt_thermal(image: np.ndarray, kind: str, severity: int,
                     rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Thermal counts: exposure-like kinds act on the scene's range, not the full 16 bits."""
    values = np.asarray(image)
    if kind in ("overexposure", "underexposure", "noise", "constant", "occlusion"):
        # Work relative to the frame's own range so "glare" saturates what the camera shows.
        low, high = (float(v) for v in np.percentile(values, (1, 99)))
        span = max(high - low, 1.0)
        shifted = (values.astype(np.float32) - low) / span * 255.0
        if kind == "constant":
            return np.full_like(values, int(low + rng.uniform(0.2, 0.8) * span))
        if kind == "noise":
            changed = gaussian_noise(shifted, NOISE_SIGMA[severity - 1] * 255.0, rng, 1e9)
        elif kind == "occlusion":
            covered = blob_mask(values.shape[:2], OCCLUDED[severity - 1], rng)
            changed = shifted.copy()
            changed[covered] = rng.uniform(0.0, 40.0)
        else:
            changed = (overexposure if kind == "overexposure" else underexposure)(
                shifted, severity, rng, 255.0
            )
        restored = low + changed.astype(np.float32) / 255.0 * span
        return _like(np.clip(restored, 0, THERMAL_FULL_SCALE), values)
    return _corrupt_camera(values, kind, severity, rng, THERMAL_FULL_SCALE)


def _corrupt_depth(depth: np.ndarray, kind: str, severity: int,
                   rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    valid = np.isfinite(depth) & (depth > 0)
    if kind == "black":
        return np.zeros_like(depth)
    if kind == "constant":
        return np.full_like(depth, WALL_M[severity - 1])
    if kind == "noise":
        # Stereo-like depth noise grows with range; here it is far beyond the sensor's spec.
        noisy = depth * (1.0 + rng.normal(0.0, NOISE_SIGMA[severity - 1] * 2, depth.shape))
        return np.where(valid, np.clip(noisy, 0.05, DEPTH_MAX_M), 0.0).astype(np.float32)
    if kind == "occlusion":
        covered = blob_mask(depth.shape, OCCLUDED[severity - 1], rng)
        return np.where(covered, np.float32(0.3), depth).astype(np.float32)
    if kind == "dropout":
        lost = blob_mask(depth.shape, DROPPED[severity - 1], rng, count=6)
        return np.where(lost, 0.0, depth).astype(np.float32)
    if kind == "low_resolution":
        return low_resolution(depth, severity, sparse=True)
    if kind == "extrinsic":
        return shift_image(depth, severity, rng, sparse=True)
    raise ValueError(f"corrupt_sensor: {kind} does not apply to depth")


def _corrupt_points(points: np.ndarray, kind: str, severity: int,
                    rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """LiDAR points (structured array with x, y, z[, intensity]) in the LiDAR frame."""
    result = points.copy()
    xyz = np.stack([result["x"], result["y"], result["z"]], axis=1).astype(np.float64)
    count = len(result)
    if kind == "jitter":
        xyz += rng.normal(0.0, JITTER_M[severity - 1], xyz.shape)
    elif kind == "noise":
        moved = rng.random(count) < NOISE_SHARE[severity - 1]
        directions = rng.normal(size=(int(moved.sum()), 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        ranges = rng.uniform(1.0, 60.0, (len(directions), 1))
        xyz[moved] = directions * ranges
        if "intensity" in result.dtype.names:
            result["intensity"][moved] = rng.uniform(0, 255, int(moved.sum()))
    elif kind == "constant":
        norms = np.linalg.norm(xyz, axis=1, keepdims=True)
        xyz = xyz / np.maximum(norms, 1e-6) * WALL_M[severity - 1]
        if "intensity" in result.dtype.names:
            result["intensity"] = 30.0
    elif kind == "extrinsic":
        rotation, translation = extrinsic_offset(severity, rng)
        xyz = xyz @ rotation.T + translation
    elif kind == "dropout":
        azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
        # Lost in patches: whole azimuth sectors go quiet, as with dirt on the window.
        sectors = 36
        sector = ((azimuth + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
        quiet = rng.random(sectors) < DROPPED[severity - 1]
        return result[~quiet[sector]]
    elif kind == "occlusion":
        azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
        width = OCCLUDED[severity - 1] * np.pi  # share of the front half-circle
        centre = rng.uniform(-np.pi / 4, np.pi / 4)
        blocked = np.abs(np.angle(np.exp(1j * (azimuth - centre)))) < width / 2
        return result[~blocked]
    else:
        raise ValueError(f"corrupt_sensor: {kind} does not apply to LiDAR points")
    result["x"], result["y"], result["z"] = xyz.T.astype(result["x"].dtype)
    return result
