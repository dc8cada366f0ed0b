"""TensorRT 10 backend: tensors by name, torch CUDA buffers, one CUDA stream.

Loads an engine through ``engine_cache.ensure_engine`` (so a stale or foreign engine is rebuilt
from its ONNX), binds every I/O tensor to a pre-allocated device tensor once, and per frame does
pinned H2D copies, ``execute_async_v3`` and pinned D2H copies on its own stream.
"""

from __future__ import annotations

from pathlib import Path

import tensorrt as trt
import torch

from mlesam_ros.engine.backends.base import Backend
from mlesam_ros.engine.engine_cache import BuildOptions, ensure_engine
from mlesam_ros.engine.tensorrt_build import TensorRTBuilder

_TORCH_DTYPES = {
    trt.float32: torch.float32,
    trt.float16: torch.float16,
    trt.int32: torch.int32,
    trt.int64: torch.int64,
    trt.bool: torch.bool,
    trt.uint8: torch.uint8,
}


class TensorRTBackend(Backend):
    """Runs a serialized engine (or builds one from ONNX on first use)."""

    name = "tensorrt"

    def __init__(
        self, artefact: str | Path, options: BuildOptions | None = None, rebuild: bool = True
    ) -> None:
        artefact = Path(artefact)
        self.device = "cuda"
        is_onnx = artefact.suffix == ".onnx"
        loaded = ensure_engine(
            TensorRTBuilder(),
            onnx_path=artefact if is_onnx else None,
            engine_path=None if is_onnx else artefact,
            options=options,
            rebuild=rebuild,
        )
        self.engine_path = loaded.path
        self.spec = loaded.spec
        self._engine = loaded.engine
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream()
        self._device_tensors: dict[str, torch.Tensor] = {}
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            shape = tuple(self._engine.get_tensor_shape(name))
            dtype = _TORCH_DTYPES[self._engine.get_tensor_dtype(name)]
            tensor = torch.zeros(shape, dtype=dtype, device="cuda")
            self._context.set_tensor_address(name, tensor.data_ptr())
            self._device_tensors[name] = tensor
        self._allocate_pinned()

    def _allocate_pinned(self) -> None:
        spec = self.spec
        present_dtype = torch.bool if spec.present_dtype == "bool" else torch.float32
        self._host_images = torch.zeros(spec.images_shape, dtype=torch.float32, pin_memory=True)
        self._host_present = torch.ones((1, len(spec.modalities)), dtype=present_dtype,
                                        pin_memory=True)
        self._host_labels = torch.zeros(spec.input_size, dtype=getattr(torch, spec.label_dtype),
                                        pin_memory=True)
        self._host_confidence = torch.zeros(spec.input_size, dtype=torch.float32,
                                            pin_memory=True)
        self.images, self.present = self._host_images.numpy(), self._host_present.numpy()
        self.labels, self.confidence = self._host_labels.numpy(), self._host_confidence.numpy()

    def run(self) -> None:
        """One frame on the backend's stream; returns after the outputs reached host memory."""
        tensors = self._device_tensors
        with torch.cuda.stream(self._stream):
            tensors["images"].copy_(self._host_images, non_blocking=True)
            tensors["present"].copy_(self._host_present, non_blocking=True)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution failed for {self.engine_path}")
            if self.spec.output == "logits":
                confidence, labels = tensors["logits"][0].float().softmax(dim=0).max(dim=0)
            else:
                labels, confidence = tensors["labels"][0], tensors["confidence"][0]
            self._host_labels.copy_(labels, non_blocking=True)
            self._host_confidence.copy_(confidence, non_blocking=True)
        self._stream.synchronize()

    def close(self) -> None:
        """Free the context, engine and device buffers."""
        self._context = self._engine = None
        self._device_tensors.clear()
