"""Segmentation metrics from a confusion matrix: IoU per class, mIoU, pixel accuracy.

numpy only (no torch) so bag replay and the runtime can score predictions too. The matrix
is accumulated with one ``bincount`` per update. Two mIoU conventions exist for classes that
never occur in the targets nor the predictions (IoU 0/0):

- ``all`` (the DELIVER / CMNeXt / MLE-SAM evaluation code): such a class counts as IoU 0 and
  the mean is over every class. Papers on DELIVER report this one.
- ``present`` (mmsegmentation's nanmean): such classes are left out of the mean.

They agree when every class occurs; on a split or condition lacking classes ``all`` is lower.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlesam_ros.data.classes import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates ``matrix[target, prediction]`` pixel counts over many frames."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes: must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one batch: same-shape integer arrays; target ``ignore_index`` pixels skipped.

        Predictions outside ``0..num_classes-1`` are a caller bug and raise ``ValueError``.
        """
        prediction = np.asarray(prediction)
        target = np.asarray(target)
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction shape {prediction.shape} differs from target {target.shape}"
            )
        valid = target != self.ignore_index
        target = target[valid].astype(np.int64)
        prediction = prediction[valid].astype(np.int64)
        if target.size == 0:
            return
        if target.min() < 0 or target.max() >= self.num_classes:
            raise ValueError(
                f"target: ids must be 0..{self.num_classes - 1} or {self.ignore_index}, "
                f"found {int(target.min())}..{int(target.max())}"
            )
        if prediction.min() < 0 or prediction.max() >= self.num_classes:
            raise ValueError(
                f"prediction: ids must be 0..{self.num_classes - 1}, "
                f"found {int(prediction.min())}..{int(prediction.max())}"
            )
        counts = np.bincount(
            target * self.num_classes + prediction, minlength=self.num_classes**2
        )
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another accumulator's counts (e.g. from another process)."""
        if other.num_classes != self.num_classes:
            raise ValueError("merge: the two matrices have different class counts")
        self.matrix += other.matrix

    def per_class_iou(self) -> np.ndarray:
        """IoU of every class: TP / (TP + FP + FN); NaN where the class never appears."""
        true_positive = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - true_positive
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, true_positive / union, np.nan)

    def miou(self, convention: str = "present") -> float:
        """Mean IoU in one of the module's two conventions (NaN before any pixel).

        ``present``: over the classes seen in targets or predictions; ``all``: over every
        class, unseen ones counting 0 (DELIVER's convention).
        """
        iou = self.per_class_iou()
        if not np.isfinite(iou).any():
            return float("nan")
        if convention == "all":
            return float(np.nan_to_num(iou, nan=0.0).mean())
        if convention == "present":
            return float(np.nanmean(iou))
        raise ValueError(f"convention: unknown {convention!r}; choose 'all' or 'present'")

    def pixel_accuracy(self) -> float:
        """Correct pixels / labelled pixels (NaN before any labelled pixel)."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    @property
    def total(self) -> int:
        """Labelled pixels counted so far."""
        return int(self.matrix.sum())

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, object]:
        """Plain-data summary for JSON: mIoU both ways, accuracy, per-class IoU (null = absent).

        ``miou`` is the present-classes mean, ``miou_all_classes`` the DELIVER convention.
        """
        names = list(class_names or (str(i) for i in range(self.num_classes)))
        iou = self.per_class_iou()
        return {
            "miou": _json_float(self.miou()),
            "miou_all_classes": _json_float(self.miou("all")),
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
            "pixels": self.total,
            "per_class_iou": {name: _json_float(v) for name, v in zip(names, iou, strict=True)},
        }


def _json_float(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)
