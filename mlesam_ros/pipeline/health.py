"""Sensor health: notice a sensor that is present but wrong, for ``/diagnostics`` and replay.

The router outweighs a lying sensor inside the model; this module tells the robot's operator
that it happened and why. It looks at what the model is given — each sensor's image on the
model's grid, a few tens of kilobytes — so every check costs microseconds, and it follows
each sensor's router weight over a window. Checks (thresholds in ``HealthConfig``):

- **frozen**: the sensor's image is identical to the previous frames' (a driver repeating
  its last buffer; a live sensor always changes by some noise);
- **flat**: no contrast or nothing valid (a lens cap, a black frame, a covered window, a
  depth camera facing a wall);
- **exposure** (cameras): much of the image saturated, or nearly all of it black;
- **depth**: mostly holes, or a large share of returns right at the lens (something on it);
- **LiDAR**: returns at heights no scene has (scattered returns), the share of the image
  with returns jumping away from its usual value (returns scattered or lost), or LiDAR and
  depth camera disagreeing on the range of the pixels both measure — an extrinsic that moved
  or a range fault in one of them;
- **router**: the model's own weight on the sensor falls to a fraction of its usual value.

A fault must show in ``min_faulty`` of the last ``window`` frames before the sensor is
*suspect*, so a single odd frame raises nothing. A suspect sensor is reported as ``WARN``
with the reason; with ``suspect_as_absent`` it is also withheld from the model, which then
treats it exactly as unplugged.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

# Encodings of the model's images (mlesam_ros.data.encode, mlesam_ros.geometry.lidar_image).
DEPTH_RANGE_M = (0.3, 80.0)
LIDAR_MAX_RANGE_M = 80.0
CAMERAS = frozenset({"rgb", "thermal", "event"})
DISAGREES = "disagreement:"


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of ``SensorHealth``; defaults measured on the synthetic world (see docs).

    ``window``/``min_faulty``: a sensor is suspect when a fault showed in ``min_faulty`` of
    its last ``window`` frames. ``warmup`` frames pass before a sensor's usual LiDAR coverage
    and router weight are known.
    """

    enabled: bool = True
    window: int = 10
    min_faulty: int = 3
    frozen_repeats: int = 2
    flat_std: float = 2.0
    saturated_share: float = 0.4
    dark_mean: float = 8.0
    dark_share: float = 0.5
    depth_min_valid: float = 0.25
    depth_near_m: float = 0.8
    depth_near_share: float = 0.2
    coverage_change: float = 1.5
    outlier_share: float = 0.05
    outlier_change: float = 4.0
    noise_change: float = 2.5
    disagreement_share: float = 0.08
    disagreement_change: float = 3.0
    gross_disagreement: float = 0.3
    router_drop: float = 0.5
    warmup: int = 10
    suspect_as_absent: bool = False

    def __post_init__(self) -> None:
        """Reject thresholds that cannot work, naming the field."""
        if not 1 <= self.min_faulty <= self.window:
            raise ValueError(
                f"parameter health.min_faulty: must be in 1..health.window ({self.window}), "
                f"got {self.min_faulty}"
            )
        if self.frozen_repeats < 1 or self.warmup < 0:
            raise ValueError("health.frozen_repeats must be >= 1 and health.warmup >= 0")


@dataclass
class SensorState:
    """What ``SensorHealth`` knows of one sensor (a copy is handed to diagnostics)."""

    suspect: bool = False
    reason: str = ""
    router_weight: float = float("nan")
    usual_router_weight: float = float("nan")
    suspect_frames: int = 0
    first_suspect_frame: int | None = None
    faults: Counter = field(default_factory=Counter)


class SensorHealth:
    """Per-sensor checks over a sliding window; ``inspect`` once per frame, then ``routing``."""

    def __init__(self, modalities: tuple[str, ...] | list[str],
                 config: HealthConfig | None = None) -> None:  # fmt: skip
        self.modalities = tuple(modalities)
        self.config = config or HealthConfig()
        self.frame = 0
        self._previous: dict[str, np.ndarray] = {}
        self._repeats: dict[str, int] = dict.fromkeys(self.modalities, 0)
        self._history: dict[str, deque] = {
            m: deque(maxlen=self.config.window) for m in self.modalities
        }
        self._coverage: dict[str, list[float]] = {m: [] for m in self.modalities}
        self._roughness: dict[str, list[float]] = {m: [] for m in self.modalities}
        self._disagreements: list[float] = []
        self._outliers: list[float] = []
        self._last_outliers = 0.0
        self._weights: dict[str, list[float]] = {m: [] for m in self.modalities}
        self._recent_weights: dict[str, deque] = {
            m: deque(maxlen=self.config.window) for m in self.modalities
        }
        self.states: dict[str, SensorState] = {m: SensorState() for m in self.modalities}

    # -- per frame --------------------------------------------------------------------------

    def inspect(self, images: dict[str, np.ndarray]) -> dict[str, str]:
        """Check this frame's model-grid images ``{modality: (H, W, 3) uint8}``.

        Returns ``{modality: reason}`` for the sensors that are suspect *now* (after this
        frame), which the caller may withhold from the model (``suspect_as_absent``).
        Sensors missing from ``images`` are absent this frame: no fault, no history.
        """
        if not self.config.enabled:
            return {}
        self.frame += 1
        faults: dict[str, str] = {}
        for modality in self.modalities:
            image = images.get(modality)
            if image is None:
                self._previous.pop(modality, None)
                self._repeats[modality] = 0
                continue
            fault = self._frozen(modality, image) or self._content(modality, image)
            if fault:
                faults[modality] = fault
        if "lidar" in images and "depth" in images and "lidar" not in faults and (
            "depth" not in faults
        ):
            share = self._disagreement(images["lidar"], images["depth"])
            if share is not None and not self._unusual_disagreement(share):
                share = None
            if share is not None:
                # Which of the two is wrong cannot be told from the pair: both are reported,
                # neither is withheld from the model for it (the router decides).
                for modality, other in (("lidar", "depth camera"), ("depth", "LiDAR")):
                    faults[modality] = (
                        f"{DISAGREES} differs from the {other} on {100 * share:.0f} % of the "
                        "pixels both measure (one of the two moved or measures wrong)"
                    )
        for modality in self.modalities:
            if modality in images:
                self._remember(modality, faults.get(modality))
        return self.suspects()

    def routing(self, weights: np.ndarray | None, present: dict[str, bool]) -> None:
        """Follow the model's weight per sensor: (levels, M) (or (M,)) for this frame.

        Only frames with two or more sensors fused count (alone, a sensor's weight is 1).
        A sensor whose weight over the window falls below ``router_drop`` times its usual
        weight gets a ``router`` fault for that frame.
        """
        if weights is None or not self.config.enabled:
            return
        values = np.asarray(weights, dtype=np.float64)
        per_sensor = values.mean(axis=0) if values.ndim == 2 else values
        fused = [m for m in self.modalities if present.get(m)]
        if len(fused) < 2 or per_sensor.shape[-1] != len(self.modalities):
            return
        for slot, modality in enumerate(self.modalities):
            if not present.get(modality):
                continue
            weight = float(per_sensor[slot]) * len(fused)  # 1.0 = a fair share
            state = self.states[modality]
            state.router_weight = float(per_sensor[slot])
            recent = self._recent_weights[modality]
            recent.append(weight)
            usual = self._weights[modality]
            if len(usual) >= self.config.warmup:
                typical = float(np.median(usual))
                state.usual_router_weight = typical / len(fused)
                latest = list(recent)[-self.config.min_faulty:]
                if np.median(latest) < self.config.router_drop * typical:
                    text = (f"router: the model outweighs it (weight {state.router_weight:.2f}, "
                            f"usually {state.usual_router_weight:.2f})")  # fmt: skip
                    self._add_fault(modality, text)
                    continue
            if not state.suspect:
                usual.append(weight)
                del usual[: -200]  # the usual value follows slow changes (day to night)

    def suspects(self) -> dict[str, str]:
        """``{modality: reason}`` of the sensors that are suspect now."""
        return {m: s.reason for m, s in self.states.items() if s.suspect}

    def withheld(self) -> set[str]:
        """Sensors to treat as absent (``suspect_as_absent``): suspect of a fault of their own.

        A LiDAR/depth disagreement alone blames neither sensor, so it withholds neither.
        """
        if not self.config.suspect_as_absent:
            return set()
        return {m for m, reason in self.suspects().items() if not reason.startswith(DISAGREES)}

    # -- checks ---------------------------------------------------------------------------

    def _frozen(self, modality: str, image: np.ndarray) -> str | None:
        previous = self._previous.get(modality)
        same = previous is not None and previous.shape == image.shape and (
            np.array_equal(previous, image)
        )
        self._repeats[modality] = self._repeats[modality] + 1 if same else 0
        self._previous[modality] = image.copy()
        if same and image.any() and self._repeats[modality] >= self.config.frozen_repeats:
            return f"frozen: the last {self._repeats[modality] + 1} images are identical"
        return None

    def _content(self, modality: str, image: np.ndarray) -> str | None:
        config = self.config
        valid = image.any(axis=2)
        share = float(valid.mean())
        if modality in CAMERAS:
            # Thermal is registered into the RGB camera: outside its view the image is 0.
            pixels = image[valid] if modality != "rgb" else image.reshape(-1, 3)
            if pixels.size == 0 or (modality == "rgb" and not image.any()):
                return "black: nothing but zeros"
            spread = float(pixels.std(axis=0).max())  # a uniform colour is flat too
            if spread < config.flat_std:
                return f"flat: no contrast (std {spread:.1f} of 255)"
            brightest = pixels.max(axis=1)
            saturated = float((brightest >= 250).mean())
            if saturated > config.saturated_share:
                return f"over-exposed: {100 * saturated:.0f} % of pixels saturated"
            if modality == "rgb":
                dark = float((brightest <= 8).mean())
                if float(pixels.mean()) < config.dark_mean and dark > config.dark_share:
                    return f"under-exposed: {100 * dark:.0f} % of pixels black"
            return None
        if share == 0.0:
            return "empty: no valid pixel"
        if modality == "depth":
            codes = image[:, :, 1][valid].astype(np.float32)  # the log-depth channel
            if float(codes.std()) < config.flat_std:
                metres = _depth_from_log_code(float(np.median(codes)))
                return f"flat: every pixel at the same depth ({metres:.1f} m: a wall or a cover?)"
            if share < config.depth_min_valid:
                return f"holes: only {100 * share:.0f} % of pixels have a depth"
            usual = self._coverage[modality]
            if len(usual) >= config.warmup:
                typical = float(np.median(usual))
                if share < typical / config.coverage_change:
                    return (f"holes: {100 * share:.0f} % of pixels have a depth, usually "
                            f"{100 * typical:.0f} %")  # fmt: skip
                rough = _roughness(image[:, :, 1], valid)
                usual_rough = float(np.median(self._roughness[modality]))
                if rough > config.noise_change * usual_rough:
                    return (f"noisy: neighbouring depths differ {rough / usual_rough:.1f}x "
                            "more than usual")  # fmt: skip
            near = float((_depth_from_log_code(codes) < config.depth_near_m).mean())
            if near > config.depth_near_share:
                return (f"near: {100 * near:.0f} % of depths closer than "
                        f"{config.depth_near_m} m (something on the lens?)")  # fmt: skip
            return None
        if modality == "lidar":
            depth_codes = image[:, :, 0][valid].astype(np.float32)
            if float(depth_codes.std()) < config.flat_std:
                return "flat: every return at the same range (window covered?)"
            heights = image[:, :, 2][valid]
            # Scattered returns land at heights a real scene does not have: beyond the
            # encoding's height range (code 1 or 255), in a share that jumps.
            outliers = float(((heights <= 2) | (heights >= 254)).mean())
            self._last_outliers = outliers
            usual_outliers = self._outliers
            if len(usual_outliers) >= config.warmup:
                bar = max(config.outlier_share,
                          config.outlier_change * float(np.median(usual_outliers)))  # fmt: skip
            else:
                bar = 3 * config.outlier_share
            if outliers > bar:
                return (f"outliers: {100 * outliers:.0f} % of returns at implausible heights "
                        "(scattered returns?)")  # fmt: skip
            usual = self._coverage[modality]
            if len(usual) >= config.warmup:
                typical = float(np.median(usual))
                ratio = share / max(typical, 1e-6)
                change = config.coverage_change
                if ratio > change or ratio < 1 / change:
                    return (f"returns: they cover {100 * share:.0f} % of the image, usually "
                            f"{100 * typical:.0f} % (scattered or lost returns)")  # fmt: skip
            return None
        return None

    def _unusual_disagreement(self, share: float) -> bool:
        """Whether ``share`` is well above this rig's usual LiDAR/depth disagreement.

        Sparse LiDARs, low resolutions and a depth camera mounted apart disagree on some
        pixels even when healthy, so the usual share (healthy frames) sets the bar; until it
        is known only a gross disagreement counts.
        """
        usual = self._disagreements
        healthy = not (self.states["lidar"].suspect or self.states["depth"].suspect)
        if len(usual) < self.config.warmup:
            unusual = share > self.config.gross_disagreement
        else:
            bar = self.config.disagreement_change * float(np.median(usual))
            unusual = share > max(self.config.disagreement_share, bar)
        if healthy and not unusual:
            usual.append(share)
            del usual[:-200]
        return unusual

    def _disagreement(self, lidar: np.ndarray, depth: np.ndarray) -> float | None:
        """Return the share of overlapping pixels where LiDAR and depth disagree by > 25 %.

        Only beyond 3 m (the encodings' resolution); None when they overlap too little.
        """
        lidar_valid = lidar.any(axis=2)
        depth_valid = depth.any(axis=2)
        depth_m = _depth_from_log_code(depth[:, :, 1].astype(np.float32))
        lidar_m = (lidar[:, :, 0].astype(np.float32) - 1.0) / 254.0 * LIDAR_MAX_RANGE_M
        both = lidar_valid & depth_valid & (depth_m > 3.0)
        if both.sum() < 50:
            return None
        relative = np.abs(lidar_m[both] - depth_m[both]) / depth_m[both]
        return float((relative > 0.25).mean())

    # -- bookkeeping ---------------------------------------------------------------------------

    def _remember(self, modality: str, fault: str | None) -> None:
        history = self._history[modality]
        history.append(fault)
        if fault is None and modality in ("lidar", "depth") and not self.states[modality].suspect:
            # Usual coverage (and depth's usual roughness), from healthy frames only.
            image = self._previous[modality]
            valid = image.any(axis=2)
            coverage = self._coverage[modality]
            coverage.append(float(valid.mean()))
            del coverage[:-200]
            if modality == "lidar":
                self._outliers.append(self._last_outliers)
                del self._outliers[:-200]
            if modality == "depth":
                roughness = self._roughness[modality]
                roughness.append(max(_roughness(image[:, :, 1], valid), 1e-3))
                del roughness[:-200]
        self._update(modality)

    def _add_fault(self, modality: str, fault: str) -> None:
        history = self._history[modality]
        if history and history[-1] is None:
            history[-1] = fault
        else:
            history.append(fault)
        self._update(modality)

    def _update(self, modality: str) -> None:
        state = self.states[modality]
        faults = [f for f in self._history[modality] if f]
        was = state.suspect
        state.suspect = len(faults) >= self.config.min_faulty
        if state.suspect:
            kinds = Counter(f.split(":")[0] for f in faults)
            kind = kinds.most_common(1)[0][0]
            state.reason = next(f for f in reversed(faults) if f.startswith(kind))
            state.faults[kind] += 0 if was else 1
            if not was:
                state.first_suspect_frame = self.frame
            state.suspect_frames += 1
        else:
            state.reason = ""


def _roughness(channel: np.ndarray, valid: np.ndarray) -> float:
    """Mean absolute step between horizontally neighbouring valid pixels (code units)."""
    both = valid[:, 1:] & valid[:, :-1]
    if not both.any():
        return 0.0
    steps = np.abs(np.diff(channel.astype(np.float32), axis=1))
    return float(steps[both].mean())


def _depth_from_log_code(code: np.ndarray | float) -> np.ndarray | float:
    """Metres from the log channel of ``encode_depth`` (code 1..255)."""
    near, far = DEPTH_RANGE_M
    return near * np.exp((np.asarray(code) - 1.0) / 254.0 * np.log(far / near))
