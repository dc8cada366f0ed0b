"""ONNX Runtime backend (CUDA or CPU provider) with IO binding to pre-allocated buffers.

On a GPU (``pip install -e '.[gpu]'``, i.e. ``onnxruntime-gpu`` in place of the CPU
``onnxruntime`` wheel) the inputs live in device ``OrtValue``s refreshed in place each frame
and the outputs are bound to the backend's host buffers, so ONNX Runtime copies them back
itself and nothing is allocated per frame.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mlesam_ros.engine.backends.base import Backend, LogitsToLabels
from mlesam_ros.engine.onnx_export import read_spec


def cuda_available() -> bool:
    """Whether this onnxruntime build has the CUDA provider *and* an NVIDIA GPU is present.

    ``get_available_providers`` lists what the wheel was built with, not the hardware, so
    ``onnxruntime-gpu`` on a GPU-less machine would otherwise be chosen and fail.
    """
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return _gpu_present()


def _gpu_present() -> bool:
    """Tell whether the NVIDIA driver lists a GPU, this is a Jetson, or torch sees CUDA.

    The driver is asked first because robots often run a CPU-only torch beside
    onnxruntime-gpu; torch is only the fallback (e.g. WSL, where /proc has no NVIDIA entry).
    """
    gpus = Path("/proc/driver/nvidia/gpus")
    if (gpus.is_dir() and any(gpus.iterdir())) or Path("/etc/nv_tegra_release").is_file():
        return True
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _preload_cuda_libraries() -> None:
    """Let onnxruntime-gpu find cuDNN/cuBLAS in the nvidia-* wheels torch brought (ORT ≥ 1.21)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        # Best effort: if libraries are still missing, session creation says which.
        with contextlib.suppress(Exception):
            preload()


class OnnxRuntimeBackend(Backend):
    """Runs an exported ONNX file; outputs are written straight into the host buffers."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int = 0,
                 max_batch: int = 1) -> None:  # fmt: skip
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: onnxruntime runs on 'cpu' or 'cuda', not {device!r}")
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                "device: cuda requested but onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu) — use device cpu"
            )
        self.device = device
        self.spec = read_spec(onnx_path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        if device == "cuda":
            _preload_cuda_libraries()
            # EXHAUSTIVE conv search once at start-up; copies on the default stream keep the
            # IO-bound inputs ordered with the kernels.
            cuda_options = {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE",
                            "do_copy_in_default_stream": True}  # fmt: skip
            providers = [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as error:  # onnxruntime's pybind errors (InvalidGraph, Fail, ...)
            raise ValueError(
                f"model: onnxruntime cannot load {onnx_path}: {' '.join(str(error).split())}; "
                "re-export it with `mlesam export`"
            ) from error
        if device == "cuda" and "CUDAExecutionProvider" not in self._session.get_providers():
            raise ValueError(
                "device: onnxruntime could not start its CUDA provider (CUDA/cuDNN libraries "
                "missing or no GPU; see the onnxruntime log above) — use device cpu"
            )
        self._allocate_host(self.spec, self.batch_capacity(self.spec, max_batch))
        self._binding = self._session.io_binding()
        self._device_inputs: dict[int, list[tuple[ort.OrtValue, np.ndarray]]] = {}
        if self.spec.output == "logits":
            self._logits = np.zeros((self.capacity, self.spec.num_classes, *self.spec.input_size),
                                    np.float32)  # fmt: skip
            self._postprocess = LogitsToLabels(self.spec)
        self._bound_rows = 0
        self._bind(self.capacity)

    def _bind(self, rows: int) -> None:
        """Bind the first ``rows`` frames of every buffer (a dynamic batch runs what came)."""
        if rows == self._bound_rows:
            return
        inputs = (("images", self.images[:rows]), ("present", self.present[:rows]))
        if self.device == "cuda":
            # Device-resident inputs, refreshed in place each call (one H2D copy each); one
            # set per batch size a dynamic graph has run.
            values = self._device_inputs.get(rows)
            if values is None:
                values = self._device_inputs[rows] = [
                    (ort.OrtValue.ortvalue_from_shape_and_type(host.shape, host.dtype, "cuda", 0),
                     host) for _, host in inputs]  # fmt: skip
            for (name, _), (value, _) in zip(inputs, values, strict=True):
                self._binding.bind_ortvalue_input(name, value)
        else:
            for name, host in inputs:
                self._binding.bind_input(name, "cpu", 0, host.dtype, list(host.shape),
                                         host.ctypes.data)  # fmt: skip
        if self.spec.output == "logits":
            self._bind_output("logits", self._logits[:rows])
        else:
            self._bind_output("labels", self.labels[:rows])
            self._bind_output("confidence", self.confidence[:rows])
            if self.routing is not None:
                self._bind_output("routing_weights", self.routing[:rows])
        self._bound_rows = rows

    def _bind_output(self, name: str, buffer: np.ndarray) -> None:
        self._binding.bind_output(name, "cpu", 0, buffer.dtype, list(buffer.shape),
                                  buffer.ctypes.data)

    def run(self, rows: int = 1) -> None:
        """One inference of ``rows`` frames (all ``capacity`` for a static batch), in place."""
        rows = self.capacity if not self.spec.dynamic_batch else rows
        self._bind(rows)
        for value, host in self._device_inputs.get(rows, ()):
            value.update_inplace(host)
        self._session.run_with_iobinding(self._binding)
        if self.spec.output == "logits":
            self._postprocess(self._logits[:rows], self.labels, self.confidence)

    def close(self) -> None:
        """Drop the session (frees its arena)."""
        self._binding = None
        self._session = None
