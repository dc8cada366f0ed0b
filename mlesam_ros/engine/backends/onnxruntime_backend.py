"""ONNX Runtime backend (CUDA or CPU provider) with IO binding to pre-allocated buffers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from mlesam_ros.engine.backends.base import Backend, LogitsToLabels
from mlesam_ros.engine.onnx_export import read_spec


def cuda_available() -> bool:
    """Whether this onnxruntime build can run on a GPU."""
    return "CUDAExecutionProvider" in ort.get_available_providers()


class OnnxRuntimeBackend(Backend):
    """Runs an exported ONNX file; outputs are written straight into the host buffers."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int = 0) -> None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: onnxruntime runs on 'cpu' or 'cuda', not {device!r}")
        if device == "cuda" and not cuda_available():
            raise ValueError(
                "device: cuda requested but onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu) — use device cpu"
            )
        self.device = device
        self.spec = read_spec(onnx_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else [
            "CPUExecutionProvider"
        ]
        try:
            self._session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as error:  # onnxruntime's pybind errors (InvalidGraph, Fail, ...)
            raise ValueError(
                f"model: onnxruntime cannot load {onnx_path}: {' '.join(str(error).split())}; "
                "re-export it with `mlesam export`"
            ) from error
        self._allocate_host(self.spec)
        self._binding = self._session.io_binding()
        self._device_inputs: list[tuple[ort.OrtValue, np.ndarray]] = []
        for name, host in (("images", self.images), ("present", self.present)):
            if device == "cuda":
                # Device-resident inputs, refreshed in place each frame (one H2D copy each).
                value = ort.OrtValue.ortvalue_from_shape_and_type(
                    host.shape, host.dtype, "cuda", 0
                )
                self._binding.bind_ortvalue_input(name, value)
                self._device_inputs.append((value, host))
            else:
                self._binding.bind_input(
                    name, "cpu", 0, host.dtype, list(host.shape), host.ctypes.data
                )
        if self.spec.output == "logits":
            self._logits = np.zeros((1, self.spec.num_classes, *self.spec.input_size), np.float32)
            self._postprocess = LogitsToLabels(self.spec)
            self._bind_output("logits", self._logits)
        else:
            self._bind_output("labels", self.labels[None])
            self._bind_output("confidence", self.confidence[None])

    def _bind_output(self, name: str, buffer: np.ndarray) -> None:
        self._binding.bind_output(name, "cpu", 0, buffer.dtype, list(buffer.shape),
                                  buffer.ctypes.data)

    def run(self) -> None:
        """One inference; the bound output buffers are filled in place."""
        for value, host in self._device_inputs:
            value.update_inplace(host)
        self._session.run_with_iobinding(self._binding)
        if self.spec.output == "logits":
            self._postprocess(self._logits, self.labels, self.confidence)

    def close(self) -> None:
        """Drop the session (frees its arena)."""
        self._binding = None
        self._session = None
