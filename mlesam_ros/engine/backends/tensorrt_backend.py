"""TensorRT backend: tensors by name, cuda-python buffers, one non-blocking CUDA stream.

Loads an engine through ``engine_cache.ensure_engine`` (so a stale or foreign engine is rebuilt
from its ONNX), checks its I/O tensors against the model spec, binds every I/O tensor to a
device buffer once, and per frame queues pinned H2D copies, ``execute_async_v3`` and pinned D2H
copies on its own stream. No torch: buffers and the stream come from cuda-python, which TensorRT
itself uses, so the backend runs on a Jetson with JetPack's TensorRT and no CUDA torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorrt as trt

from mlesam_ros.engine import cuda_runtime
from mlesam_ros.engine.backends.base import Backend, LogitsToLabels
from mlesam_ros.engine.engine_cache import BuildOptions, EngineError, ensure_engine
from mlesam_ros.engine.tensorrt_build import TensorRTBuilder


class TensorRTBackend(Backend):
    """Runs a serialized engine (or builds one from ONNX on first use)."""

    name = "tensorrt"

    def __init__(
        self, artefact: str | Path, options: BuildOptions | None = None, rebuild: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:  # fmt: skip
        artefact = Path(artefact)
        self.device = "cuda"
        is_onnx = artefact.suffix == ".onnx"
        loaded = ensure_engine(
            TensorRTBuilder(),
            onnx_path=artefact if is_onnx else None,
            engine_path=None if is_onnx else artefact,
            options=options,
            rebuild=rebuild,
            cache_dir=cache_dir,
        )
        self.engine_path = loaded.path
        self.rebuilt, self.rebuild_reasons = loaded.rebuilt, loaded.reasons
        self.spec = loaded.spec
        self._engine = loaded.engine
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"engine: TensorRT could not create an execution context for "
                              f"{self.engine_path} (out of GPU memory?)")  # fmt: skip
        self._stream = cuda_runtime.Stream()
        self._device: dict[str, cuda_runtime.DeviceBuffer] = {}
        self._host: dict[str, cuda_runtime.PinnedArray] = {}
        for name, (shape, dtype) in self._io_tensors().items():
            host = cuda_runtime.PinnedArray(shape, dtype)
            device = cuda_runtime.DeviceBuffer(host.array.nbytes, self._stream)
            self._context.set_tensor_address(name, device.pointer)
            self._host[name], self._device[name] = host, device
        self._stream.synchronize()  # the zeroing is done before the first frame
        self._inputs = ("images", "present")
        self._outputs = tuple(name for name in self._host if name not in self._inputs)
        self.images = self._host["images"].array
        self.present = self._host["present"].array
        if self.spec.output == "logits":
            self.labels = np.zeros(self.spec.input_size, dtype=self.spec.label_dtype)
            self.confidence = np.zeros(self.spec.input_size, dtype=np.float32)
            self._postprocess = LogitsToLabels(self.spec)
        else:
            self.labels = self._host["labels"].array[0]
            self.confidence = self._host["confidence"].array[0]
            self.routing = None
            if "routing_weights" in self._host:
                self.routing = self._host["routing_weights"].array[0]

    def _io_tensors(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Name → (shape, numpy dtype) of every I/O tensor, checked against the model spec."""
        spec, engine = self.spec, self._engine
        height, width = spec.input_size
        expected = {"images": spec.images_shape, "present": (1, len(spec.modalities))}
        if spec.output == "logits":
            expected["logits"] = (1, spec.num_classes, height, width)
        else:
            expected.update({"labels": (1, height, width), "confidence": (1, height, width)})
            if spec.routing_shape is not None:
                expected["routing_weights"] = spec.routing_shape
        found = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            shape = tuple(int(v) for v in engine.get_tensor_shape(name))
            found[name] = (shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
        if {name: shape for name, (shape, _) in found.items()} != expected:
            shown = {name: list(shape) for name, (shape, _) in found.items()}
            raise EngineError(
                f"engine: {self.engine_path} has I/O tensors {shown}, but its sidecar's model "
                f"needs {({k: list(v) for k, v in expected.items()})}; rebuild it with "
                "`mlesam build-engine --force`"
            )
        return found

    def run(self) -> None:
        """One frame on the backend's stream; returns after the outputs reached host memory."""
        stream = self._stream
        for name in self._inputs:
            cuda_runtime.copy_to_device(self._device[name], self._host[name], stream)
        if not self._context.execute_async_v3(stream.handle):
            raise EngineError(f"engine: TensorRT execution failed for {self.engine_path}")
        for name in self._outputs:
            cuda_runtime.copy_to_host(self._host[name], self._device[name], stream)
        stream.synchronize()
        if self.spec.output == "logits":
            logits = self._host["logits"].array.astype(np.float32, copy=False)
            self._postprocess(logits, self.labels, self.confidence)

    def close(self) -> None:
        """Free the context, engine, buffers and stream."""
        self._context = self._engine = None
        for buffer in (*self._device.values(), *self._host.values()):
            buffer.close()
        self._device.clear()
        self._host.clear()
        if self._stream is not None:
            self._stream.close()
            self._stream = None
