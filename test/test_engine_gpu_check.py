"""``mlesam gpu-check`` here (no GPU: skips with reasons) and against TensorRT stand-ins."""

from __future__ import annotations

import json
import sys

import pytest
from tensorrt_standins import make_cudart, make_tensorrt

from mlesam_ros import cli

_TENSORRT_MODULES = ("mlesam_ros.engine.tensorrt_build",
                     "mlesam_ros.engine.backends.tensorrt_backend")  # fmt: skip


def _rows(report: dict) -> dict[str, dict]:
    return {row["name"]: row for row in report["backends"]}


def test_gpu_check_without_a_gpu_skips_with_reasons(tmp_path, capsys, monkeypatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the skips this test checks do not happen")
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # not installed
    out = tmp_path / "report.json"
    code = cli.main(["gpu-check", "--out", str(out), "--warmup", "1", "--iters", "3",
                     "--no-full-frame"])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    rows = _rows(report)
    cpu = rows["onnxruntime cpu"]
    assert cpu["status"] == "ok" and len(cpu["agreement"]) == len(report["setup"]
                                                                     ["presence_patterns"])
    assert cpu["worst"]["confident_agreement"] >= 0.999
    assert cpu["worst"]["confidence_max_abs"] < 1e-3
    assert cpu["model_ms"]["p50"] > 0 and cpu["model_ms"]["p99"] >= cpu["model_ms"]["p50"]
    assert report["setup"]["reference"] == "torch cpu fp32"
    assert "torch.cuda.is_available() is False" in rows["torch cuda fp32"]["reason"]
    assert "no CUDAExecutionProvider" in rows["onnxruntime cuda"]["reason"]
    assert "TensorRT or cuda-python not importable" in rows["tensorrt fp16"]["reason"]
    assert report["tensorrt_cache"]["status"] == "skipped"
    assert "skipped" in capsys.readouterr().out


@pytest.mark.parametrize("version", ["10.16.1", "11.1.0"])
def test_gpu_check_tensorrt_rows_and_cache_checks(version, tmp_path, monkeypatch) -> None:
    from mlesam_ros.engine import cuda_runtime

    cudart = make_cudart()
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt(version, cudart))
    monkeypatch.setattr(cuda_runtime, "cudart", lambda: cudart)
    for name in _TENSORRT_MODULES:
        sys.modules.pop(name, None)
    try:
        out = tmp_path / "report.json"
        code = cli.main(["gpu-check", "--out", str(out), "--warmup", "1", "--iters", "2",
                         "--no-full-frame", "--work-dir", str(tmp_path / "work")])  # fmt: skip
    finally:
        for name in _TENSORRT_MODULES:
            sys.modules.pop(name, None)
    report = json.loads(out.read_text())
    rows = _rows(report)
    assert code == 0, report
    expected = {"tensorrt fp32", "tensorrt fp16"} | (
        {"tensorrt fp16 strongly typed"} if version.startswith("10.") else set())
    for name in expected:
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["worst"]["confident_agreement"] >= 0.99
        assert rows[name]["engine"]["rebuilt"]
    assert rows["tensorrt fp32"]["worst"]["confidence_max_abs"] < 1e-5
    cache = report["tensorrt_cache"]
    assert cache["status"] == "ok" and not cache["reload"]["rebuilt"]
    assert "deserialization failed" in cache["corrupted"]["reasons"][0]
