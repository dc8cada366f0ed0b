"""Sensor corruptions as data: what a present-but-wrong sensor delivers, with a severity.

A sensor that vanishes is easy (the model is told it is absent). A sensor that *lies* — a
camera blinded by glare, a driver repeating its last image, a LiDAR shaken off its extrinsic —
still arrives as a valid message. This module makes such messages on purpose, so training can
teach the router to outweigh them, evaluation can score them (``mlesam eval --corrupt``) and
``mlesam synth --corrupt`` can record a drive that the node must flag.

Kinds (``KINDS``; the DELIVER benchmark's five sensor-failure cases first, then what robots
meet) and the modalities each applies to (``APPLIES``):

- ``motion_blur``, ``overexposure``, ``underexposure`` (cameras), ``jitter`` (LiDAR points
  shaken), ``low_resolution`` (event in DELIVER; any image here): DELIVER's cases.
- ``frozen``: the image of an earlier frame, repeated with a new stamp.
- ``constant``: a uniform image that still looks valid (a lens cap, a depth camera facing a
  close wall, a LiDAR whose window is covered).
- ``black``: all zeros (for depth: no returns anywhere).
- ``noise``: heavy noise (LiDAR: a share of the returns scattered at random ranges).
- ``occlusion``: part of the view covered (mud or a wiper on the lens, a blocked sector).
- ``dropout``: holes (depth pixels or LiDAR returns lost in patches).
- ``extrinsic``: the sensor moved against its calibration by a few degrees and centimetres.

Severity runs 1 (mild) .. 5 (severe), as in DELIVER and ImageNet-C; ``SEVERITY_DEFAULT`` is 3.

Two entry points share the same primitives:

- ``corrupt_sensor`` works on a sensor's own data (RGB uint8, depth in metres, thermal counts,
  LiDAR points), before encoding: the synthetic world and ``mlesam eval`` on synthetic frames
  use it, so the node's encoding sees exactly what a robot would give it.
- ``corrupt_encoded`` works on the model's uint8 modality image (as DELIVER/MUSES ship them,
  and as training caches them): training samples corruptions this way per sample and modality
  (a few microseconds each, no re-render), and evaluation on dataset folders uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mlesam_ros.text import quote

KINDS: tuple[str, ...] = (
    "motion_blur", "overexposure", "underexposure", "jitter", "low_resolution",
    "frozen", "constant", "black", "noise", "occlusion", "dropout", "extrinsic",
)  # fmt: skip

_CAMERA = frozenset({"rgb", "thermal", "event"})
APPLIES: dict[str, frozenset[str]] = {
    "motion_blur": _CAMERA,
    "overexposure": frozenset({"rgb", "thermal"}),
    "underexposure": frozenset({"rgb", "thermal"}),
    "jitter": frozenset({"lidar"}),
    "low_resolution": frozenset({"rgb", "thermal", "event", "depth"}),
    "frozen": frozenset({"rgb", "depth", "thermal", "lidar", "event"}),
    "constant": frozenset({"rgb", "depth", "thermal", "lidar"}),
    "black": frozenset({"rgb", "depth", "thermal", "event"}),
    "noise": frozenset({"rgb", "depth", "thermal", "lidar", "event"}),
    "occlusion": frozenset({"rgb", "depth", "thermal", "lidar"}),
    "dropout": frozenset({"depth", "lidar"}),
    "extrinsic": frozenset({"depth", "thermal", "lidar"}),
}
"""Which modalities each kind is defined for (a blurred LiDAR or a shifted RGB means nothing:
RGB is the reference every other sensor is registered to)."""

SEVERITY_DEFAULT = 3
SEVERITIES = (1, 2, 3, 4, 5)

# Per-kind parameters indexed by severity - 1. Chosen so severity 1 is still usable and 5 is
# close to worthless, the way DELIVER grades its cases.
_BLUR_LENGTH = (3, 5, 9, 13, 19)  # motion blur kernel length as % of the image width / 4
_OVER_GAIN = (1.6, 2.2, 3.0, 4.0, 6.0)  # glare: brightness gain before saturation
_UNDER_GAIN = (0.45, 0.3, 0.18, 0.1, 0.05)  # darkening, then sensor noise on the dark image
_UNDER_NOISE = (2.0, 3.0, 4.0, 5.0, 6.0)  # 0..255 units
_NOISE_SIGMA = (0.08, 0.15, 0.25, 0.35, 0.5)  # of the full scale (cameras, depth relative)
_NOISE_SHARE = (0.1, 0.2, 0.35, 0.5, 0.7)  # LiDAR: share of returns scattered
_JITTER_M = (0.05, 0.1, 0.2, 0.3, 0.5)  # LiDAR jitter, std of each point's shake (m)
_LOW_RES = (2, 3, 4, 6, 8)  # down-sampling factor
FROZEN_LAG = (1, 2, 3, 4, 6)  # frames the repeated image is behind
_OCCLUDED = (0.1, 0.2, 0.3, 0.4, 0.55)  # share of the view covered
_DROPPED = (0.1, 0.2, 0.35, 0.5, 0.7)  # share of depth pixels / LiDAR returns lost
_EXTRINSIC_DEG = (1.0, 2.0, 3.0, 5.0, 8.0)  # rotation away from the calibration
_EXTRINSIC_M = (0.02, 0.04, 0.06, 0.1, 0.15)  # translation away from the calibration
_WALL_M = (3.0, 2.5, 2.0, 1.5, 1.0)  # constant depth: a close wall / a covered window


@dataclass(frozen=True)
class Corruption:
    """One modality, one kind, one severity: ``lidar:noise:4`` on the command line."""

    modality: str
    kind: str
    severity: int = SEVERITY_DEFAULT

    def __post_init__(self) -> None:
        """Reject combinations that mean nothing, naming the valid ones."""
        if self.kind not in KINDS:
            raise ValueError(
                f"corruption kind: unknown {quote(self.kind)}; choose from {', '.join(KINDS)}"
            )
        if self.modality not in APPLIES[self.kind]:
            raise ValueError(
                f"corruption {quote(self.modality)}:{self.kind}: {self.kind} applies to "
                f"{', '.join(sorted(APPLIES[self.kind]))}"
            )
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"corruption severity: {self.severity!r} must be one of 1..5 "
                f"(in {self.modality}:{self.kind}:{self.severity})"
            )

    @property
    def name(self) -> str:
        """``modality:kind:severity``, the form ``parse_corruption`` reads."""
        return f"{self.modality}:{self.kind}:{self.severity}"

    @classmethod
    def parse(cls, text: str) -> Corruption:
        """Read ``MODALITY:KIND[:SEVERITY]``."""
        parts = [part.strip() for part in str(text).split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(
                f"--corrupt: expected MODALITY:KIND[:SEVERITY], e.g. lidar:noise:3, got "
                f"{quote(text)}"
            )
        severity = SEVERITY_DEFAULT
        if len(parts) == 3:
            try:
                severity = int(parts[2])
            except ValueError:
                raise ValueError(
                    f"--corrupt: severity {quote(parts[2])} is not an integer 1..5"
                ) from None
        return cls(parts[0], parts[1], severity)


@dataclass(frozen=True)
class ScheduledCorruption:
    """A corruption that starts at frame ``start`` of a recording (and ends before ``stop``).

    ``mlesam synth --corrupt lidar:noise:3@20`` turns the LiDAR to noise from frame 20 on;
    ``@20-40`` limits it to frames 20..39. A scheduled ``frozen`` sensor repeats the data of
    the frame before ``start`` for as long as it lasts, as a stuck driver does.
    """

    corruption: Corruption
    start: int = 0
    stop: int | None = None

    def active(self, index: int) -> bool:
        """Whether frame ``index`` of the recording is corrupted."""
        return index >= self.start and (self.stop is None or index < self.stop)

    @classmethod
    def parse(cls, text: str) -> ScheduledCorruption:
        """Read ``MODALITY:KIND[:SEVERITY][@START[-STOP]]``."""
        spec, _, frames = str(text).partition("@")
        corruption = Corruption.parse(spec)
        if not frames:
            return cls(corruption)
        first, _, last = frames.partition("-")
        try:
            start = int(first)
            stop = int(last) if last else None
        except ValueError:
            raise ValueError(
                f"--corrupt: frames {quote(frames)} must be START or START-STOP, e.g. @20-40"
            ) from None
        if start < 0 or (stop is not None and stop <= start):
            raise ValueError(f"--corrupt: frames @{frames} must satisfy 0 <= START < STOP")
        return cls(corruption, start, stop)


def kinds_for(modality: str) -> tuple[str, ...]:
    """Return the kinds defined for ``modality``, in ``KINDS`` order."""
    return tuple(kind for kind in KINDS if modality in APPLIES[kind])


def parse_corruptions(items: Iterable[str]) -> list[Corruption]:
    """Parse repeated ``--corrupt`` values; one corruption per modality."""
    parsed = [Corruption.parse(item) for item in items]
    seen: set[str] = set()
    for corruption in parsed:
        if corruption.modality in seen:
            raise ValueError(
                f"--corrupt: {corruption.modality} is given twice; one corruption per sensor"
            )
        seen.add(corruption.modality)
    return parsed


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

    length = max(3, round(_BLUR_LENGTH[severity - 1] / 100 * image.shape[1]))
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
    gain = _OVER_GAIN[severity - 1]
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
    dark = image.astype(np.float32) * _UNDER_GAIN[severity - 1]
    sigma = _UNDER_NOISE[severity - 1] * full_scale / 255.0
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
    factor = _LOW_RES[severity - 1]
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
    angle = np.deg2rad(_EXTRINSIC_DEG[severity - 1])
    rotation, _ = cv2.Rodrigues(axis * angle)
    direction = rng.normal(size=3)
    translation = direction / np.linalg.norm(direction) * _EXTRINSIC_M[severity - 1]
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
    degrees = _EXTRINSIC_DEG[severity - 1]
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

            wall = np.full(image.shape[:2], _WALL_M[severity - 1], np.float32)
            return encode_depth(wall)
        if modality == "lidar":
            return _lidar_wall_encoded(image, severity)
        value = rng.integers(40, 216, size=3 if modality == "rgb" else 1)
        return np.broadcast_to(value.astype(np.uint8), image.shape).copy()
    if kind == "noise":
        sigma = _NOISE_SIGMA[severity - 1] * 255.0
        if sparse:
            return _scatter_encoded(image, severity, rng)
        noisy = gaussian_noise(image, sigma, rng, 255.0)
        if modality == "depth":
            noisy = np.maximum(noisy, 1)  # stays a measurement (codes 1..255)
            noisy[~valid] = 0
        return noisy
    if kind == "occlusion":
        covered = blob_mask(image.shape[:2], _OCCLUDED[severity - 1], rng)
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
        lost = blob_mask(image.shape[:2], _DROPPED[severity - 1], rng, count=6)
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
    moved = rng.random(count) < _NOISE_SHARE[severity - 1]
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
    spread = 0.5 + 2.0 * _JITTER_M[severity - 1] / _JITTER_M[-1] * severity / 2
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
    result[valid, 0] = 1 + round(254 * _WALL_M[severity - 1] / 80.0)
    result[valid, 1] = 31
    return result


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
        return gaussian_noise(image, _NOISE_SIGMA[severity - 1] * full_scale, rng, full_scale)
    if kind == "occlusion":
        covered = blob_mask(image.shape[:2], _OCCLUDED[severity - 1], rng)
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
            changed = gaussian_noise(shifted, _NOISE_SIGMA[severity - 1] * 255.0, rng, 1e9)
        elif kind == "occlusion":
            covered = blob_mask(values.shape[:2], _OCCLUDED[severity - 1], rng)
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
        return np.full_like(depth, _WALL_M[severity - 1])
    if kind == "noise":
        # Stereo-like depth noise grows with range; here it is far beyond the sensor's spec.
        noisy = depth * (1.0 + rng.normal(0.0, _NOISE_SIGMA[severity - 1] * 2, depth.shape))
        return np.where(valid, np.clip(noisy, 0.05, DEPTH_MAX_M), 0.0).astype(np.float32)
    if kind == "occlusion":
        covered = blob_mask(depth.shape, _OCCLUDED[severity - 1], rng)
        return np.where(covered, np.float32(0.3), depth).astype(np.float32)
    if kind == "dropout":
        lost = blob_mask(depth.shape, _DROPPED[severity - 1], rng, count=6)
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
        xyz += rng.normal(0.0, _JITTER_M[severity - 1], xyz.shape)
    elif kind == "noise":
        moved = rng.random(count) < _NOISE_SHARE[severity - 1]
        directions = rng.normal(size=(int(moved.sum()), 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        ranges = rng.uniform(1.0, 60.0, (len(directions), 1))
        xyz[moved] = directions * ranges
        if "intensity" in result.dtype.names:
            result["intensity"][moved] = rng.uniform(0, 255, int(moved.sum()))
    elif kind == "constant":
        norms = np.linalg.norm(xyz, axis=1, keepdims=True)
        xyz = xyz / np.maximum(norms, 1e-6) * _WALL_M[severity - 1]
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
        quiet = rng.random(sectors) < _DROPPED[severity - 1]
        return result[~quiet[sector]]
    elif kind == "occlusion":
        azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
        width = _OCCLUDED[severity - 1] * np.pi  # share of the front half-circle
        centre = rng.uniform(-np.pi / 4, np.pi / 4)
        blocked = np.abs(np.angle(np.exp(1j * (azimuth - centre)))) < width / 2
        return result[~blocked]
    else:
        raise ValueError(f"corrupt_sensor: {kind} does not apply to LiDAR points")
    result["x"], result["y"], result["z"] = xyz.T.astype(result["x"].dtype)
    return result


def sample_corruption(
    modality: str,
    rng: np.random.Generator,
    kinds: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
) -> Corruption | None:
    """Draw a corruption for ``modality`` among ``kinds`` (all that apply by default)."""
    allowed = [k for k in (kinds or KINDS) if modality in APPLIES[k]]
    if not allowed:
        return None
    kind = allowed[int(rng.integers(len(allowed)))]
    return Corruption(modality, kind, int(severities[int(rng.integers(len(severities)))]))
