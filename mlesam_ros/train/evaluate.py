"""Evaluation with the missing-modality protocol: every non-empty sensor subset, per condition.

MLE-SAM's claim is robustness to missing sensors, so one evaluation scores the same frames
once per non-empty subset of the model's modalities (2^M - 1 presence masks, rows of the
paper's table) and splits each score by condition (sun, night, fog, ...). A modality that
is left out of a subset is marked absent *and* zeroed; a sensor that is already missing in a
sample (a failure in the data) stays absent in every subset.

``evaluate`` takes any ``predict(images, present) -> labels`` callable, so the same protocol
scores a torch model (``torch_predictor``), an exported engine, or a test's oracle.
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
class SubsetResult:
    """Scores of one modality combination: overall and per condition."""

    modalities: tuple[str, ...]
    mask: np.ndarray
    overall: ConfusionMatrix
    per_condition: dict[str, ConfusionMatrix] = field(default_factory=dict)

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

    def mean_miou_without(self, modality: str) -> float | None:
        """Mean mIoU over the evaluated combinations that lack ``modality`` (None if none)."""
        values = [s.overall.miou() for s in self.subsets if modality not in s.modalities]
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
                    "per_condition_miou": {
                        c: s.per_condition[c].summary()["miou"] for c in sorted(s.per_condition)
                    },
                }
                for s in self.subsets
            ],
            "mean_miou_without": {
                m: (None if v is None else round(v, 6)) for m, v in without.items()
            },
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
) -> EvaluationResult:
    """Run ``predict`` on every sample of ``dataset`` once per modality combination.

    ``dataset`` yields the model-layout sample dicts (``images``, ``present``, ``labels``,
    ``condition``). ``subsets`` defaults to all ``2^M - 1`` non-empty combinations.
    """
    modalities = tuple(modalities)
    chosen = [tuple(s) for s in (subsets if subsets is not None else modality_subsets(modalities))]
    results = [
        SubsetResult(subset, subset_mask(modalities, subset), ConfusionMatrix(len(class_names)))
        for subset in chosen
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), unit="frame", desc=f"eval x{len(results)} combinations")
    frames = 0
    for batch in iterate_batches(dataset, batch_size):
        images, present, labels = batch["images"], batch["present"], batch["labels"]
        if images.shape[1] != len(modalities):
            raise ValueError(
                f"dataset gives {images.shape[1]} modalities, the model takes {len(modalities)}"
            )
        for result in results:
            mask = present & result.mask[None, :]
            # Zero what is absent too, so a predictor that ignored `present` would be caught.
            masked = np.where(mask[:, :, None, None, None], images, 0.0).astype(np.float32)
            prediction = np.asarray(predict(masked, mask))
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
        frames += len(labels)
        if bar is not None:
            bar.update(len(labels))
    if bar is not None:
        bar.close()
    return EvaluationResult(modalities, tuple(class_names), results, frames)


def torch_predictor(model: Any, device: Any = "cpu") -> Predictor:
    """Wrap an MLE-SAM torch model as a ``Predictor`` (argmax of the fused logits)."""
    import torch

    model.eval()

    def predict(images: np.ndarray, present: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(images).to(device),
                           torch.from_numpy(present).to(device))["logits"]  # fmt: skip
        return logits.argmax(1).cpu().numpy()

    return predict
