"""Evaluation with the missing-modality protocol: every non-empty sensor subset, per condition.

MLE-SAM's claim is robustness to missing sensors, so one evaluation scores the same frames
once per non-empty subset of the model's modalities (2^M - 1 presence masks, rows of the
paper's table) and splits each score by condition (sun, night, fog, ...). A modality that
is left out of a subset is marked absent *and* zeroed; a sensor that is already missing in a
sample (a failure in the data) stays absent in every subset.

``evaluate`` takes any ``predict(images, present) -> labels`` callable, so the same protocol
scores a torch model (``torch_predictor``), an exported engine, or a test's oracle. A
predictor that can also ``encode(images, present)`` once and ``decode(encoded, present)``
per subset (``TorchPredictor``) is run that way: an absent modality's encoder output is never
used, so each frame's present modalities are encoded once instead of once per subset (the
encoder is nearly all of the cost). ``decode`` also hands back the routing weights, which
are averaged per subset and condition (``RoutingStats``) to show whether the router routes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesam_ros.train.data import iterate_batches
from mlesam_ros.train.metrics import ConfusionMatrix

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(images (B, M, 3, H, W) float32 0..255, present (B, M) bool) -> labels (B, H, W) int``."""


def modality_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, largest first, each in the model's modality order."""
    modalities = tuple(modalities)
    if not modalities:
        raise ValueError("modalities: need at least one")
    return [
        subset
        for size in range(len(modalities), 0, -1)
        for subset in itertools.combinations(modalities, size)
    ]


def subset_mask(modalities: Sequence[str], subset: Iterable[str]) -> np.ndarray:
    """(M,) bool presence mask of ``subset`` in ``modalities`` order."""
    subset = set(subset)
    unknown = sorted(subset - set(modalities))
    if unknown:
        raise ValueError(f"subset: {', '.join(unknown)} not among {', '.join(modalities)}")
    return np.array([m in subset for m in modalities], dtype=bool)


@dataclass
class RoutingStats:
    """Running sums of routing weights (levels, M) and their spread over present modalities.

    ``spread`` is max - min of a sample's weights over its present modalities: 0 when the
    router mixes them uniformly, up to 1 when it picks one.
    """

    weight_sum: np.ndarray
    spread_sum: np.ndarray
    count: int = 0

    @classmethod
    def empty(cls, levels: int, modalities: int) -> RoutingStats:
        """Zeroed sums for ``levels`` pyramid levels and ``modalities`` modalities."""
        return cls(np.zeros((levels, modalities)), np.zeros(levels))

    def update(self, weights: np.ndarray, present: np.ndarray) -> None:
        """Add (B, levels, M) weights of samples with (B, M) ``present``."""
        mask = present[:, None, :]
        high = np.where(mask, weights, -np.inf).max(axis=2)
        low = np.where(mask, weights, np.inf).min(axis=2)
        valid = np.isfinite(high) & np.isfinite(low)
        self.weight_sum += weights.sum(axis=0)
        self.spread_sum += np.where(valid, high - low, 0.0).sum(axis=0)
        self.count += len(weights)

    @property
    def mean_weights(self) -> np.ndarray:
        """Mean weight per (level, modality)."""
        return self.weight_sum / max(self.count, 1)

    @property
    def mean_spread(self) -> np.ndarray:
        """Mean per-sample spread per level."""
        return self.spread_sum / max(self.count, 1)


@dataclass
class SubsetResult:
    """Scores of one modality combination: overall and per condition."""

    modalities: tuple[str, ...]
    mask: np.ndarray
    overall: ConfusionMatrix
    per_condition: dict[str, ConfusionMatrix] = field(default_factory=dict)
    routing: dict[str, RoutingStats] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``rgb+depth`` style label."""
        return "+".join(self.modalities)


@dataclass
class EvaluationResult:
    """The whole protocol's confusion matrices plus what was evaluated."""

    modalities: tuple[str, ...]
    class_names: tuple[str, ...]
    subsets: list[SubsetResult]
    frames: int = 0
    source: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None

    @property
    def conditions(self) -> list[str]:
        """Conditions seen, in a stable order."""
        seen = {c for s in self.subsets for c in s.per_condition}
        return sorted(seen)

    def subset(self, modalities: Iterable[str]) -> SubsetResult:
        """Return the result of one combination (names in any order)."""
        wanted = set(modalities)
        for result in self.subsets:
            if set(result.modalities) == wanted:
                return result
        raise KeyError(f"combination {'+'.join(sorted(wanted))} was not evaluated")

    @property
    def full(self) -> SubsetResult:
        """The largest evaluated combination (all modalities when the protocol ran)."""
        return max(self.subsets, key=lambda s: len(s.modalities))

    def mean_miou_without(self, modality: str, convention: str = "all") -> float | None:
        """Mean mIoU over the evaluated combinations that lack ``modality`` (None if none)."""
        values = [s.overall.miou(convention) for s in self.subsets
                  if modality not in s.modalities]  # fmt: skip
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``metrics.json``."""
        full = self.full
        without = {m: self.mean_miou_without(m) for m in self.modalities}
        return {
            "source": self.source,
            "frames": self.frames,
            "modalities": list(self.modalities),
            "class_names": list(self.class_names),
            "all_modalities": {
                "modalities": list(full.modalities),
                **full.overall.summary(self.class_names),
                "confusion_matrix": full.overall.matrix.tolist(),
            },
            "combinations": [
                {
                    "modalities": list(s.modalities),
                    "present": [bool(v) for v in s.mask],
                    **{k: v for k, v in s.overall.summary(self.class_names).items()
                       if k != "per_class_iou"},
                    "per_condition_miou_all_classes": {
                        c: s.per_condition[c].summary()["miou_all_classes"]
                        for c in sorted(s.per_condition)
                    },
                    "per_condition_miou": {
                        c: s.per_condition[c].summary()["miou"] for c in sorted(s.per_condition)
                    },
                    "routing": {
                        c: {"mean_weights": np.round(r.mean_weights, 4).tolist(),
                            "mean_spread": np.round(r.mean_spread, 4).tolist(),
                            "samples": r.count}
                        for c, r in sorted(s.routing.items())
                    },
                }
                for s in self.subsets
            ],
            "mean_miou_without": {
                m: (None if v is None else round(v, 6)) for m, v in without.items()
            },
            "miou_conventions": {
                "miou_all_classes": "DELIVER/CMNeXt: every class, IoU 0 where never seen",
                "miou": "present classes only (nanmean)",
            },
            "seconds": self.seconds,
        }


def evaluate(
    predict: Predictor,
    dataset: Any,
    modalities: Sequence[str],
    class_names: Sequence[str],
    *,
    subsets: Sequence[Sequence[str]] | None = None,
    batch_size: int = 8,
    progress: bool = True,
    encode_once: bool = True,
) -> EvaluationResult:
    """Run ``predict`` on every sample of ``dataset`` once per modality combination.

    ``dataset`` yields the model-layout sample dicts (``images``, ``present``, ``labels``,
    ``condition``). ``subsets`` defaults to all ``2^M - 1`` non-empty combinations. With
    ``encode_once`` a predictor that has ``encode``/``decode`` encodes each batch once.
    """
    import time

    modalities = tuple(modalities)
    chosen = [tuple(s) for s in (subsets if subsets is not None else modality_subsets(modalities))]
    results = [
        SubsetResult(subset, subset_mask(modalities, subset), ConfusionMatrix(len(class_names)))
        for subset in chosen
    ]
    split = encode_once and hasattr(predict, "encode") and hasattr(predict, "decode")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), unit="frame", desc=f"eval x{len(results)} combinations")
    frames = 0
    started = time.perf_counter()
    for batch in iterate_batches(dataset, batch_size):
        images, present, labels = batch["images"], batch["present"], batch["labels"]
        if images.shape[1] != len(modalities):
            raise ValueError(
                f"dataset gives {images.shape[1]} modalities, the model takes {len(modalities)}"
            )
        encoded = None
        if split:
            available = np.where(present[:, :, None, None, None], images, 0.0)
            encoded = predict.encode(available.astype(np.float32), present)
        for result in results:
            mask = present & result.mask[None, :]
            weights = None
            if encoded is not None:
                prediction, weights = predict.decode(encoded, mask)
            else:
                # Zero what is absent too, so a predictor that ignored `present` is caught.
                masked = np.where(mask[:, :, None, None, None], images, 0.0).astype(np.float32)
                prediction = predict(masked, mask)
            prediction = np.asarray(prediction)
            if prediction.shape != labels.shape:
                raise ValueError(
                    f"predict returned {prediction.shape}, labels are {labels.shape}"
                )
            result.overall.update(prediction, labels)
            for index, condition in enumerate(batch["condition"]):
                matrix = result.per_condition.setdefault(
                    condition, ConfusionMatrix(len(class_names))
                )
                matrix.update(prediction[index], labels[index])
                if weights is not None:
                    stats = result.routing.setdefault(
                        condition, RoutingStats.empty(weights.shape[1], weights.shape[2])
                    )
                    stats.update(weights[index : index + 1], mask[index : index + 1])
        frames += len(labels)
        if bar is not None:
            bar.update(len(labels))
    if bar is not None:
        bar.close()
    return EvaluationResult(modalities, tuple(class_names), results, frames,
                            seconds=round(time.perf_counter() - started, 3))  # fmt: skip


class TorchPredictor:
    """An MLE-SAM torch model as a ``Predictor`` (argmax of the fused logits).

    Calling it runs the whole model; ``encode`` + ``decode`` split it so ``evaluate`` encodes
    a batch once and decodes it per modality subset (same outputs, see ``MLESAM.decode``).
    """

    def __init__(self, model: Any, device: Any = "cpu") -> None:
        model.eval()
        self.model = model
        self.device = device

    def _tensors(self, images: np.ndarray | None, present: np.ndarray):
        import torch

        present_t = torch.from_numpy(np.ascontiguousarray(present)).to(self.device)
        if images is None:
            return None, present_t
        return torch.from_numpy(np.ascontiguousarray(images)).to(self.device), present_t

    def __call__(self, images: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Labels (B, H, W) for raw images (B, M, 3, H, W) and presence (B, M)."""
        import torch

        images_t, present_t = self._tensors(images, present)
        with torch.inference_mode():
            logits = self.model(images_t, present_t)["logits"]
        return logits.argmax(1).cpu().numpy()

    def encode(self, images: np.ndarray, present: np.ndarray) -> tuple[Any, tuple[int, int]]:
        """Return the encoder taps of every present modality (absent ones skipped) and size."""
        import torch

        images_t, present_t = self._tensors(images, present)
        with torch.inference_mode():
            taps = self.model.encode(images_t, present_t)
        return taps, tuple(images.shape[-2:])

    def decode(
        self, encoded: tuple[Any, tuple[int, int]], present: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels (B, H, W) and routing weights (B, levels, M) for one presence mask."""
        import torch

        taps, size = encoded
        _, present_t = self._tensors(None, present)
        with torch.inference_mode():
            outputs = self.model.decode(taps, present_t, size)
        weights = outputs["routing_weights"].float().cpu().numpy()
        return outputs["logits"].argmax(1).cpu().numpy(), weights


def torch_predictor(model: Any, device: Any = "cpu") -> TorchPredictor:
    """Wrap an MLE-SAM torch model as a ``Predictor`` (see ``TorchPredictor``)."""
    return TorchPredictor(model, device)
