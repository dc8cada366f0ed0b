"""``mlesam bench``'s measuring: the frame path stage by stage, latency statistics."""

from __future__ import annotations

import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mlesam_ros.bench.frame import stage_table, stage_timings, thread_setup

MODALITIES = ("rgb", "depth", "thermal", "lidar")


def test_stage_benchmark_reports_every_stage_and_the_ratio_table() -> None:
    class Model:
        modalities, input_size = MODALITIES, (30, 40)
        class_names = tuple(f"c{i}" for i in range(25))

        def segment(self, images, present):
            assert images.shape == (1, 4, 3, 30, 40) and present.all()
            return SimpleNamespace(labels=np.zeros((30, 40), np.uint8),
                                   confidence=np.ones((30, 40), np.float32))  # fmt: skip

    report = stage_timings(Model(), (60, 80), points=4096, frames=2, warmup=0)
    stages = report["stages"]
    for name in ("prepare", "inference", "postprocess", "publish", "frame", "overhead",
                 "  depth", "  thermal", "  points", "  overlay", "  labelled points"):
        assert stages[name]["p50"] >= 0, name
    assert stages["overhead"]["p50"] < stages["frame"]["p50"]
    assert "cpu_p50" in stages["overhead"] and "cpu_p50" in stages["  points"]
    labels_only = stage_timings(Model(), (60, 80), points=4096, frames=1, warmup=0,
                                outputs="labels")  # fmt: skip
    assert "  overlay" not in labels_only["stages"]
    table = stage_table([report], [report])
    assert "| **overhead** |" in table and "→" in table and "(×1.0)" in table
    torch = pytest.importorskip("torch")

    saved = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        assert thread_setup(0)["threads"] == len(os.sched_getaffinity(0))
        assert thread_setup(1)["threads"] == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])
