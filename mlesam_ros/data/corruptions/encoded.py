"""Corrupting the model's uint8 modality images (as datasets ship them, as training caches)."""

from __future__ import annotations

import numpy as np

from mlesam_ros.data.corruptions.images import (
    blob_mask,
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

# --- corrupting the model's modality images ---------------------------------------------------


def corrupt_encoded(
    image: np.ndarray,
    corruption: Corruption,
    rng: np.random.Generator,
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """Corrupt one (H, W, 3) uint8 modality image as the model receives it.

    ``previous`` is the same modality's image from an earlier frame (``frozen``; without it
    the frame repeats itself, which is harmless but not a lie). Encoded depth and LiDAR keep
    0 as "no measurement", so holes stay holes and nothing invents a return where the
    corruption does not put one on purpose.
    """
    kind, severity, modality = corruption.kind, corruption.severity, corruption.modality
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"corrupt_encoded: expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}"
        )
    sparse = modality in ("lidar", "event")
    valid = np.any(image != 0, axis=2)
    if kind == "motion_blur":
        return motion_blur(image, severity, rng)
    if kind == "overexposure":
        return overexposure(image, severity, rng, 255.0)
    if kind == "underexposure":
        return underexposure(image, severity, rng, 255.0)
    if kind == "low_resolution":
        return low_resolution(image, severity, sparse)
    if kind == "frozen":
        return image.copy() if previous is None else np.array(previous, dtype=np.uint8)
    if kind == "black":
        return np.zeros_like(image)
    if kind == "constant":
        if modality == "depth":
            # A close wall: every pixel returns the same near depth.
            from mlesam_ros.data.encode import encode_depth

            wall = np.full(image.shape[:2], WALL_M[severity - 1], np.float32)
            return encode_depth(wall)
        if modality == "lidar":
            return _lidar_wall_encoded(image, severity)
        value = rng.integers(40, 216, size=3 if modality == "rgb" else 1)
        return np.broadcast_to(value.astype(np.uint8), image.shape).copy()
    if kind == "noise":
        sigma = NOISE_SIGMA[severity - 1] * 255.0
        if sparse:
            return _scatter_encoded(image, severity, rng)
        noisy = gaussian_noise(image, sigma, rng, 255.0)
        if modality == "depth":
            noisy = np.maximum(noisy, 1)  # stays a measurement (codes 1..255)
            noisy[~valid] = 0
        return noisy
    if kind == "occlusion":
        covered = blob_mask(image.shape[:2], OCCLUDED[severity - 1], rng)
        result = image.copy()
        if modality == "depth":
            from mlesam_ros.data.encode import encode_depth

            result[covered] = encode_depth(np.full((1, 1), 0.3, np.float32))[0, 0]
        elif modality == "lidar":
            result[covered] = 0  # a blocked sector returns nothing
        else:
            result[covered] = rng.integers(0, 40)  # mud: a dark, textureless blot
        return result
    if kind == "dropout":
        lost = blob_mask(image.shape[:2], DROPPED[severity - 1], rng, count=6)
        result = image.copy()
        result[lost] = 0
        return result
    if kind == "extrinsic":
        return shift_image(image, severity, rng, sparse=modality in ("lidar", "depth"))
    if kind == "jitter":
        return _jitter_encoded(image, severity, rng)
    raise AssertionError(f"unhandled corruption kind {kind}")  # pragma: no cover


def _scatter_encoded(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """LiDAR/event noise on the image: a share of the returns move to random pixels/values."""
    result = image.copy()
    rows, cols = np.nonzero(np.any(image != 0, axis=2))
    count = len(rows)
    if count == 0:
        return result
    moved = rng.random(count) < NOISE_SHARE[severity - 1]
    result[rows[moved], cols[moved]] = 0
    height, width = image.shape[:2]
    new_rows = rng.integers(0, height, moved.sum())
    new_cols = rng.integers(0, width, moved.sum())
    result[new_rows, new_cols] = rng.integers(1, 256, size=(moved.sum(), 3))
    return result


def _jitter_encoded(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """LiDAR jitter on the image: returns move a few pixels and their depth codes shake."""
    result = np.zeros_like(image)
    rows, cols = np.nonzero(np.any(image != 0, axis=2))
    if len(rows) == 0:
        return result
    height, width = image.shape[:2]
    spread = 0.5 + 2.0 * JITTER_M[severity - 1] / JITTER_M[-1] * severity / 2
    new_rows = np.clip(np.rint(rows + rng.normal(0, spread, len(rows))), 0, height - 1)
    new_cols = np.clip(np.rint(cols + rng.normal(0, spread, len(cols))), 0, width - 1)
    values = image[rows, cols].astype(np.float32)
    values[:, 0] += rng.normal(0, 20.0 * severity, len(rows))
    result[new_rows.astype(int), new_cols.astype(int)] = np.clip(values, 1, 255).astype(np.uint8)
    return result


def _lidar_wall_encoded(image: np.ndarray, severity: int) -> np.ndarray:
    """Cover the LiDAR window: every return at the same short range, same intensity."""
    result = image.copy()
    valid = np.any(image != 0, axis=2)
    # Channel 0 is the LiDAR image's depth code, linear over 0..80 m (geometry.lidar_image).
    result[valid, 0] = 1 + round(254 * WALL_M[severity - 1] / 80.0)
    result[valid, 1] = 31
    return result
