"""Robustness to sensors that lie: for each sensor × corruption, clean vs corrupted vs absent.

The question a robot needs answered is not "how good is the model with every sensor healthy"
but "what does a sensor that is present and wrong cost, compared with the same sensor simply
unplugged?". A fusion that routes must make the corrupted cell at least as good as the absent
one: the router can always give the liar the weight an absent sensor gets (none).

``evaluate_robustness`` scores the same frames three ways per cell: every sensor clean, the
cell's sensor corrupted (``mlesam_ros.data.corruptions``; on synthetic frames at the sensor
level, before encoding, as a robot delivers it), and that sensor marked absent. A predictor
with ``encode``/``decode`` (``TorchPredictor``) encodes every frame's clean sensors once and
only the corrupted sensor again per cell (an absent or unchanged sensor's encoder output is
the same), which makes the whole table cost a few clean evaluations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlesam_ros.data.corruptions import Corruption, corrupt_encoded, kinds_for
from mlesam_ros.train.metrics import ConfusionMatrix


@dataclass
class RobustnessCell:
    """Scores of one sensor × corruption: confusion matrices and the router's view of it."""

    corruption: Corruption
    corrupted: ConfusionMatrix
    absent: ConfusionMatrix
    weight_clean: float = float("nan")
    weight_corrupted: float = float("nan")

    @property
    def margin(self) -> float:
        """Corrupted minus absent mIoU (DELIVER convention): < 0 means the liar costs more."""
        return self.corrupted.miou("all") - self.absent.miou("all")


@dataclass
class RobustnessResult:
    """The clean score, one cell per corruption, and routing weights per condition."""

    modalities: tuple[str, ...]
    class_names: tuple[str, ...]
    clean: ConfusionMatrix
    cells: list[RobustnessCell] = field(default_factory=list)
    clean_weights: dict[str, np.ndarray] = field(default_factory=dict)
    corrupted_weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (mIoU in %, DELIVER convention)."""
        return {
            "frames": self.frames,
            "modalities": list(self.modalities),
            "clean_miou": round(100 * self.clean.miou("all"), 2),
            "cells": [
                {
                    "corruption": cell.corruption.name,
                    "modality": cell.corruption.modality,
                    "kind": cell.corruption.kind,
                    "severity": cell.corruption.severity,
                    "corrupted_miou": round(100 * cell.corrupted.miou("all"), 2),
                    "absent_miou": round(100 * cell.absent.miou("all"), 2),
                    "margin": round(100 * cell.margin, 2),
                    "weight_clean": _round(cell.weight_clean),
                    "weight_corrupted": _round(cell.weight_corrupted),
                }
                for cell in self.cells
            ],
            "cells_worse_than_absent": sum(cell.margin < 0 for cell in self.cells),
            "mean_corrupted_miou": _mean([100 * c.corrupted.miou("all") for c in self.cells]),
            "clean_weights_per_condition": {
                condition: np.round(weights, 4).tolist()
                for condition, weights in sorted(self.clean_weights.items())
            },
        }


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 2) if values else None


def table_cells(modalities: Sequence[str], severity: int = 3,
                kinds: Sequence[str] | None = None) -> list[Corruption]:  # fmt: skip
    """Every corruption that applies to each of ``modalities`` (or only ``kinds``)."""
    return [Corruption(modality, kind, severity)
            for modality in modalities for kind in kinds_for(modality)
            if kinds is None or kind in kinds]  # fmt: skip


def corrupted_image(dataset: Any, index: int, corruption: Corruption) -> np.ndarray:
    """Return the corrupted sensor's model image (3, H, W) float32 of sample ``index``.

    Only that sensor is encoded again, which is what makes a table of many cells cheap.
    """
    from mlesam_ros.data.corruptions import FROZEN_LAG

    slot = tuple(dataset.modalities).index(corruption.modality)
    if hasattr(dataset, "corrupted_frame"):
        from mlesam_ros.data.synthetic_dataset import frame_to_images

        previous = dataset.corruptions
        dataset.corruptions = (corruption,)
        try:
            frame = dataset.corrupted_frame(index)
        finally:
            dataset.corruptions = previous
        image, _ = frame_to_images(frame, [corruption.modality])
        return image[0].transpose(2, 0, 1).astype(np.float32)
    sample = dataset[index]
    image = sample["images"][slot]
    if not sample["present"][slot]:
        return image
    rng = np.random.default_rng([index, 0xC0, slot])
    previous_image = None
    if corruption.kind == "frozen":
        lag = FROZEN_LAG[corruption.severity - 1]
        other = dataset[index - lag if index >= lag else min(index + lag, len(dataset) - 1)]
        previous_image = _uint8(other["images"][slot])
    corrupted = corrupt_encoded(_uint8(image), corruption, rng, previous_image)
    return corrupted.transpose(2, 0, 1).astype(np.float32)


class CorruptedView:
    """A dataset whose samples carry ``corruptions`` (``mlesam eval --corrupt``)."""

    def __init__(self, dataset: Any, corruptions: Sequence[Corruption]) -> None:
        self.dataset = dataset
        self.corruptions = tuple(corruptions)
        self.modalities = dataset.modalities

    def __len__(self) -> int:
        """Return the dataset's length."""
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return sample ``index`` with every corruption applied."""
        sample = self.dataset[index]
        images = sample["images"].copy()
        for corruption in self.corruptions:
            slot = tuple(self.modalities).index(corruption.modality)
            images[slot] = corrupted_image(self.dataset, index, corruption)
        return dict(sample, images=images)


def with_corruptions(dataset: Any, corruptions: Sequence[Corruption]) -> Any:
    """``dataset`` with ``corruptions`` applied to every sample (sensor level if synthetic)."""
    if not corruptions:
        return dataset
    unknown = [c.name for c in corruptions if c.modality not in tuple(dataset.modalities)]
    if unknown:
        raise ValueError(
            f"--corrupt: {', '.join(unknown)} names a sensor the model does not take "
            f"({', '.join(dataset.modalities)})"
        )
    if hasattr(dataset, "corrupted_frame"):
        dataset.corruptions = tuple(corruptions)
        return dataset
    return CorruptedView(dataset, corruptions)


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def evaluate_robustness(
    predictor: Any,
    dataset: Any,
    modalities: Sequence[str],
    class_names: Sequence[str],
    corruptions: Sequence[Corruption],
    *,
    batch_size: int = 8,
    progress: bool = True,
    image_fn: Callable[[Any, int, Corruption], np.ndarray] = corrupted_image,
) -> RobustnessResult:
    """Score ``corruptions`` (one cell each) against clean and absent on ``dataset``.

    ``predictor`` must offer ``encode(images, present)`` and ``decode(encoded, present)``
    (see ``TorchPredictor``). Frames where the cell's sensor is missing in the data are scored
    in every column alike (it is absent in all three).
    """
    modalities = tuple(modalities)
    num_classes = len(class_names)
    result = RobustnessResult(modalities, tuple(class_names), ConfusionMatrix(num_classes))
    cells = [RobustnessCell(c, ConfusionMatrix(num_classes), ConfusionMatrix(num_classes))
             for c in corruptions]  # fmt: skip
    weight_sums = np.zeros((len(cells), 2))
    weight_counts = np.zeros(len(cells))
    clean_weight_sum: dict[str, np.ndarray] = {}
    clean_weight_count: dict[str, int] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), unit="frame",
                   desc=f"robustness x{len(cells)} corruptions")  # fmt: skip
    for start in range(0, len(dataset), batch_size):
        indices = list(range(start, min(start + batch_size, len(dataset))))
        samples = [dataset[i] for i in indices]
        images = np.stack([s["images"] for s in samples]).astype(np.float32)
        present = np.stack([s["present"] for s in samples])
        labels = np.stack([s["labels"] for s in samples])
        conditions = [s.get("condition", "all") for s in samples]
        clean = predictor.encode(np.where(present[:, :, None, None, None], images, 0), present)
        prediction, weights = predictor.decode(clean, present)
        result.clean.update(prediction, labels)
        for row, condition in enumerate(conditions):
            mean = weights[row].mean(axis=0)  # over levels
            clean_weight_sum[condition] = clean_weight_sum.get(condition, 0) + mean
            clean_weight_count[condition] = clean_weight_count.get(condition, 0) + 1
        absent_predictions: dict[int, np.ndarray] = {}  # one decode per absent sensor
        for number, cell in enumerate(cells):
            slot = modalities.index(cell.corruption.modality)
            if slot not in absent_predictions:
                absent = present.copy()
                absent[:, slot] = False
                absent_predictions[slot], _ = predictor.decode(clean, absent)
            cell.absent.update(absent_predictions[slot], labels)
            corrupted = np.stack([image_fn(dataset, i, cell.corruption) for i in indices])
            only = np.zeros_like(present)
            only[:, slot] = present[:, slot]
            replaced = np.zeros_like(images)
            replaced[:, slot] = np.where(only[:, slot, None, None, None], corrupted, 0)
            lying = predictor.encode(replaced, only)
            mixed = _replace_modality(clean, lying, slot)
            lie_prediction, lie_weights = predictor.decode(mixed, present)
            cell.corrupted.update(lie_prediction, labels)
            rows = present[:, slot] & (present.sum(axis=1) > 1)
            if rows.any():
                weight_sums[number, 0] += weights[rows][:, :, slot].mean(axis=1).sum()
                weight_sums[number, 1] += lie_weights[rows][:, :, slot].mean(axis=1).sum()
                weight_counts[number] += rows.sum()
        if bar is not None:
            bar.update(len(indices))
    if bar is not None:
        bar.close()
    for number, cell in enumerate(cells):
        if weight_counts[number]:
            cell.weight_clean, cell.weight_corrupted = weight_sums[number] / weight_counts[number]
    result.cells = cells
    result.clean_weights = {c: clean_weight_sum[c] / clean_weight_count[c]
                            for c in clean_weight_sum}  # fmt: skip
    result.frames = len(dataset)
    return result


def _replace_modality(clean: Any, lying: Any, slot: int) -> Any:
    """Return the encoder output of ``clean`` with modality ``slot`` from ``lying``.

    ``TorchPredictor.encode`` returns ``(taps, size)``: taps are (B, M, C, h, w) per level.
    """
    taps, size = clean
    lying_taps, _ = lying
    mixed = []
    for tap, other in zip(taps, lying_taps, strict=True):
        tap = tap.clone()
        tap[:, slot] = other[:, slot]
        mixed.append(tap)
    return mixed, size


def robustness_table(results: dict[str, RobustnessResult]) -> str:
    """Markdown: one row per cell, corrupted / absent mIoU per model, ✗ where corrupted < absent.

    ``results`` maps a model's name to its result; every result must hold the same cells.
    """
    from mlesam_ros.train.report import SHORT_NAMES, markdown_table

    names = list(results)
    first = results[names[0]]
    header = ["sensor", "corruption"]
    for name in names:
        header += [f"{name}: corrupted", f"{name}: absent", f"{name}: ok"]
    rows = []
    for index, cell in enumerate(first.cells):
        row = [SHORT_NAMES.get(cell.corruption.modality, cell.corruption.modality),
               f"{cell.corruption.kind} ({cell.corruption.severity})"]  # fmt: skip
        for name in names:
            other = results[name].cells[index]
            row += [f"{100 * other.corrupted.miou('all'):.1f}",
                    f"{100 * other.absent.miou('all'):.1f}",
                    "✓" if other.margin >= 0 else f"✗ {100 * other.margin:+.1f}"]  # fmt: skip
        rows.append(row)
    summary = ["all", "clean"]
    for name in names:
        result = results[name]
        worse = sum(c.margin < 0 for c in result.cells)
        summary += [f"{100 * result.clean.miou('all'):.1f}", "",
                    f"{len(result.cells) - worse}/{len(result.cells)}"]  # fmt: skip
    rows.append(summary)
    return markdown_table(header, rows)
