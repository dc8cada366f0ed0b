"""Latency measurement for ``mlesam bench``: warm-up, N timed runs, percentiles, machine info.

``measure_latency`` times any zero-argument step, so each path through the system is one
step function: ``model_only_step`` (inference on a fixed frame) and
``bench.frame.full_frame_step`` (conversion, projection, preprocessing, inference, postprocessing).
``time_configuration`` adds what a deployment trade needs besides latency: start-up time
(loading), the first frame (where ``torch.compile`` compiles) and peak GPU memory, for each
rung of ``optimisation_ladder`` (stock eager → SDPA → bf16/fp16 → compile → CUDA graphs).
"""

from __future__ import annotations

import itertools
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from mlesam_ros.bench.frame import full_frame_step
from mlesam_ros.engine.segmenter import Segmenter


@dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles (milliseconds) and throughput of one measured path."""

    name: str
    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    fps: float
    startup_s: float | None = None  # load (and engine build) time, before the first frame
    first_frame_s: float | None = None  # the first frame alone: torch.compile compiles here
    peak_memory_mb: float | None = None  # GPU memory the backend holds (every allocator)


@dataclass
class BenchReport:
    """What ``mlesam bench`` prints: the setup, the machine and one row per measured path."""

    setup: dict[str, object]
    machine: dict[str, object]
    results: list[LatencyStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {"setup": self.setup, "machine": self.machine,
                "results": [asdict(r) for r in self.results]}

    def table(self) -> str:
        """Format a fixed-width table for the terminal."""
        width = max([14, *(len(r.name) + 2 for r in self.results)])
        header = (f"{'path':<{width}}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}"
                  f"{'fps':>9}{'start s':>9}{'1st s':>8}{'peak MB':>9}")
        rows = [f"{r.name:<{width}}{r.p50_ms:>10.2f}{r.p90_ms:>10.2f}{r.p99_ms:>10.2f}"
                f"{r.mean_ms:>10.2f}{r.fps:>9.2f}{_optional(r.startup_s, 9, 2)}"
                f"{_optional(r.first_frame_s, 8, 2)}{_optional(r.peak_memory_mb, 9, 0)}"
                for r in self.results]
        context = [f"{key}: {value}" for key, value in {**self.machine, **self.setup}.items()]
        return "\n".join([*context, "", header, "-" * len(header), *rows,
                          *self.contributions()])  # fmt: skip

    def contributions(self) -> list[str]:
        """One line per optimisation step: its p50 change from the step before (model rows)."""
        steps = [r for r in self.results if r.startup_s is not None]
        if len(steps) < 2:
            return []
        lines = ["", "step contributions (model p50):"]
        for before, after in itertools.pairwise(steps):
            change = after.p50_ms - before.p50_ms
            lines.append(f"  {before.name} → {after.name}: {change:+.2f} ms "
                         f"({100 * change / before.p50_ms:+.1f}%)")  # fmt: skip
        total = steps[-1].p50_ms / steps[0].p50_ms
        lines.append(f"  overall: {steps[0].p50_ms:.2f} → {steps[-1].p50_ms:.2f} ms "
                     f"(x{1 / total:.2f} faster)")  # fmt: skip
        return lines


def measure_latency(
    name: str, step: Callable[[], object], warmup: int = 5, iterations: int = 50
) -> LatencyStats:
    """Run ``step`` ``warmup`` times untimed, then ``iterations`` times timed."""
    if iterations < 1 or warmup < 0:
        raise ValueError("iterations must be ≥ 1 and warmup ≥ 0")
    for _ in range(warmup):
        step()
    samples = np.empty(iterations, dtype=np.float64)
    started = time.perf_counter()
    for index in range(iterations):
        tick = time.perf_counter()
        step()
        samples[index] = time.perf_counter() - tick
    total = time.perf_counter() - started
    p50, p90, p99 = np.percentile(samples * 1e3, [50, 90, 99])
    return LatencyStats(name, iterations, float(p50), float(p90), float(p99),
                        float(samples.mean() * 1e3), iterations / total)


def _optional(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


@dataclass(frozen=True)
class Configuration:
    """One way to run the torch backend: a rung of the optimisation ladder."""

    label: str
    attention: str = "sdpa"
    precision: str | None = "fp32"
    compile: str = "none"


def optimisation_ladder(device: str, reduced_precision: str | None = None,
                        compile_mode: str = "none") -> list[Configuration]:
    """Stock eager fp32 → SDPA → bf16/fp16 → compile → CUDA graphs; each adds one change.

    On the CPU autocast and CUDA graphs do not apply, so the ladder stops after SDPA (plus a
    compiled rung when ``compile_mode`` asks for it).
    """
    steps = [Configuration("stock eager fp32", "stock", "fp32"),
             Configuration("sdpa eager fp32", "sdpa", "fp32")]  # fmt: skip
    if device != "cuda":
        if compile_mode != "none":
            steps.append(Configuration(f"sdpa fp32 compile {compile_mode}", "sdpa", "fp32",
                                       compile_mode))  # fmt: skip
        return steps
    low = reduced_precision or "bf16"
    return [*steps,
            Configuration(f"sdpa eager {low}", "sdpa", low),
            Configuration(f"sdpa {low} compile", "sdpa", low, "default"),
            Configuration(f"sdpa {low} compile+cudagraphs", "sdpa", low, "reduce-overhead")]


def time_configuration(
    open_segmenter: Callable[[], Segmenter],
    name: str,
    warmup: int,
    iterations: int,
    full_frame_camera: tuple[int, int] | None = None,
) -> list[LatencyStats]:
    """Open a segmenter, time start-up, the first frame, then the model (and full frame) rows."""
    import dataclasses

    reset_peak_memory()
    started = time.perf_counter()
    segmenter = open_segmenter()
    startup = time.perf_counter() - started
    try:
        step = model_only_step(segmenter)
        tick = time.perf_counter()
        step()
        first = time.perf_counter() - tick
        stats = measure_latency(name, step, max(warmup - 1, 0), iterations)
        rows = [dataclasses.replace(stats, startup_s=startup, first_frame_s=first,
                                    peak_memory_mb=peak_memory_mb(segmenter.device))]
        if full_frame_camera is not None:
            frame = measure_latency(f"{name} full frame", full_frame_step(
                segmenter, full_frame_camera), warmup, iterations)  # fmt: skip
            rows.append(dataclasses.replace(frame, peak_memory_mb=peak_memory_mb(
                segmenter.device)))  # fmt: skip
    finally:
        segmenter.close()
    return rows


_BASELINE_USED: list[int] = []


def reset_peak_memory() -> None:
    """Start a new GPU memory window: remember the device's used memory (no-op on the CPU)."""
    torch = _cuda_torch()
    if torch is not None:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    used = _device_used_bytes()
    _BASELINE_USED[:] = [] if used is None else [used]


def peak_memory_mb(device: str) -> float | None:
    """GPU memory the backend holds since ``reset_peak_memory``; None on the CPU.

    The larger of torch's peak allocation and the growth of the GPU's used memory (read from
    the driver), so ONNX Runtime's CUDA arena and TensorRT's engine, activations and buffers
    count as well as torch's. Measured after the timed runs, when every arena has grown to its
    working size; other processes on the same GPU would add to it.
    """
    if device != "cuda":
        return None
    torch = _cuda_torch()
    peaks = [torch.cuda.max_memory_allocated()] if torch is not None else []
    used = _device_used_bytes()
    if used is not None and _BASELINE_USED:
        peaks.append(used - _BASELINE_USED[0])
    return max(peaks) / 2**20 if peaks else None


def _device_used_bytes() -> int | None:
    """Return GPU 0's used memory from the driver (via torch if loaded, else cuda-python)."""
    torch = _cuda_torch()
    if torch is not None:
        free, total = torch.cuda.mem_get_info()
        return int(total - free)
    try:
        from mlesam_ros.engine import cuda_runtime

        return cuda_runtime.memory_used_bytes() if cuda_runtime.device_count() else None
    except (ImportError, ValueError):
        return None


def _cuda_torch():
    import sys

    torch = sys.modules.get("torch")  # never import torch just to ask
    return torch if torch is not None and torch.cuda.is_available() else None


def cuda_visible() -> bool:
    """Whether torch or onnxruntime can use an NVIDIA GPU here."""
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    try:
        from mlesam_ros.engine.backends.onnxruntime_backend import cuda_available
    except ImportError:
        return False
    return cuda_available()


def model_only_step(segmenter: Segmenter, seed: int = 0) -> Callable[[], object]:
    """One inference on a fixed random frame with every modality present."""
    rng = np.random.default_rng(seed)
    shape = (1, len(segmenter.modalities), 3, *segmenter.input_size)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8).astype(np.float32)
    present = np.ones((1, len(segmenter.modalities)), dtype=bool)
    return lambda: segmenter.segment(images, present, copy=False)


def machine_info() -> dict[str, object]:
    """CPU model and core count, GPU name (if torch sees one), Python and OS."""
    info: dict[str, object] = {"cpu": _cpu_model(), "cpu_cores": _cpu_count(),
                               "gpu": _gpu_name(), "python": platform.python_version(),
                               "os": platform.platform(terse=True)}
    info.update(_versions())
    return info


def _versions() -> dict[str, object]:
    """torch/CUDA/driver and onnxruntime versions, for a table someone can reproduce."""
    versions: dict[str, object] = {}
    try:
        import torch

        versions["torch"] = torch.__version__
        if torch.cuda.is_available():
            versions["cuda"] = torch.version.cuda
            versions["cudnn"] = torch.backends.cudnn.version()
            versions["gpu_driver"] = _driver_version()
    except ImportError:
        pass
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return versions


def _driver_version() -> str:
    try:
        with open("/proc/driver/nvidia/version") as stream:
            return stream.readline().strip()
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 0


def _gpu_name() -> str:
    try:
        import torch
    except ImportError:
        return "none (torch not installed)"
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
