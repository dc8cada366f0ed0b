"""The real ``EngineBuilder``: TensorRT 10's ONNX parser, builder and runtime.

Kept to the TensorRT calls only; naming, sidecars, staleness and rebuild decisions live in
``engine_cache`` so they are tested without a GPU.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import tensorrt as trt

from mlesam_ros.engine.engine_cache import BuildOptions, EngineTarget

LOG = logging.getLogger(__name__)


def tensorrt_available() -> bool:
    """TensorRT imports (this module loaded) and a CUDA GPU is visible."""
    try:
        import torch
    except ImportError:  # the TensorRT backend allocates its buffers with torch
        return False
    return torch.cuda.is_available()


class _ProgressLog(trt.IProgressMonitor):
    """Logs build phases: an engine build takes minutes and looks hung without it."""

    def __init__(self) -> None:
        trt.IProgressMonitor.__init__(self)
        self._started: dict[str, float] = {}

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        self._started[phase_name] = time.monotonic()
        LOG.info("TensorRT build: %s (%d steps)", phase_name, num_steps)

    def step_complete(self, phase_name: str, step: int) -> bool:
        return True  # never cancel

    def phase_finish(self, phase_name: str) -> None:
        elapsed = time.monotonic() - self._started.pop(phase_name, time.monotonic())
        LOG.info("TensorRT build: %s done in %.1f s", phase_name, elapsed)


class TensorRTBuilder:
    """Build and deserialize engines for GPU ``device_index`` with TensorRT's Python API."""

    def __init__(self, device_index: int = 0) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._device_index = device_index
        self._runtime = trt.Runtime(self._logger)

    def target(self) -> EngineTarget:
        """TensorRT version and this GPU's compute capability and name."""
        import torch

        if not torch.cuda.is_available():
            raise ValueError("backend tensorrt: no CUDA GPU visible; use onnxruntime or torch")
        capability = torch.cuda.get_device_capability(self._device_index)
        name = torch.cuda.get_device_name(self._device_index)
        return EngineTarget(trt.__version__, (int(capability[0]), int(capability[1])), name)

    def build(self, onnx_path: Path, options: BuildOptions) -> bytes:
        """Parse ``onnx_path`` and build a serialized engine (static shapes: no profiles)."""
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
        if options.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        config.progress_monitor = _ProgressLog()
        cache_path = options.timing_cache
        if cache_path is not None:
            cached = Path(cache_path).read_bytes() if Path(cache_path).is_file() else b""
            config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see log)")
        if cache_path is not None:
            Path(cache_path).write_bytes(bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)

    def deserialize(self, data: bytes) -> Any:
        """Return an ``ICudaEngine``; raise when TensorRT rejects the bytes (it returns None)."""
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine")
        return engine
