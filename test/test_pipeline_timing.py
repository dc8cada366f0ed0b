"""Per-stage timing: each frame's time split into stages, p50/p90 in /diagnostics and replay."""

from __future__ import annotations

import math

import pytest
from conftest import drive_records, replay_records, statuses

from mlesam_ros.data import topics
from mlesam_ros.pipeline.timing import STAGES, StageWindow, frame_stages


def test_frame_stages_split_decoding_out_of_the_frame_path() -> None:
    stages = frame_stages(
        sync_wait_ms=12.0, queue_ms=-0.1, prepare_ms=30.0,
        path_steps_ms={"decode rgb": 4.0, "decompress": 6.0, "depth": 15.0},
        model_input_ms=2.0, inference_ms=40.0, outputs_ms=8.0,
    )  # fmt: skip
    assert stages == {"sync_wait": 12.0, "queue": 0.0, "decode": 10.0, "preprocess": 22.0,
                      "inference": 40.0, "outputs": 8.0}  # fmt: skip
    unknown_arrival = frame_stages(sync_wait_ms=None, queue_ms=1.0, prepare_ms=1.0,
                                   path_steps_ms={}, model_input_ms=0.0, inference_ms=1.0,
                                   outputs_ms=1.0)  # fmt: skip
    assert "sync_wait" not in unknown_arrival and unknown_arrival["decode"] == 0.0


def test_stage_window_keeps_the_last_frames_and_copies() -> None:
    window = StageWindow(size=3)
    for value in (100.0, 1.0, 2.0, 3.0):
        window.add({"inference": value, "not_a_stage": 5.0})
    frozen = window.copy()
    window.add({"inference": 1000.0})
    values = frozen.values()
    assert values["inference_p50_ms"] == 2.0 and values["inference_p90_ms"] == pytest.approx(2.8)
    assert math.isnan(values["decode_p50_ms"])
    assert set(values) == {f"{stage}_p{q}_ms" for stage in STAGES for q in (50, 90)}


def test_diagnostics_and_replay_summary_carry_stage_percentiles(
    tmp_path, frames, model_path
) -> None:
    """A dead thermal camera: every frame waits the whole sync timeout (bag time, exact)."""
    records = [r for r in drive_records(frames) if r.topic != topics.THERMAL_IMAGE_TOPIC]
    result, out = replay_records(tmp_path, records, model_path, **{"sync.timeout_s": 0.05})
    pipeline = statuses(out, "/mlesam: pipeline")[-1][3]
    for stage in STAGES:
        for quantile in (50, 90):
            assert math.isfinite(float(pipeline[f"{stage}_p{quantile}_ms"])), stage
    # Emitted at the first poll (every 10 ms of bag time) after the 50 ms timeout.
    assert 50.0 <= float(pipeline["sync_wait_p50_ms"]) <= 60.0
    assert float(pipeline["inference_p50_ms"]) > 0.0
    summary = result.summary()["stages_ms"]
    assert list(summary) == list(STAGES)
    assert 50.0 <= summary["sync_wait"]["p50"] <= summary["sync_wait"]["p90"] <= 60.0
    assert "stages ms (p50/p90): sync_wait 5" in result.text()
