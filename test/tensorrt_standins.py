"""Stand-ins for TensorRT 10 and 11's Python API and cuda-python's runtime, for GPU-less tests.

Each stand-in exposes the names the real module has *in that version* and nothing it lacks, so
code calling ``BuilderFlag.FP16`` on TensorRT 11, or leaning on a return value it ignores
(``set_timing_cache`` → False), fails here as it would on the robot. Names and enum values are
those of TensorRT's Python bindings (python/src/infer/pyCore.cpp) and headers (NvInfer.h) at the
10.3, 10.16 and 11.1 release tags. Engines run the ONNX they were built from with ONNX Runtime
on the CPU; "device" memory is host memory, and every asynchronous call is queued on its stream
and runs only at ``cudaStreamSynchronize``, so a missing synchronisation or a copy on the wrong
stream shows up as stale data.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from pathlib import Path

import numpy as np
import onnx

# BuilderFlag members and values per release (weak-typing flags gone in 11).
_BUILDER_FLAGS_10_3 = {
    "FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5,
    "TF32": 6, "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "OBEY_PRECISION_CONSTRAINTS": 9,
    "PREFER_PRECISION_CONSTRAINTS": 10, "DIRECT_IO": 11, "REJECT_EMPTY_ALGORITHMS": 12,
    "VERSION_COMPATIBLE": 13, "EXCLUDE_LEAN_RUNTIME": 14, "FP8": 15,
    "ERROR_ON_TIMING_CACHE_MISS": 16, "BF16": 17, "DISABLE_COMPILATION_CACHE": 18,
    "STRIP_PLAN": 19, "REFIT_IDENTICAL": 20, "WEIGHT_STREAMING": 21, "INT4": 22,
    "REFIT_INDIVIDUAL": 23,
}  # fmt: skip
_BUILDER_FLAGS_10_16 = {**_BUILDER_FLAGS_10_3, "STRICT_NANS": 24, "MONITOR_MEMORY": 25,
                        "FP4": 26, "EDITABLE_TIMING_CACHE": 27,
                        "DISTRIBUTIVE_INDEPENDENCE": 28}  # fmt: skip
_BUILDER_FLAGS_11 = {
    "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6,
    "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "DIRECT_IO": 11, "VERSION_COMPATIBLE": 12,
    "EXCLUDE_LEAN_RUNTIME": 13, "ERROR_ON_TIMING_CACHE_MISS": 15,
    "DISABLE_COMPILATION_CACHE": 17, "STRIP_PLAN": 18, "REFIT_IDENTICAL": 19,
    "WEIGHT_STREAMING": 20, "REFIT_INDIVIDUAL": 22, "STRICT_NANS": 23, "MONITOR_MEMORY": 24,
    "EDITABLE_TIMING_CACHE": 26, "DISTRIBUTIVE_INDEPENDENCE": 27,
}  # fmt: skip
# NetworkDefinitionCreationFlag: STRONGLY_TYPED is bit 1 on 10 and bit 0 (ignored) on 11.
_NETWORK_FLAGS = {
    "10.3.0": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1},
    "10.16.1": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2,
                "PREFER_AOT_PYTHON_PLUGINS": 3},
    "11.1.0": {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1,
               "PREFER_AOT_PYTHON_PLUGINS": 2},
}  # fmt: skip
_BUILDER_FLAGS = {"10.3.0": _BUILDER_FLAGS_10_3, "10.16.1": _BUILDER_FLAGS_10_16,
                  "11.1.0": _BUILDER_FLAGS_11}  # fmt: skip
VERSIONS = tuple(_BUILDER_FLAGS)
_ENGINE_MAGIC = b"STANDIN-TRT\n"
_CACHE_MAGIC = b"STANDIN-TIMING\n"

_ONNX_TO_DTYPE = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
                  onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT64: "int64",
                  onnx.TensorProto.BOOL: "bool", onnx.TensorProto.UINT8: "uint8"}  # fmt: skip


class _Queue:
    """Work queued per CUDA stream; runs at synchronisation (see the module docstring)."""

    def __init__(self) -> None:
        self.pending: dict[int, list] = {}
        self.allocations: dict[int, np.ndarray] = {}
        self.log: list[str] = []

    def enqueue(self, stream: int, work, what: str) -> None:
        self.log.append(f"{what}@{stream}")
        self.pending.setdefault(int(stream), []).append(work)

    def drain(self, stream: int) -> None:
        for work in self.pending.pop(int(stream), []):
            work()


def make_cudart(gpu_name: str = "NVIDIA H200", capability: tuple[int, int] = (9, 0),
                devices: int = 1) -> types.SimpleNamespace:  # fmt: skip
    """A ``cuda.bindings.runtime`` stand-in with the calls the backend makes."""
    queue = _Queue()

    # cuda-python's enum and member names.
    cudaError_t = enum.IntEnum("cudaError_t", {"cudaSuccess": 0, "cudaErrorNoDevice": 100})
    ok = cudaError_t.cudaSuccess
    cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", {"cudaMemcpyHostToDevice": 1,
                                                     "cudaMemcpyDeviceToHost": 2})  # fmt: skip

    def allocate(nbytes: int) -> int:
        array = np.zeros(max(int(nbytes), 1), np.uint8)
        queue.allocations[array.ctypes.data] = array
        return array.ctypes.data

    def get_device_count():
        return (ok, devices) if devices else (cudaError_t.cudaErrorNoDevice, None)

    def get_device_properties(index):
        if index >= devices:
            return (cudaError_t.cudaErrorNoDevice, None)
        return (ok, types.SimpleNamespace(name=gpu_name.encode() + b"\0" * 8,
                                          major=capability[0], minor=capability[1]))

    def memcpy_async(dst, src, count, kind, stream):
        queue.enqueue(stream, lambda: ctypes.memmove(int(dst), int(src), int(count)),
                      f"memcpy{int(kind)}")  # fmt: skip
        return (ok,)

    def memset_async(pointer, value, count, stream):
        queue.enqueue(stream, lambda: ctypes.memset(int(pointer), value, int(count)), "memset")
        return (ok,)

    streams = iter(range(0x1000, 0x2000))
    return types.SimpleNamespace(
        queue=queue, cudaError_t=cudaError_t, cudaMemcpyKind=cudaMemcpyKind,
        cudaStreamNonBlocking=1,
        cudaGetDeviceCount=get_device_count,
        cudaGetDeviceProperties=get_device_properties,
        cudaSetDevice=lambda index: (ok if index < devices else cudaError_t.cudaErrorNoDevice,),
        cudaGetErrorName=lambda error: (ok, cudaError_t(int(error)).name.encode()),
        cudaMemGetInfo=lambda: (ok, 100 << 30, 141 << 30),
        cudaStreamCreateWithFlags=lambda flags: (ok, next(streams)),
        cudaStreamSynchronize=lambda stream: (queue.drain(stream), (ok,))[1],
        cudaStreamDestroy=lambda stream: (ok,),
        cudaMalloc=lambda nbytes: (ok, allocate(nbytes)),
        cudaFree=lambda pointer: (queue.allocations.pop(int(pointer)), (ok,))[1],
        cudaMallocHost=lambda nbytes: (ok, allocate(nbytes)),
        cudaFreeHost=lambda pointer: (queue.allocations.pop(int(pointer)), (ok,))[1],
        cudaMemcpyAsync=memcpy_async,
        cudaMemsetAsync=memset_async,
    )  # fmt: skip


def make_tensorrt(version: str, cudart: types.SimpleNamespace) -> types.ModuleType:
    """A ``tensorrt`` module stand-in for ``version`` (one of ``VERSIONS``)."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", _BUILDER_FLAGS[version])
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                     _NETWORK_FLAGS[version])  # fmt: skip
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
    data_types = enum.IntEnum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3,
                                           "BOOL": 4, "UINT8": 5, "BF16": 7,
                                           "INT64": 8})  # fmt: skip
    trt.DataType = data_types
    by_numpy = {"float32": data_types.FLOAT, "float16": data_types.HALF,
                "int32": data_types.INT32, "int64": data_types.INT64, "bool": data_types.BOOL,
                "uint8": data_types.UINT8}  # fmt: skip
    for attribute, member in (("float32", "FLOAT"), ("float16", "HALF"), ("int32", "INT32"),
                              ("int64", "INT64"), ("bool", "BOOL"), ("uint8", "UINT8"),
                              ("int8", "INT8"), ("bfloat16", "BF16")):  # fmt: skip
        setattr(trt, attribute, data_types[member])
    numpy_by_type = {member: np.dtype(name) for name, member in by_numpy.items()}
    trt.nptype = lambda data_type: numpy_by_type[data_type].type
    trt.log: list[str] = []

    class Logger:
        WARNING = 2

        def __init__(self, severity: int = 2) -> None:
            self.severity = severity

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class TimingCache:
        def __init__(self, tag: bytes) -> None:
            self.tag = tag

        def serialize(self) -> bytes:
            return _CACHE_MAGIC + self.tag

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...]) -> None:
            self.name, self.shape = name, shape

    class INetworkDefinition:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.onnx: bytes | None = None

        def _inputs(self) -> list[ITensor]:
            graph = onnx.load_from_string(self.onnx).graph
            initialisers = {init.name for init in graph.initializer}
            return [ITensor(v.name, tuple(d.dim_value if d.HasField("dim_value") else -1
                                          for d in v.type.tensor_type.shape.dim))
                    for v in graph.input if v.name not in initialisers]  # fmt: skip

        @property
        def num_inputs(self) -> int:
            return len(self._inputs())

        def get_input(self, index: int) -> ITensor:
            return self._inputs()[index]

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, input: str, min, opt, max) -> None:  # TensorRT's names
            self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            self._network = network
            self._errors: list[str] = []

        def parse_from_file(self, model: str) -> bool:
            try:
                data = Path(model).read_bytes()
                onnx.checker.check_model(onnx.load_from_string(data))
            except Exception as error:
                self._errors.append(f"ModelImporter: {error}")
                return False
            self._network.onnx = data
            return True

        @property
        def num_errors(self) -> int:
            return len(self._errors)

        def get_error(self, index: int) -> str:
            return self._errors[index]

    class IBuilderConfig:
        def __init__(self) -> None:
            self._flags = {trt.BuilderFlag.TF32}  # TF32 is on by default
            self._timing_cache: TimingCache | None = None
            self.progress_monitor = None
            self.pools: dict[int, int] = {}
            self.profiles: list[IOptimizationProfile] = []

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_memory_pool_limit(self, pool, pool_size: int) -> None:
            self.pools[int(pool)] = pool_size

        def set_flag(self, flag) -> None:
            self._flags.add(trt.BuilderFlag(flag))

        def clear_flag(self, flag) -> None:
            self._flags.discard(trt.BuilderFlag(flag))

        def get_flag(self, flag) -> bool:
            return trt.BuilderFlag(flag) in self._flags

        def create_timing_cache(self, serialized_timing_cache: bytes) -> TimingCache:
            data = bytes(serialized_timing_cache)
            return TimingCache(data[len(_CACHE_MAGIC):] if data.startswith(_CACHE_MAGIC)
                               else data or self_tag())  # fmt: skip

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            if cache.tag != self_tag() and not ignore_mismatch:
                return False  # a cache from another GPU or TensorRT: refused, not raised
            self._timing_cache = cache
            return True

        def get_timing_cache(self) -> TimingCache | None:
            return self._timing_cache

    def self_tag() -> bytes:
        name, _ = cudart.cudaGetDeviceProperties(0)[1].name, None
        return f"{version}|".encode() + name.split(b"\0")[0]

    class Builder:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            known = sum(1 << v for v in _NETWORK_FLAGS[version].values())
            if flags & ~known:
                raise TypeError(f"create_network: unknown flag bits {flags:#x}")
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
            strong_bit = 1 << trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
            strongly_typed = major >= 11 or bool(network.flags & strong_bit)
            weak_flags = {f for f in ("FP16", "BF16", "INT8") if hasattr(trt.BuilderFlag, f)
                          and config.get_flag(trt.BuilderFlag[f])}  # fmt: skip
            if strongly_typed and weak_flags:
                trt.log.append(f"ERROR: {sorted(weak_flags)} not allowed on a strongly typed "
                               "network")  # fmt: skip
                return None
            if network.onnx is None:
                return None
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 1)
                monitor.step_complete("Building engine", 0)
                monitor.phase_finish("Building engine")
            graph = onnx.load_from_string(network.onnx)
            float16_graph = any(init.data_type == onnx.TensorProto.FLOAT16
                                for init in graph.graph.initializer)  # fmt: skip
            dynamic = any(-1 in tensor.shape for tensor in network._inputs())
            if dynamic and not config.profiles:
                trt.log.append("ERROR: a network with dynamic shapes needs a profile")
                return None
            header = {"version": version, "strongly_typed": strongly_typed,
                      "fp16_flag": "FP16" in weak_flags, "fp16_graph": float16_graph,
                      "tf32": config.get_flag(trt.BuilderFlag.TF32)}  # fmt: skip
            if config.profiles:
                header["profiles"] = [{name: list(map(list, shapes))
                                       for name, shapes in profile.shapes.items()}
                                      for profile in config.profiles]  # fmt: skip
            trt.log.append(f"built {json.dumps(header, sort_keys=True)}")
            return _ENGINE_MAGIC + json.dumps(header).encode() + b"\n" + network.onnx

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self._engine = engine
            self._addresses: dict[str, int] = {}
            self._shapes: dict[str, tuple[int, ...]] = {}

        def set_input_shape(self, name: str, shape) -> bool:
            profile = self._engine.header.get("profiles", [{}])[0].get(name)
            shape = tuple(int(v) for v in shape)
            if profile is None or not all(lo <= v <= hi for lo, v, hi in
                                          zip(profile[0], shape, profile[2], strict=True)):
                return False
            self._shapes[name] = shape
            return True

        def _shape(self, name: str) -> tuple[int, ...]:
            """A tensor's shape in this context: the engine's, a dynamic batch as set."""
            shape = self._engine.tensors[name][0]
            if -1 not in shape:
                return shape
            batch = next(iter(self._shapes.values()))[0]
            return tuple(batch if v == -1 else v for v in shape)

        def set_tensor_address(self, name: str, memory: int) -> bool:
            if name not in self._engine.tensors:
                return False
            self._addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            if set(self._addresses) != set(self._engine.tensors):
                return False
            dynamic = [n for n in self._engine.inputs if -1 in self._engine.tensors[n][0]]
            if any(name not in self._shapes for name in dynamic):
                return False  # TensorRT needs every dynamic input's shape first
            cudart.queue.enqueue(stream_handle, self._run, "execute")
            return True

        def _run(self) -> None:
            feeds = {}
            for name in self._engine.inputs:
                dtype = self._engine.tensors[name][1]
                feeds[name] = _view(self._addresses[name], self._shape(name), dtype).copy()
            outputs = self._engine.session.run(self._engine.outputs, feeds)
            for name, value in zip(self._engine.outputs, outputs, strict=True):
                dtype = self._engine.tensors[name][1]
                _view(self._addresses[name], self._shape(name), dtype)[...] = value

    class ICudaEngine:
        def __init__(self, header: dict, model: bytes) -> None:
            import onnxruntime as ort

            self.header = header
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self.session = ort.InferenceSession(model, options,
                                                providers=["CPUExecutionProvider"])  # fmt: skip
            graph = onnx.load_from_string(model).graph
            initialisers = {init.name for init in graph.initializer}
            self.inputs = [v.name for v in graph.input if v.name not in initialisers]
            self.outputs = [v.name for v in graph.output]
            self.tensors = {}
            for value in [*graph.input, *graph.output]:
                if value.name in initialisers:
                    continue
                tensor = value.type.tensor_type
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1
                              for d in tensor.shape.dim)  # fmt: skip
                self.tensors[value.name] = (shape, np.dtype(_ONNX_TO_DTYPE[tensor.elem_type]))

        @property
        def num_io_tensors(self) -> int:
            return len(self.tensors)

        def get_tensor_name(self, index: int) -> str:
            return [*self.inputs, *self.outputs][index]

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self.tensors[name][0]

        def get_tensor_dtype(self, name: str):
            return by_numpy[self.tensors[name][1].name]

        def get_tensor_mode(self, name: str):
            return trt.TensorIOMode.INPUT if name in self.inputs else trt.TensorIOMode.OUTPUT

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, serialized_engine: bytes):
            data = bytes(serialized_engine)
            if not data.startswith(_ENGINE_MAGIC):
                trt.log.append("ERROR: magic tag does not match")
                return None
            header_line, model = data[len(_ENGINE_MAGIC):].split(b"\n", 1)
            header = json.loads(header_line)
            if header["version"] != version:
                trt.log.append("ERROR: engine plan file is not compatible with this version")
                return None
            return ICudaEngine(header, model)

    trt.Logger, trt.IProgressMonitor, trt.Builder = Logger, IProgressMonitor, Builder
    trt.OnnxParser, trt.Runtime = OnnxParser, Runtime
    return trt


def _view(pointer: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Numpy view of "device" memory at ``pointer``."""
    count = int(np.prod(shape)) * dtype.itemsize
    raw = ctypes.cast(ctypes.c_void_p(pointer), ctypes.POINTER(ctypes.c_ubyte))
    return np.ctypeslib.as_array(raw, (count,)).view(dtype).reshape(shape)
