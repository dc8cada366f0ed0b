"""Metrics and the missing-modality protocol (numpy predictors, no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from mlesam_ros.train.evaluate import evaluate, modality_subsets, subset_mask
from mlesam_ros.train.metrics import ConfusionMatrix
from mlesam_ros.train.report import format_report, write_plot

MODALITIES = ("rgb", "depth", "thermal", "lidar")
NAMES = ("a", "b", "c", "d")


class _Frames:
    """A tiny dataset in the model layout with known labels and conditions."""

    def __init__(self, count: int = 5, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.labels = rng.choice(4, size=(count, 6, 8), p=[0.5, 0.3, 0.2, 0.0])
        self.labels[0, 0, :3] = 255
        self.present = np.ones((count, len(MODALITIES)), dtype=bool)
        self.present[1, 2] = False  # a failed thermal camera in frame 1
        self.images = rng.uniform(1, 255, (count, len(MODALITIES), 3, 6, 8)).astype(np.float32)
        self.conditions = ["sun", "night"] * (count // 2) + ["sun"] * (count % 2)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"images": self.images[index], "present": self.present[index],
                "labels": self.labels[index], "condition": self.conditions[index]}


def test_confusion_matrix_counts_and_iou() -> None:
    matrix = ConfusionMatrix(3)
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 0]])
    prediction = np.array([[0, 1, 1, 1], [2, 0, 1, 0]])
    matrix.update(prediction, target)
    expected = np.array([[2, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(matrix.matrix, expected)
    # IoU = TP / (TP + FP + FN) per class, by hand.
    np.testing.assert_allclose(matrix.per_class_iou(), [2 / 4, 2 / 3, 1 / 2])
    assert matrix.miou() == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert matrix.pixel_accuracy() == pytest.approx(5 / 7)


def test_class_never_seen_is_left_out_of_the_mean() -> None:
    matrix = ConfusionMatrix(4)
    matrix.update(np.array([0, 1]), np.array([0, 1]))
    assert np.isnan(matrix.per_class_iou()[2:]).all()
    assert matrix.miou() == 1.0


def test_out_of_range_ids_are_rejected() -> None:
    matrix = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"prediction: ids must be 0\.\.2"):
        matrix.update(np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="differs from target"):
        matrix.update(np.zeros(2), np.zeros(3))


def test_subsets_are_every_nonempty_combination() -> None:
    subsets = modality_subsets(MODALITIES)
    assert len(subsets) == 2 ** len(MODALITIES) - 1
    assert len(set(subsets)) == len(subsets)
    assert subsets[0] == MODALITIES and all(s for s in subsets)
    np.testing.assert_array_equal(subset_mask(MODALITIES, ("lidar", "rgb")), [1, 0, 0, 1])
    with pytest.raises(ValueError, match="event not among"):
        subset_mask(MODALITIES, ("event",))


def test_protocol_feeds_each_presence_mask_and_zeroes_absent_images() -> None:
    frames = _Frames()
    seen: list[np.ndarray] = []

    def recorder(images: np.ndarray, present: np.ndarray) -> np.ndarray:
        seen.append(present.copy())
        # Absent modalities must arrive as zeros; present ones untouched.
        assert (images[~present] == 0).all() and (images[present] > 0).all()
        return np.zeros((len(images), 6, 8), dtype=np.int64)

    result = evaluate(recorder, frames, MODALITIES, NAMES, batch_size=len(frames), progress=False)
    assert len(seen) == 15 and len(result.subsets) == 15
    for present, subset in zip(seen, result.subsets, strict=True):
        expected = frames.present & subset_mask(MODALITIES, subset.modalities)[None]
        np.testing.assert_array_equal(present, expected)
    assert not seen[0][1, 2]  # the data's own failure stays absent even with "all present"


def test_perfect_predictor_scores_one_and_constant_predictor_its_frequency() -> None:
    frames = _Frames(count=6)
    batch_starts = iter(range(0, 6, 2))

    def perfect(images: np.ndarray, present: np.ndarray) -> np.ndarray:
        start = next(batch_starts)  # batches arrive in dataset order
        truth = frames.labels[start:start + 2]
        return np.where(truth == 255, 0, truth)

    result = evaluate(perfect, frames, MODALITIES, NAMES, subsets=[MODALITIES], batch_size=2,
                      progress=False)
    assert result.full.overall.miou() == 1.0
    assert result.full.overall.pixel_accuracy() == 1.0
    assert set(result.full.per_condition) == {"sun", "night"}

    # Constant class 0: IoU_0 = n0 / total labelled, other classes that occur get 0.
    result = evaluate(lambda images, present: np.zeros((len(images), 6, 8), dtype=np.int64),
                      frames, MODALITIES, NAMES, subsets=[MODALITIES], progress=False)
    valid = frames.labels[frames.labels != 255]
    counts = np.bincount(valid, minlength=4)
    occurring = np.count_nonzero(counts)
    expected = (counts[0] / valid.size) / occurring
    assert result.full.overall.miou() == pytest.approx(expected)
    assert result.full.overall.pixel_accuracy() == pytest.approx(counts[0] / valid.size)


def test_report_table_json_and_plot(tmp_path) -> None:
    frames = _Frames()
    result = evaluate(lambda images, present: np.zeros((len(images), 6, 8), dtype=np.int64),
                      frames, MODALITIES, NAMES, progress=False)
    text = format_report(result)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| RGB | D | T | L | mIoU")
    # Each modality is present in 2^(M-1) = 8 of the 15 rows.
    assert sum(line.count("✓") for line in table) == 4 * 8
    data = result.to_dict()
    assert len(data["combinations"]) == 15
    assert set(data["combinations"][0]["per_condition_miou"]) == {"sun", "night"}
    assert np.array(data["all_modalities"]["confusion_matrix"]).sum() == result.full.overall.total
    path = write_plot(result, tmp_path / "eval.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_miou_conventions_on_a_hand_computed_example() -> None:
    # 4 classes; class 3 never occurs (neither target nor prediction).
    target = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    prediction = np.array([0, 0, 1, 1, 1, 2, 0, 2])
    matrix = ConfusionMatrix(4)
    matrix.update(prediction, target)
    # IoU: class 0: TP 2, FP 1, FN 1 -> 2/4; class 1: TP 2, FP 1 -> 2/3; class 2: TP 2, FN 1
    # -> 2/3; class 3: 0/0.
    present = (2 / 4 + 2 / 3 + 2 / 3) / 3
    deliver = (2 / 4 + 2 / 3 + 2 / 3 + 0.0) / 4
    assert matrix.miou() == pytest.approx(present)
    assert matrix.miou("present") == pytest.approx(present)
    assert matrix.miou("all") == pytest.approx(deliver)
    summary = matrix.summary()
    assert summary["miou"] == pytest.approx(present, abs=1e-6)
    assert summary["miou_all_classes"] == pytest.approx(deliver, abs=1e-6)
    assert np.isnan(ConfusionMatrix(3).miou("all"))
    with pytest.raises(ValueError, match="convention"):
        matrix.miou("deliver")


class _SplitPredictor:
    """A predictor with encode/decode whose output depends on every present modality."""

    def __init__(self) -> None:
        self.encoded = 0

    def __call__(self, images: np.ndarray, present: np.ndarray) -> np.ndarray:
        labels, _ = self.decode(self.encode(images, present), present)
        return labels

    def encode(self, images: np.ndarray, present: np.ndarray) -> np.ndarray:
        self.encoded += 1
        return np.where(present[:, :, None, None, None], images, 0.0).mean(axis=2)

    def decode(self, encoded: np.ndarray, present: np.ndarray):
        masked = np.where(present[:, :, None, None], encoded, 0.0)
        labels = (masked.sum(axis=1) // 64).astype(np.int64) % 4
        weights = present[:, None, :] / np.maximum(present.sum(axis=1), 1)[:, None, None]
        return labels, np.repeat(weights, 2, axis=1)


def test_encode_once_evaluation_equals_per_subset_evaluation() -> None:
    frames = _Frames(count=6)
    once, per_subset = _SplitPredictor(), _SplitPredictor()
    fast = evaluate(once, frames, MODALITIES, NAMES, batch_size=4, progress=False)
    slow = evaluate(per_subset, frames, MODALITIES, NAMES, batch_size=4, progress=False,
                    encode_once=False)  # fmt: skip
    assert once.encoded == 2 and per_subset.encoded == 2 * 15  # 2 batches
    for a, b in zip(fast.subsets, slow.subsets, strict=True):
        np.testing.assert_array_equal(a.overall.matrix, b.overall.matrix)
        assert a.overall.total > 0
        for condition in a.per_condition:
            np.testing.assert_array_equal(a.per_condition[condition].matrix,
                                          b.per_condition[condition].matrix)  # fmt: skip
    # Routing statistics: uniform weights over the present modalities, spread 0.
    full = fast.full.routing["sun"]
    assert full.count == 3  # frames 0, 2, 4
    np.testing.assert_allclose(full.mean_weights, 0.25)
    np.testing.assert_allclose(full.mean_spread, 0.0)
    # Night frame 1 lacks thermal (1/3 each for the others); frames 3 and 5 have all four.
    night = fast.full.routing["night"].mean_weights[0]
    np.testing.assert_allclose(night, [(1 / 3 + 0.5) / 3] * 2 + [0.5 / 3, (1 / 3 + 0.5) / 3])
    assert not slow.full.routing  # a plain call gives no weights
    data = fast.to_dict()
    assert data["combinations"][0]["routing"]["sun"]["mean_weights"][0] == [0.25] * 4
    assert "miou_all_classes" in data["combinations"][0]
