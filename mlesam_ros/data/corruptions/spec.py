"""What a corruption is: kinds, the sensors each applies to, severities and their parameters.

Parsed from ``MODALITY:KIND[:SEVERITY]`` (and ``@START[-STOP]`` for a drive), drawn at random
for training. The package docstring says what each kind means.
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

CAMERA = frozenset({"rgb", "thermal", "event"})
APPLIES: dict[str, frozenset[str]] = {
    "motion_blur": CAMERA,
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
BLUR_LENGTH = (3, 5, 9, 13, 19)  # motion blur kernel length as % of the image width / 4
OVER_GAIN = (1.6, 2.2, 3.0, 4.0, 6.0)  # glare: brightness gain before saturation
UNDER_GAIN = (0.45, 0.3, 0.18, 0.1, 0.05)  # darkening, then sensor noise on the dark image
UNDER_NOISE = (2.0, 3.0, 4.0, 5.0, 6.0)  # 0..255 units
NOISE_SIGMA = (0.08, 0.15, 0.25, 0.35, 0.5)  # of the full scale (cameras, depth relative)
NOISE_SHARE = (0.1, 0.2, 0.35, 0.5, 0.7)  # LiDAR: share of returns scattered
JITTER_M = (0.05, 0.1, 0.2, 0.3, 0.5)  # LiDAR jitter, std of each point's shake (m)
LOW_RES = (2, 3, 4, 6, 8)  # down-sampling factor
FROZEN_LAG = (1, 2, 3, 4, 6)  # frames the repeated image is behind
OCCLUDED = (0.1, 0.2, 0.3, 0.4, 0.55)  # share of the view covered
DROPPED = (0.1, 0.2, 0.35, 0.5, 0.7)  # share of depth pixels / LiDAR returns lost
EXTRINSIC_DEG = (1.0, 2.0, 3.0, 5.0, 8.0)  # rotation away from the calibration
EXTRINSIC_M = (0.02, 0.04, 0.06, 0.1, 0.15)  # translation away from the calibration
WALL_M = (3.0, 2.5, 2.0, 1.5, 1.0)  # constant depth: a close wall / a covered window


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
