"""Primitives on images shared by both entry points: blur, exposure, noise, masks, shifts."""

from __future__ import annotations

import numpy as np

from mlesam_ros.data.corruptions.spec import (
    BLUR_LENGTH,
    EXTRINSIC_DEG,
    EXTRINSIC_M,
    LOW_RES,
    OVER_GAIN,
    UNDER_GAIN,
    UNDER_NOISE,
)

# --- primitives on images -------------------------------------------------------------------


def _line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """Normalised straight-line kernel, the usual model of linear motion blur."""
    import cv2

    length = max(3, int(length) | 1)
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    centre = (length / 2 - 0.5, length / 2 - 0.5)
    rotation = cv2.getRotationMatrix2D(centre, angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return kernel / max(float(kernel.sum()), 1e-6)


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur along a random direction; the length grows with severity and image width."""
    import cv2

    length = max(3, round(BLUR_LENGTH[severity - 1] / 100 * image.shape[1]))
    kernel = _line_kernel(length, float(rng.uniform(0.0, 180.0)))
    blurred = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
    return _like(blurred, image)


def exposure(image: np.ndarray, gain: float, full_scale: float) -> np.ndarray:
    """Scale brightness and saturate at ``full_scale``, as a sensor's exposure does."""
    return _like(np.clip(image.astype(np.float32) * gain, 0.0, full_scale), image)


def overexposure(image: np.ndarray, severity: int, rng: np.random.Generator,
                 full_scale: float) -> np.ndarray:  # fmt: skip
    """Glare: a gain plus a bright veil from one side, saturating much of the image."""
    height, width = image.shape[:2]
    gain = OVER_GAIN[severity - 1]
    # A veil brightest at a random point (the sun in the lens), falling off over the image.
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot((yy - cy) / height, (xx - cx) / width)
    veil = full_scale * 0.25 * severity * np.exp(-2.0 * distance)
    if image.ndim == 3:
        veil = veil[:, :, None]
    bright = image.astype(np.float32) * gain + veil
    return _like(np.clip(bright, 0.0, full_scale), image)


def underexposure(image: np.ndarray, severity: int, rng: np.random.Generator,
                  full_scale: float) -> np.ndarray:  # fmt: skip
    """Too little light: darken, then the read noise that dominates a dark frame."""
    dark = image.astype(np.float32) * UNDER_GAIN[severity - 1]
    sigma = UNDER_NOISE[severity - 1] * full_scale / 255.0
    dark += rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return _like(np.clip(dark, 0.0, full_scale), image)


def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator,
                   full_scale: float) -> np.ndarray:  # fmt: skip
    """Add zero-mean noise of ``sigma`` (absolute units) and clip to the sensor's range."""
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return _like(np.clip(noisy, 0.0, full_scale), image)


def low_resolution(image: np.ndarray, severity: int, sparse: bool = False) -> np.ndarray:
    """Down-sample by the severity's factor and back (nearest for sparse images)."""
    import cv2

    height, width = image.shape[:2]
    factor = LOW_RES[severity - 1]
    small = (max(1, width // factor), max(1, height // factor))
    down = cv2.INTER_NEAREST if sparse else cv2.INTER_AREA
    up = cv2.INTER_NEAREST if sparse else cv2.INTER_LINEAR
    return cv2.resize(cv2.resize(image, small, interpolation=down), (width, height),
                      interpolation=up)  # fmt: skip


def blob_mask(shape: tuple[int, int], share: float, rng: np.random.Generator,
              count: int = 1) -> np.ndarray:  # fmt: skip
    """(H, W) bool: ``count`` random ellipses covering about ``share`` of the image.

    The ellipses grow until the share is reached, so the covered area is exact to a few
    pixels whatever the image size.
    """
    import cv2

    height, width = shape
    target = share * height * width
    centres = [(int(rng.uniform(0, width)), int(rng.uniform(0, height))) for _ in range(count)]
    aspects = [float(rng.uniform(0.5, 2.0)) for _ in range(count)]
    angles = [float(rng.uniform(0, 180)) for _ in range(count)]
    mask = np.zeros(shape, np.uint8)
    low, high = 0.0, float(np.hypot(height, width))
    for _ in range(20):  # bisection on the ellipses' size
        radius = (low + high) / 2
        mask[:] = 0
        for centre, aspect, angle in zip(centres, aspects, angles, strict=True):
            axes = (max(1, int(radius * aspect)), max(1, int(radius / aspect)))
            cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, -1)
        if mask.sum() < target:
            low = radius
        else:
            high = radius
    return mask.astype(bool)


def extrinsic_offset(severity: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw a rigid misalignment: rotation (3x3) by the severity's angle, translation (m)."""
    import cv2

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(EXTRINSIC_DEG[severity - 1])
    rotation, _ = cv2.Rodrigues(axis * angle)
    direction = rng.normal(size=3)
    translation = direction / np.linalg.norm(direction) * EXTRINSIC_M[severity - 1]
    return rotation, translation


def shift_image(image: np.ndarray, severity: int, rng: np.random.Generator,
                sparse: bool) -> np.ndarray:  # fmt: skip
    """Misregister an image in the camera it was registered to: rotate and shift it.

    A few degrees of rotation of a sensor against a camera of ~80° field of view move its
    image by ~0.6 % of the width per degree plus a small in-plane roll; translation adds a
    parallax that is small beside it at road distances. Pixels that leave the image are
    lost, new ones are empty (0), as for a really misregistered sensor.
    """
    import cv2

    height, width = image.shape[:2]
    degrees = EXTRINSIC_DEG[severity - 1]
    per_degree = width / 80.0  # pixels per degree for an ~80° horizontal field of view
    direction = rng.uniform(0, 2 * np.pi)
    shift = degrees * per_degree * np.array([np.cos(direction), np.sin(direction)])
    roll = float(rng.choice([-1.0, 1.0])) * degrees / 2
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), roll, 1.0)
    matrix[:, 2] += shift
    interpolation = cv2.INTER_NEAREST if sparse else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (width, height), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip


def _like(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cast float results back to the reference's dtype (rounding for integer images)."""
    if np.issubdtype(reference.dtype, np.integer):
        info = np.iinfo(reference.dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(reference.dtype)
    return values.astype(reference.dtype)
