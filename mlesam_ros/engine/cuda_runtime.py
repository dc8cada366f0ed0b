"""The few CUDA runtime calls the TensorRT backend needs, through cuda-python (no torch).

TensorRT needs device buffers, a stream and the GPU's name and compute capability. cuda-python
(``cuda.bindings.runtime``, the module TensorRT's own samples use) provides them on x86_64 and
ARM (Jetson) alike, so a robot with TensorRT and no CUDA build of torch can run the backend.
Every call returns ``(error, *values)``; ``check`` turns a non-zero error into ``CudaError``
(an ``EngineError``, so the node reports it as a configuration error, not a traceback).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np

from mlesam_ros.engine.engine_cache import EngineError


class CudaError(EngineError):
    """A CUDA runtime call failed (no GPU, out of memory, driver too old, ...)."""


@functools.cache
def cudart() -> Any:
    """Return ``cuda.bindings.runtime`` (``cuda.cudart`` in cuda-python before 12.8)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # type: ignore[no-redef]
        except ImportError as error:
            raise ImportError(
                "cuda-python is not installed (the TensorRT backend allocates GPU memory with "
                "it); install it with `pip install -e '.[trt]'` (in the checkout)"
            ) from error
    return runtime


def check(result: Any, what: str) -> Any:
    """Unpack ``(error, *values)``; raise ``CudaError`` naming ``what`` when error != 0."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        runtime = cudart()
        name = runtime.cudaGetErrorName(error)[1]
        name = name.decode() if isinstance(name, bytes) else str(name)
        raise CudaError(f"CUDA {what} failed: {name}; check the NVIDIA driver and that a GPU is "
                        "visible (nvidia-smi), or use backend onnxruntime")  # fmt: skip
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_count() -> int:
    """Count the visible CUDA GPUs; 0 when cuda-python, the driver or a GPU is missing."""
    try:
        runtime = cudart()
    except ImportError:
        return 0
    error, count = runtime.cudaGetDeviceCount()
    return int(count) if int(error) == 0 else 0


def device_properties(index: int = 0) -> tuple[str, tuple[int, int]]:
    """(name, (major, minor)) of GPU ``index``."""
    properties = check(cudart().cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = properties.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return str(name), (int(properties.major), int(properties.minor))


def set_device(index: int) -> None:
    """Make GPU ``index`` current for this thread."""
    check(cudart().cudaSetDevice(index), f"cudaSetDevice({index})")


def memory_used_bytes() -> int:
    """Device memory in use on the current GPU by every process and allocator."""
    free, total = check(cudart().cudaMemGetInfo(), "cudaMemGetInfo")
    return int(total) - int(free)


class Stream:
    """A non-blocking CUDA stream (does not wait for the legacy default stream)."""

    def __init__(self) -> None:
        runtime = cudart()
        flags = runtime.cudaStreamNonBlocking
        self._handle = check(runtime.cudaStreamCreateWithFlags(flags), "cudaStreamCreate")

    @property
    def handle(self) -> int:
        """The ``cudaStream_t`` as an integer (what ``execute_async_v3`` takes)."""
        return int(self._handle)

    def synchronize(self) -> None:
        """Wait until everything queued on this stream has finished."""
        check(cudart().cudaStreamSynchronize(self._handle), "cudaStreamSynchronize")

    def close(self) -> None:
        """Destroy the stream (idempotent)."""
        if self._handle is not None:
            check(cudart().cudaStreamDestroy(self._handle), "cudaStreamDestroy")
            self._handle = None


class DeviceBuffer:
    """``nbytes`` of device memory, zeroed on ``stream`` (ordered with the work that follows)."""

    def __init__(self, nbytes: int, stream: Stream) -> None:
        runtime = cudart()
        self.nbytes = int(nbytes)
        self.pointer = int(check(runtime.cudaMalloc(max(self.nbytes, 1)), "cudaMalloc"))
        check(runtime.cudaMemsetAsync(self.pointer, 0, self.nbytes, stream.handle),
              "cudaMemsetAsync")  # fmt: skip

    def close(self) -> None:
        """Free the memory (idempotent)."""
        if self.pointer:
            check(cudart().cudaFree(self.pointer), "cudaFree")
            self.pointer = 0


class PinnedArray:
    """A numpy array in page-locked host memory (asynchronous copies need it)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        dtype = np.dtype(dtype)
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        self.pointer = int(check(cudart().cudaMallocHost(nbytes), "cudaMallocHost"))
        raw = ctypes.cast(ctypes.c_void_p(self.pointer), ctypes.POINTER(ctypes.c_ubyte))
        self.array = np.ctypeslib.as_array(raw, (nbytes,))[: int(np.prod(shape)) * dtype.itemsize]
        self.array = self.array.view(dtype).reshape(shape)
        self.array[...] = 0

    def close(self) -> None:
        """Free the memory (idempotent); the array must not be used afterwards."""
        if self.pointer:
            check(cudart().cudaFreeHost(self.pointer), "cudaFreeHost")
            self.pointer = 0


def copy_to_device(buffer: DeviceBuffer, host: PinnedArray, stream: Stream,
                   nbytes: int | None = None) -> None:  # fmt: skip
    """Queue a host → device copy of the whole array (or its first ``nbytes``) on ``stream``."""
    runtime = cudart()
    count = host.array.nbytes if nbytes is None else int(nbytes)
    check(runtime.cudaMemcpyAsync(buffer.pointer, host.pointer, count,
                                  runtime.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle),
          "cudaMemcpyAsync (host to device)")  # fmt: skip


def copy_to_host(host: PinnedArray, buffer: DeviceBuffer, stream: Stream,
                 nbytes: int | None = None) -> None:  # fmt: skip
    """Queue a device → host copy of the whole array (or its first ``nbytes``) on ``stream``."""
    runtime = cudart()
    count = host.array.nbytes if nbytes is None else int(nbytes)
    check(runtime.cudaMemcpyAsync(host.pointer, buffer.pointer, count,
                                  runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle),
          "cudaMemcpyAsync (device to host)")  # fmt: skip
