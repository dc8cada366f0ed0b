"""The model's answer checked per frame: ids outside the classes, non-probabilities → dropped."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import (
    FakeSegmenter,
    assert_every_rgb_frame_accounted,
    drive_records,
    read_bag,
    statuses,
    write_bag,
)

from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.model_output import ModelOutputError, check_model_output
from mlesam_ros.replay.run import replay_bag

SIZE = (30, 40)


def _output(labels, confidence=None, routing=None):
    labels = np.asarray(labels)
    if confidence is None:
        confidence = np.full(labels.shape, 0.5, np.float32)
    return SimpleNamespace(labels=labels, confidence=confidence, routing_weights=routing)


@pytest.mark.parametrize(
    ("output", "error"),
    [
        (_output(np.full(SIZE, 200, np.int32)), r"class ids 200..200, outside the model's 0..24"),
        (_output(np.full(SIZE, -1, np.int32)), r"class ids -1..-1"),
        (_output(np.full(SIZE, 255, np.uint8)), r"class ids 255..255, .*\(1200 pixels\)"),
        (_output(np.full(SIZE, 25, np.int64)), r"25..25, outside the model's 0..24"),
        (_output(np.zeros(SIZE, np.float32)), r"labels are float32, not class ids"),
        (_output(np.zeros(SIZE, np.int32), np.full(SIZE, np.nan, np.float32)), r"1200 NaN"),
        (_output(np.zeros(SIZE, np.int32), np.full(SIZE, 3.0, np.float32)), r"not a probability"),
        (_output(np.zeros(SIZE, np.int32), np.full(SIZE, -0.5, np.float32)), r"-0.5..-0.5"),
        (_output(np.zeros(SIZE, np.int32), routing=np.array([[np.inf, 0.0]])), r"routing"),
    ],
)
def test_out_of_range_outputs_are_errors(output, error) -> None:
    with pytest.raises(ModelOutputError, match=error):
        check_model_output(output, 25)


def test_in_range_outputs_pass() -> None:
    labels = np.arange(np.prod(SIZE)).reshape(SIZE) % 25
    for dtype in (np.uint8, np.int32, np.int64):
        check_model_output(_output(labels.astype(dtype)), 25)
    edges = np.where(labels % 2 == 0, 0.0, 1.0).astype(np.float32)
    check_model_output(_output(labels, edges, np.ones((3, 4), np.float32)), 25)
    check_model_output(_output(labels, np.full(SIZE, 1.0004, np.float32)), 25)  # fp16 rounding


class _BrokenSometimes(FakeSegmenter):
    """The fake model, answering out of range on some calls (0-based call numbers)."""

    def __init__(self, broken: dict[int, str]) -> None:
        super().__init__()
        self.broken = broken

    def segment(self, images, present):
        result = super().segment(images, present)
        kind = self.broken.get(len(self.calls) - 1)
        if kind == "200":
            result.labels = np.full(self.input_size, 200, np.int32)
        elif kind == "-1 as uint8":
            result.labels = np.full(self.input_size, -1, np.int32).astype(np.uint8)
        elif kind == "nan":
            result.confidence = np.full(self.input_size, np.nan, np.float32)
        return result


def test_out_of_range_frames_are_dropped_counted_and_reported(tmp_path, frames) -> None:
    """Frames whose labels name no class are never published: inference errors, ERROR."""
    bag = write_bag(tmp_path / "in", drive_records(frames))
    segmenter = _BrokenSometimes({1: "200", 3: "-1 as uint8", 4: "nan"})
    result = replay_bag(bag, tmp_path / "out", {"diagnostics.period_s": 0.1},
                        progress=False, segmenter=segmenter)  # fmt: skip
    assert_every_rgb_frame_accounted(result)
    assert result.frames == 3 and result.dropped == {"inference_error": 3}
    out = read_bag(tmp_path / "out")
    published = [np.asarray(msg.data) for _, msg in out[m.LABELS_TOPIC]]
    assert len(published) == 3 and all(int(labels.max()) < 25 for labels in published)
    pipeline = statuses(out, "/mlesam: pipeline")
    level, message, values = pipeline[-1][1], pipeline[-1][2], pipeline[-1][3]
    assert level == m.ERROR and values["errors"] == "3"
    assert values["dropped_inference_error"] == "3"
    assert "NaN" in values["last_error"] and "errors, last:" in message
    texts = " ".join(status[3]["last_error"] for status in pipeline)
    assert "class ids 200..200" in texts and "class ids 255..255" in texts
