"""The real ``EngineBuilder``: TensorRT 10.3+ and 11's ONNX parser, builder and runtime.

Kept to the TensorRT calls only; naming, sidecars, staleness, the build plan (which precision
path each TensorRT takes) and rebuild decisions live in ``engine_cache`` so they are tested
without a GPU. The calls used here exist under the same names in TensorRT 10.3 to 11.x, except
``BuilderFlag.FP16`` (gone in 11, used only when ``plan.fp16_flag``) and
``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (needed on 10, deprecated and ignored on 11,
where every network is strongly typed). The GPU is queried through cuda-python, not torch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import tensorrt as trt

from mlesam_ros.engine import cuda_runtime
from mlesam_ros.engine.engine_cache import (
    BuildOptions,
    BuildPlan,
    EngineError,
    EngineTarget,
    check_tensorrt_version,
)
from mlesam_ros.engine.onnx_export import read_spec

LOG = logging.getLogger(__name__)


def tensorrt_available() -> bool:
    """Tell whether a supported TensorRT imported (this module loaded) and a GPU is visible."""
    try:
        check_tensorrt_version(trt.__version__)
    except EngineError as error:
        LOG.warning("%s", error)
        return False
    return cuda_runtime.device_count() > 0


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


def network_flags(plan: BuildPlan) -> int:
    """``create_network`` flags: STRONGLY_TYPED on TensorRT 10 when asked, none on 11.

    TensorRT 11 always builds strongly typed networks and keeps the flag only as a deprecated,
    ignored name (with another value than in 10), so it is not passed there.
    """
    major, _ = check_tensorrt_version(trt.__version__)
    if plan.strongly_typed and major == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


class TensorRTBuilder:
    """Build and deserialize engines for GPU ``device_index`` with TensorRT's Python API."""

    def __init__(self, device_index: int = 0) -> None:
        check_tensorrt_version(trt.__version__)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._device_index = device_index
        cuda_runtime.set_device(device_index)
        self._runtime = trt.Runtime(self._logger)

    def target(self) -> EngineTarget:
        """TensorRT version and this GPU's name and compute capability."""
        if cuda_runtime.device_count() <= self._device_index:
            raise EngineError("backend tensorrt: no CUDA GPU visible; use onnxruntime or torch")
        name, capability = cuda_runtime.device_properties(self._device_index)
        return EngineTarget(trt.__version__, capability, name)

    def build(self, onnx_path: Path, plan: BuildPlan, options: BuildOptions) -> bytes:
        """Parse ``onnx_path`` and build a serialized engine.

        Static shapes need no profile; a graph with a dynamic batch gets one optimisation
        profile for 1 to ``options.max_batch`` frames, tuned for ``max_batch``.
        """
        builder = trt.Builder(self._logger)
        network = builder.create_network(network_flags(plan))
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f"engine: TensorRT could not parse {onnx_path}: {errors}; "
                              "re-export it with `mlesam export`")  # fmt: skip
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
        if plan.fp16_flag:
            if not hasattr(trt.BuilderFlag, "FP16"):  # plan_build never asks for it on 11
                raise EngineError(f"TensorRT {trt.__version__} has no fp16 builder flag; build "
                                  "with typing strong")  # fmt: skip
            config.set_flag(trt.BuilderFlag.FP16)
        if not plan.tf32:
            config.clear_flag(trt.BuilderFlag.TF32)  # fp32 engines compute in fp32
        if read_spec(onnx_path).dynamic_batch:
            self._add_batch_profile(builder, network, config, options.max_batch)
        config.progress_monitor = _ProgressLog()
        cache_path = Path(options.timing_cache) if options.timing_cache else None
        if cache_path is not None:
            self._use_timing_cache(config, cache_path)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineError(f"engine: TensorRT failed to build an engine from {onnx_path} (see "
                              "the TensorRT log above)")  # fmt: skip
        if cache_path is not None:
            self._save_timing_cache(config, cache_path)
        return bytes(serialized)

    @staticmethod
    def _add_batch_profile(builder: Any, network: Any, config: Any, max_batch: int) -> None:
        """One optimisation profile for a dynamic batch: 1 to ``max_batch`` frames."""
        inputs = [network.get_input(i) for i in range(network.num_inputs)]
        profile = builder.create_optimization_profile()
        for tensor in inputs:
            rest = tuple(int(v) for v in tuple(tensor.shape)[1:])
            profile.set_shape(tensor.name, (1, *rest), (max_batch, *rest), (max_batch, *rest))
        config.add_optimization_profile(profile)

    @staticmethod
    def _use_timing_cache(config: Any, path: Path) -> None:
        """Attach the timing cache at ``path``; a foreign or damaged one is replaced by a new one.

        ``set_timing_cache`` returns False (it does not raise) when the cache was written by
        another GPU or TensorRT; the build then runs without one and ``get_timing_cache`` would
        fail after the build, so a fresh cache is attached instead.
        """
        cached = path.read_bytes() if path.is_file() else b""
        if config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False):
            return
        LOG.warning("timing cache %s is from another GPU or TensorRT; starting a new one", path)
        if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
            LOG.warning("TensorRT refused an empty timing cache; building without one")

    @staticmethod
    def _save_timing_cache(config: Any, path: Path) -> None:
        """Write the updated timing cache; a failure costs the cache, never the engine."""
        try:
            cache = config.get_timing_cache()
            if cache is None:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes(cache.serialize()))
        except Exception as error:  # OSError, or TensorRT's RuntimeError on serialisation
            LOG.warning("could not save the timing cache %s: %s", path, error)

    def deserialize(self, data: bytes) -> Any:
        """Return an ``ICudaEngine``; raise when TensorRT rejects the bytes (it returns None)."""
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine")
        return engine
