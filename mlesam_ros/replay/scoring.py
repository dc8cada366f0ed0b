"""What a replay measured: frames, fused modalities, latency, issues and mIoU against truth.

Ground truth comes from :data:`~mlesam_ros.data.topics.GT_LABELS_TOPIC` in the bag; a
prediction and its truth are paired by stamp, whichever arrives first waits for the other.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.data.resample import nearest_resize
from mlesam_ros.data.topics import GT_LABELS_TOPIC
from mlesam_ros.msgs import header_stamp_ns, image_to_numpy
from mlesam_ros.pipeline.timing import STAGES
from mlesam_ros.pipeline.timing import percentiles as percentiles_of
from mlesam_ros.train.metrics import ConfusionMatrix


@dataclass
class ReplayResult:
    """What a replay measured; ``summary()`` is the JSON form."""

    bag: Path
    out: Path
    rgb_messages: int = 0
    frames: int = 0
    presence: collections.Counter = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)
    processing_ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)  # pipeline.timing.STAGES
    confusion: dict[str, Any] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    issues: collections.Counter = field(default_factory=collections.Counter)
    dropped: dict[str, int] = field(default_factory=dict)
    backend: str = ""
    model: str = ""
    notes: list[str] = field(default_factory=list)
    # Sensor health per modality: frames suspect, the first suspect frame, the reasons seen.
    suspects: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Several cameras (cameras.names): each camera's RGB frames not labelled, by reason.
    dropped_by_camera: dict[str, dict[str, int]] = field(default_factory=dict)

    def note_suspects(self, frame: int, suspects: Mapping[str, str]) -> None:
        """Count frame ``frame`` (1-based) for each sensor health marked suspect in it."""
        for modality, reason in suspects.items():
            entry = self.suspects.setdefault(
                modality, {"frames": 0, "first_frame": frame, "reasons": collections.Counter()}
            )
            entry["frames"] += 1
            entry["reasons"][reason.split(":")[0]] += 1

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (JSON-able)."""
        latency = np.asarray(self.latencies_ms, dtype=np.float64)
        processing = np.asarray(self.processing_ms, dtype=np.float64)

        def percentiles(values: np.ndarray) -> dict[str, float | None]:
            if not values.size:
                return {"p50": None, "p90": None, "p99": None, "mean": None}
            p50, p90, p99 = np.percentile(values, [50, 90, 99])
            return {
                "p50": round(float(p50), 2),
                "p90": round(float(p90), 2),
                "p99": round(float(p99), 2),
                "mean": round(float(values.mean()), 2),
            }

        miou = {group: matrix.summary()["miou"] for group, matrix in self.confusion.items()}
        return {
            "bag": str(self.bag),
            "out": str(self.out),
            "backend": self.backend,
            "model": self.model,
            "rgb_messages": self.rgb_messages,
            "frames": self.frames,
            "fused_modalities": dict(self.presence.most_common()),
            "latency_ms": percentiles(latency),
            "processing_ms": percentiles(processing),
            "stages_ms": {
                stage: dict(zip(("p50", "p90"), (round(v, 2) for v in percentiles_of(
                    self.stages_ms[stage])), strict=True))
                for stage in STAGES if self.stages_ms.get(stage)
            },
            "miou": miou,
            "published": self.published,
            "issues": dict(self.issues.most_common()),
            "dropped_frames": dict(sorted(self.dropped.items())),
            **({"dropped_by_camera": self.dropped_by_camera} if self.dropped_by_camera else {}),
            "sensor_health": {
                modality: {"suspect_frames": entry["frames"], "first_frame": entry["first_frame"],
                           "reasons": dict(entry["reasons"].most_common())}
                for modality, entry in sorted(self.suspects.items())
            },
            "notes": self.notes,
        }  # fmt: skip

    def text(self) -> str:
        """Human-readable summary for the terminal."""
        data = self.summary()
        lines = [
            f"replayed {data['bag']} -> {data['out']} ({data['backend']}, {data['model']})",
            f"frames: {data['frames']} labelled of {data['rgb_messages']} RGB messages",
        ]
        lines.append("fused modalities:")
        lines += [f"  {combo:<32} {count:>5}" for combo, count in data["fused_modalities"].items()]
        for name in ("latency_ms", "processing_ms"):
            values = data[name]
            if values["p50"] is not None:
                lines.append(
                    f"{name.replace('_ms', '')} ms: p50 {values['p50']}, p90 "
                    f"{values['p90']}, p99 {values['p99']}, mean {values['mean']}"
                )
        if data["stages_ms"]:
            lines.append("stages ms (p50/p90): " + ", ".join(
                f"{stage} {v['p50']}/{v['p90']}" for stage, v in data["stages_ms"].items()))
        if data["miou"]:
            per_camera = any(group.startswith("camera:") for group in data["miou"])
            truth = "/mlesam/<camera>/gt_labels" if per_camera else GT_LABELS_TOPIC
            lines.append("mIoU (ground truth on " + truth + "):")
            lines += [
                f"  {group:<32} {'n/a' if v is None else f'{100 * v:.1f}%'}"
                for group, v in data["miou"].items()
            ]
        if data["dropped_frames"]:
            lines.append(
                "dropped RGB frames (reason: count): "
                + ", ".join(f"{key}: {count}" for key, count in data["dropped_frames"].items())
            )
        if data["sensor_health"]:
            lines.append("sensor health (suspect frames, from frame; why):")
            lines += [
                f"  {modality:<8} {entry['suspect_frames']:>5} from frame {entry['first_frame']}; "
                + ", ".join(entry["reasons"])
                for modality, entry in data["sensor_health"].items()
            ]
        if data["issues"]:
            lines.append(
                "issues (sensor: count): "
                + ", ".join(f"{key}: {count}" for key, count in data["issues"].items())
            )
        lines += [f"note: {note}" for note in data["notes"]]
        return "\n".join(lines)


def combo_name(present: Mapping[str, bool]) -> str:
    """``rgb+depth+lidar`` style name of the fused modalities (``none`` if nothing)."""
    return "+".join(name for name, fused in present.items() if fused) or "none"


class Scorer:
    """Pairs published labels with ground truth by stamp and accumulates confusion matrices."""

    def __init__(
        self, result: ReplayResult, num_classes: int, groups: Callable[[Any], Iterable[str]] | None
    ) -> None:
        self.result, self.num_classes, self.groups = result, num_classes, groups
        self.predictions: dict[int, tuple[np.ndarray, list[str]]] = {}
        self.truths: dict[int, np.ndarray] = {}
        self.disabled = False

    def prediction(self, stamp_ns: int, labels: np.ndarray, groups: list[str]) -> None:
        """Score published ``labels`` now if their truth came first, else keep them."""
        if stamp_ns in self.truths:
            self._score(labels, self.truths.pop(stamp_ns), groups)
        else:
            self.predictions[stamp_ns] = (labels, groups)

    def truth(self, message: Any) -> None:
        """Score a ground-truth image against its prediction if that came first, else keep it."""
        stamp = header_stamp_ns(message)
        truth = np.array(image_to_numpy(message, GT_LABELS_TOPIC))
        if stamp in self.predictions:
            labels, groups = self.predictions.pop(stamp)
            self._score(labels, truth, groups)
        else:
            self.truths[stamp] = truth

    def _score(self, labels: np.ndarray, truth: np.ndarray, groups: list[str]) -> None:
        if self.disabled:
            return
        if truth.shape != labels.shape:
            truth = nearest_resize(truth, labels.shape)
        for group in ("all", *groups):
            matrix = self.result.confusion.get(group)
            if matrix is None:
                matrix = self.result.confusion[group] = ConfusionMatrix(self.num_classes)
            try:
                matrix.update(labels, truth)
            except ValueError as error:
                self.disabled = True
                self.result.confusion.clear()
                self.result.notes.append(
                    f"mIoU skipped: ground truth does not fit the model's "
                    f"{self.num_classes} classes ({error})"
                )
                return
