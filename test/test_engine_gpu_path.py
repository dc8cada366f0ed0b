"""The GPU inference path: torch precision/compile options, bench flags, and CUDA parity.

The CUDA tests run only where a GPU is visible (skipped otherwise) and are written to run
unchanged there: torch on CUDA vs CPU, ONNX Runtime's CUDA provider vs its CPU provider on the
shipped model, and a smoke run of `mlesam bench --device cuda --steps`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlesam_ros import cli
from mlesam_ros.bench.latency import optimisation_ladder
from mlesam_ros.engine.backends.torch_backend import resolve_compile_mode, resolve_precision
from mlesam_ros.engine.segmenter import Segmenter
from mlesam_ros.engine.torch_model import build_untrained
from mlesam_ros.model import save_checkpoint

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs an NVIDIA GPU with CUDA")
MODALITIES = ("rgb", "depth", "lidar")
SIZE = (64, 96)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    model = build_untrained("tiny", MODALITIES, SIZE, num_classes=7, seed=3)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():  # look trained: non-zero rel-pos, LoRA and position embedding
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return save_checkpoint(tmp_path_factory.mktemp("gpu") / "tiny.pt", model)


def _frame(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(1, len(MODALITIES), 3, *SIZE), dtype=np.uint8)
    return images, np.array([[True, False, True]])


def test_torch_precision_defaults_and_errors() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision(None, cpu) == resolve_precision("", cpu) == "fp32"
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(ValueError, match="precision: fp16 autocast is for CUDA; use fp32"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match=r"precision: 'int8' is not a torch precision"):
        resolve_precision("int8", cpu)
    assert resolve_compile_mode(True) == "default"
    assert resolve_compile_mode(False) == resolve_compile_mode("none") == "none"
    with pytest.raises(ValueError, match="compile: 'fast' is not one of none, default"):
        resolve_compile_mode("fast")


def test_default_precision_is_fp16_where_bf16_is_only_emulated(monkeypatch) -> None:
    """T4/V100/Xavier report bf16 "supported" through emulation; the default must be fp16."""
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation)  # fmt: skip
    assert resolve_precision(None, cuda) == "fp16"
    with pytest.raises(ValueError, match="Tesla T4 has no native bf16"):
        resolve_precision("bf16", cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("", cuda) == "bf16"


def test_optimisation_ladder_adds_one_change_per_step() -> None:
    gpu = optimisation_ladder("cuda", "bf16")
    assert [s.label for s in gpu] == ["stock eager fp32", "sdpa eager fp32", "sdpa eager bf16",
                                      "sdpa bf16 compile", "sdpa bf16 compile+cudagraphs"]
    assert [(s.attention, s.precision, s.compile) for s in gpu][1:] == [
        ("sdpa", "fp32", "none"), ("sdpa", "bf16", "none"), ("sdpa", "bf16", "default"),
        ("sdpa", "bf16", "reduce-overhead")]  # fmt: skip
    cpu = optimisation_ladder("cpu")
    assert [s.attention for s in cpu] == ["stock", "sdpa"]
    assert optimisation_ladder("cpu", compile_mode="default")[-1].compile == "default"


def test_report_states_each_step_contribution() -> None:
    from mlesam_ros.bench.latency import BenchReport, LatencyStats

    def row(name: str, p50: float, startup: float | None = 1.0) -> LatencyStats:
        return LatencyStats(name, 10, p50, p50, p50, p50, 1e3 / p50, startup, 0.5, None)

    report = BenchReport({}, {}, [row("stock eager fp32", 60.0), row("sdpa eager fp32", 45.0),
                                  row("sdpa eager bf16", 30.0),
                                  row("sdpa eager bf16 full frame", 40.0, None)])  # fmt: skip
    lines = report.contributions()
    assert lines[2] == "  stock eager fp32 → sdpa eager fp32: -15.00 ms (-25.0%)"
    assert lines[3] == "  sdpa eager fp32 → sdpa eager bf16: -15.00 ms (-33.3%)"
    assert lines[4] == "  overall: 60.00 → 30.00 ms (x2.00 faster)"
    assert "step contributions" in report.table()
    assert BenchReport({}, {}, [row("model", 5.0)]).contributions() == []


def test_torch_backend_stock_and_sdpa_give_the_same_labels(checkpoint: Path) -> None:
    images, present = _frame()
    with Segmenter(checkpoint, "torch", attention="stock") as stock, \
            Segmenter(checkpoint, "torch") as fused:  # fmt: skip
        assert fused._backend.attention == "sdpa" and fused._backend.precision == "fp32"
        a, b = stock.segment(images, present), fused.segment(images, present)
    assert (a.labels == b.labels).mean() >= 0.999
    assert np.abs(a.confidence - b.confidence).max() < 1e-5


def test_bench_steps_on_cpu_time_stock_then_sdpa(checkpoint: Path, capsys) -> None:
    code = cli.main(["bench", "--steps", "--model", str(checkpoint), "--warmup", "1",
                     "--iters", "2", "--camera", "160x120", "--device", "cpu", "--json", "-"])
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{"):])
    names = [row["name"] for row in report["results"]]
    assert names == ["stock eager fp32", "sdpa eager fp32", "sdpa eager fp32 full frame"]
    assert all(row["startup_s"] > 0 and row["first_frame_s"] > 0
               for row in report["results"][:2])  # fmt: skip
    assert report["setup"]["backend"] == "torch" and report["setup"]["input"] == "64x96"
    assert "start s" in printed and "peak MB" in printed


def test_bench_parses_size_and_modality_count() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["bench", "--preset", "vit_b", "--size", "1024", "--modalities",
                              "4", "--compile"])  # fmt: skip
    assert args.modalities == ("rgb", "depth", "thermal", "lidar")
    assert args.size == 1024 and args.compile == "default"
    assert parser.parse_args(["bench", "--modalities", "2"]).modalities == ("rgb", "depth")
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--modalities", "7"])
    assert parser.parse_args(["bench", "--camera", "1920x1080"]).camera == [(1080, 1920)]


def test_bench_size_conflicts_with_height_and_model(capsys) -> None:
    code = cli.main(["bench", "--preset", "tiny", "--size", "64", "--height", "64"])
    assert code != 0
    assert "size: give --size N or --height/--width, not both" in capsys.readouterr().err
    code = cli.main(["bench", "--model", "m.onnx", "--size", "64"])
    assert code != 0
    assert "model: --model is timed as it is" in capsys.readouterr().err


@pytest.mark.skipif(CUDA, reason="checks the message printed on machines without a GPU")
def test_bench_on_cuda_without_a_gpu_says_so_and_exits_0(capsys, monkeypatch) -> None:
    from mlesam_ros.engine.backends import onnxruntime_backend

    monkeypatch.setattr(onnxruntime_backend, "cuda_available", lambda: False)
    code = cli.main(["bench", "--device", "cuda", "--preset", "vit_b", "--size", "1024",
                     "--modalities", "4"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "no CUDA GPU is visible here" in printed and "nothing measured" in printed


@pytest.mark.skipif(CUDA, reason="checks the GPU-less case")
def test_onnxruntime_gpu_wheel_without_a_gpu_is_not_chosen(monkeypatch, tmp_path: Path) -> None:
    """onnxruntime-gpu lists its CUDA provider even where no GPU exists: auto must skip it."""
    import onnxruntime as ort

    from mlesam_ros.engine.backends import onnxruntime_backend
    from mlesam_ros.engine.segmenter import resolve_backend

    if Path("/proc/driver/nvidia/gpus").is_dir() or Path("/etc/nv_tegra_release").is_file():
        pytest.skip("an NVIDIA driver is installed here")
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert not onnxruntime_backend.cuda_available()
    assert resolve_backend("onnx", "onnxruntime") == ("onnxruntime", "cpu")


@needs_cuda
def test_torch_cuda_matches_cpu(checkpoint: Path, monkeypatch) -> None:
    # cuDNN convolutions default to TF32 (10-bit mantissa); true fp32 for the fp32 comparison.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    images, present = _frame(1)
    with Segmenter(checkpoint, "torch", device="cpu") as cpu, \
            Segmenter(checkpoint, "torch", device="cuda", precision="fp32") as gpu:  # fmt: skip
        a, b = cpu.segment(images, present), gpu.segment(images, present)
        assert (a.labels == b.labels).mean() >= 0.999
        assert np.abs(a.confidence - b.confidence).max() < 1e-3
        with Segmenter(checkpoint, "torch", device="cuda") as low:  # bf16 or fp16 autocast
            assert low._backend.precision in ("bf16", "fp16")
            c = low.segment(images, present)
        # bf16 keeps 8 mantissa bits: near-ties may flip, but the map must stay the same one.
        assert (a.labels == c.labels).mean() >= 0.9
        assert np.abs(a.confidence - c.confidence).mean() < 0.02


@needs_cuda
def test_onnxruntime_cuda_matches_cpu_on_the_shipped_model() -> None:
    from mlesam_ros.engine import resolve_default_checkpoint
    from mlesam_ros.engine.backends.onnxruntime_backend import cuda_available

    if not cuda_available():
        pytest.skip("onnxruntime has no CUDA provider here (pip install -e '.[gpu]')")
    onnx_path = resolve_default_checkpoint().with_suffix(".onnx")
    with Segmenter(onnx_path, "onnxruntime", device="cpu") as cpu, \
            Segmenter(onnx_path, "onnxruntime", device="cuda") as gpu:  # fmt: skip
        assert gpu.device == "cuda"
        rng = np.random.default_rng(2)
        images = rng.integers(0, 256, size=(1, len(cpu.modalities), 3, *cpu.input_size),
                              dtype=np.uint8)  # fmt: skip
        count = len(cpu.modalities)
        for present in ([True] * count, [True] + [False] * (count - 1)):
            mask = np.array([present])
            a, b = cpu.segment(images, mask), gpu.segment(images, mask)
            # ONNX Runtime's CUDA provider allows TF32 by default (10-bit mantissa).
            assert (a.labels == b.labels).mean() >= 0.99
            assert np.abs(a.confidence - b.confidence).max() < 2e-2
            assert np.abs(a.confidence - b.confidence).mean() < 2e-3


@needs_cuda
def test_bench_cuda_steps_smoke(capsys) -> None:
    code = cli.main(["bench", "--device", "cuda", "--steps", "--preset", "tiny", "--size",
                     "128", "--modalities", "4", "--warmup", "2", "--iters", "5",
                     "--camera", "1920x1080"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads(printed[printed.index("{"):])
    rows = {row["name"]: row for row in report["results"]}
    assert len(rows) == 6 and report["setup"]["device"] == "cuda"
    assert all(row["peak_memory_mb"] > 0 for row in rows.values())
    assert report["machine"]["cuda"] and report["machine"]["gpu"] != "none"
