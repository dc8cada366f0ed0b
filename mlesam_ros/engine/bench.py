"""Latency measurement for ``mlesam bench``: warm-up, N timed runs, percentiles, machine info.

``measure_latency`` times any zero-argument step, so each path through the system is one
step function: ``model_only_step`` today; the full frame path (conversion, projection,
preprocessing, inference, postprocessing) becomes another step built from the pipeline and
passed to ``measure_latency`` the same way, adding one row to the report.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

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
        header = f"{'path':<14}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'fps':>9}"
        rows = [f"{r.name:<14}{r.p50_ms:>10.2f}{r.p90_ms:>10.2f}{r.p99_ms:>10.2f}"
                f"{r.mean_ms:>10.2f}{r.fps:>9.2f}" for r in self.results]
        context = [f"{key}: {value}" for key, value in {**self.machine, **self.setup}.items()]
        return "\n".join([*context, "", header, "-" * len(header), *rows])


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
    return info


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
