"""Sensor arrays → the model's 3-channel uint8 modality images (pure functions of arrays).

The live pipeline and training both call these, so a model sees the same encoding on the
robot as in training. Conventions:

- rgb: (H, W, 3) uint8 as is.
- depth: metric depth (m) → [inverse depth, log depth, linear depth], each 0..255 with 0 for
  "no measurement". DELIVER ships depth as HHA images (disparity, height above ground, angle
  to gravity); HHA needs the camera's pose to gravity per frame, which a robot's depth topic
  does not carry, so we use three range-only encodings that give fine resolution near (inverse),
  mid (log) and far (linear). A depth expert trained on DELIVER's HHA should be fine-tuned on
  this encoding before being used on robot depth.
- thermal: mono16 (or float kelvin) → robust per-image min/max (percentiles, like a thermal
  camera's automatic gain control) or a fixed range, 8 bit, replicated to 3 channels.
- lidar: points + intensity + extrinsic + camera → ``mlesam_ros.geometry.lidar_image``
  (depth, intensity, height channels in the RGB camera).
"""

from __future__ import annotations

import numpy as np

DEFAULT_DEPTH_RANGE_M = (0.3, 80.0)


def encode_rgb(rgb: np.ndarray) -> np.ndarray:
    """Validate an RGB image and return it as (H, W, 3) uint8."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb: expected (H, W, 3), got {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected uint8, got {rgb.dtype}; scale to 0..255 first")
    return rgb


def encode_depth(
    depth_m: np.ndarray, depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M
) -> np.ndarray:
    """Encode metric depth (H, W) to (H, W, 3) uint8 [inverse, log, linear]; 0 = invalid.

    Valid depths map to 1..255 within ``depth_range_m`` (clipped); 0, NaN and inf are
    invalid, as in REP 118 depth images.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise ValueError(f"depth: expected (H, W) metres, got {depth.shape}")
    near, far = depth_range_m
    if not 0 < near < far:
        raise ValueError(f"depth_range_m: need 0 < near < far, got {depth_range_m}")
    valid = np.isfinite(depth) & (depth > 0)
    z = np.clip(np.where(valid, depth, far), near, far)
    inverse = (1.0 / z - 1.0 / far) / (1.0 / near - 1.0 / far)
    log = np.log(z / near) / np.log(far / near)
    linear = (z - near) / (far - near)
    # Per channel, in place: 1 + rint(254 * value) where valid, else 0 (the 0/1 factor).
    # float64 like the stacked form this replaced (the log channel is float64), so the
    # codes, ties at .5 included, are those the shipped models were trained on.
    keep = valid.astype(np.float64)
    encoded = np.empty((*depth.shape, 3), dtype=np.uint8)
    for index, channel in enumerate((inverse, log, linear)):
        scaled = np.multiply(channel, 254.0, dtype=np.float64)
        np.rint(scaled, out=scaled)
        scaled += 1.0
        scaled *= keep
        encoded[..., index] = scaled
    return encoded


def decode_depth(
    encoded: np.ndarray, depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M
) -> np.ndarray:
    """Invert :func:`encode_depth` from its log channel (m; 0 where invalid)."""
    near, far = depth_range_m
    channel = np.asarray(encoded)[..., 1].astype(np.float32)
    depth = near * np.exp((channel - 1.0) / 254.0 * np.log(far / near))
    return np.where(channel > 0, depth, 0.0).astype(np.float32)


def encode_thermal(
    thermal: np.ndarray,
    value_range: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> np.ndarray:
    """Normalise a thermal image (H, W) to 8 bit and replicate it to (H, W, 3) uint8.

    ``value_range`` fixes the mapping (in the image's units, e.g. centi-kelvin); otherwise the
    ``percentiles`` of the image set it, which keeps contrast across day and night.
    """
    values = np.asarray(thermal)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2:
        raise ValueError(f"thermal: expected (H, W), got {values.shape}")
    values = values.astype(np.float32)
    if value_range is None:
        low, high = np.percentile(values, percentiles)
    else:
        low, high = value_range
    if not high > low:
        high = low + 1.0  # a flat (e.g. black or covered) frame encodes as uniform 0
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
    grey = np.rint(255.0 * scaled).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def encode_lidar(
    xyz: np.ndarray,
    intensity: np.ndarray | None,
    camera_from_lidar: np.ndarray,
    camera,
    intensity_max: float = 255.0,
    dilation: int = 1,
    **options,
) -> np.ndarray:
    """Render LiDAR points as the model's (H, W, 3) LiDAR image in ``camera``.

    Thin wrapper over :func:`mlesam_ros.geometry.lidar_image` with the synthetic world's
    intensity scale (0..255, Velodyne-style) and one pixel of nearest-depth dilation.
    """
    from mlesam_ros.geometry.lidar_image import lidar_image

    return lidar_image(
        np.asarray(xyz, dtype=np.float32), intensity, camera_from_lidar, camera,
        intensity_max=intensity_max, dilation=dilation, **options,
    )  # fmt: skip


def blank_modality(height: int, width: int) -> np.ndarray:
    """Return the all-zero image used for a modality that is absent (``present`` False)."""
    return np.zeros((height, width, 3), dtype=np.uint8)
