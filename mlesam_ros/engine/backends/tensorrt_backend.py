"""TensorRT backend: tensors by name, cuda-python buffers, one non-blocking CUDA stream.

Loads an engine through ``engine_cache.ensure_engine`` (so a stale or foreign engine is rebuilt
from its ONNX), checks its I/O tensors against the model spec, binds every I/O tensor to a
device buffer once, and per batch queues pinned H2D copies, ``execute_async_v3`` and pinned D2H
copies on its own stream. An engine of a static batch runs all its frames every call; one
built from a dynamic-batch ONNX has an optimisation profile (1 to ``max_batch`` frames) and
runs as many frames as the call brings (``set_input_shape``), copying only those.

No torch: buffers and the stream come from cuda-python, which TensorRT
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
        self.capacity = self.batch_capacity(self.spec, options.max_batch if options else 1)
        self._rows = 0
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
            self.labels = np.zeros((self.capacity, *self.spec.input_size),
                                   dtype=self.spec.label_dtype)  # fmt: skip
            self.confidence = np.zeros((self.capacity, *self.spec.input_size), dtype=np.float32)
            self._postprocess = LogitsToLabels(self.spec)
        else:
            self.labels = self._host["labels"].array
            self.confidence = self._host["confidence"].array
            self.routing = None
            if "routing_weights" in self._host:
                self.routing = self._host["routing_weights"].array

    def _io_tensors(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Name → (buffer shape, numpy dtype) of every I/O tensor, checked against the spec.

        A dynamic batch shows as -1 in the engine; its buffers hold ``capacity`` frames.
        """
        spec, engine = self.spec, self._engine
        height, width = spec.input_size
        rows = -1 if spec.dynamic_batch else spec.batch
        expected = {"images": (rows, *spec.images_shape[1:]),
                    "present": (rows, len(spec.modalities))}  # fmt: skip
        if spec.output == "logits":
            expected["logits"] = (rows, spec.num_classes, height, width)
        else:
            expected.update({"labels": (rows, height, width), "confidence": (rows, height, width)})
            if spec.routing_shape is not None:
                expected["routing_weights"] = (rows, *spec.routing_shape[1:])
        found = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            shape = tuple(int(v) for v in engine.get_tensor_shape(name))
            found[name] = (shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
        if {name: shape for name, (shape, _) in found.items()} == expected and rows == -1:
            return {name: ((self.capacity, *shape[1:]), dtype)
                    for name, (shape, dtype) in found.items()}  # fmt: skip
        if {name: shape for name, (shape, _) in found.items()} != expected:
            shown = {name: list(shape) for name, (shape, _) in found.items()}
            raise EngineError(
                f"engine: {self.engine_path} has I/O tensors {shown}, but its sidecar's model "
                f"needs {({k: list(v) for k, v in expected.items()})}; rebuild it with "
                "`mlesam build-engine --force`"
            )
        return found

    def run(self, rows: int = 1) -> None:
        """One batch on the backend's stream; returns after the outputs reached host memory.

        A static batch runs every frame; a dynamic one the first ``rows``.
        """
        stream = self._stream
        rows = rows if self.spec.dynamic_batch else self.capacity
        if self.spec.dynamic_batch and rows != self._rows:
            for name in self._inputs:
                shape = (rows, *self._host[name].array.shape[1:])
                if not self._context.set_input_shape(name, shape):
                    raise EngineError(f"engine: {self.engine_path} refused {name} of shape "
                                      f"{shape} (outside its optimisation profile)")  # fmt: skip
            self._rows = rows

        def used(name: str) -> int:  # bytes of the first ``rows`` frames
            array = self._host[name].array
            return array.nbytes // array.shape[0] * rows

        for name in self._inputs:
            cuda_runtime.copy_to_device(self._device[name], self._host[name], stream, used(name))
        if not self._context.execute_async_v3(stream.handle):
            raise EngineError(f"engine: TensorRT execution failed for {self.engine_path}")
        for name in self._outputs:
            cuda_runtime.copy_to_host(self._host[name], self._device[name], stream, used(name))
        stream.synchronize()
        if self.spec.output == "logits":
            logits = self._host["logits"].array[:rows].astype(np.float32, copy=False)
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
