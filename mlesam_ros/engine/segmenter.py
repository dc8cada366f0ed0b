"""One inference interface over TensorRT, ONNX Runtime and PyTorch.

The pipeline and the node only see ``Segmenter``: give it an artefact (``.engine``/``.plan``,
``.onnx`` or a ``.pt`` checkpoint) and a backend name, feed ``(1, M, 3, H, W)`` images and a
``(1, M)`` presence vector, get labels and confidence back (``segment_batch``: B frames, e.g.
one per camera, in as few calls as the artefact's batch allows). ``auto`` picks the fastest runtime
this machine has for that artefact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlesam_ros.engine import BACKENDS
from mlesam_ros.engine.backends.base import Backend
from mlesam_ros.engine.engine_cache import BuildOptions
from mlesam_ros.engine.spec import ModelSpec

LOG = logging.getLogger(__name__)
_KIND_BY_SUFFIX = {".onnx": "onnx", ".engine": "engine", ".plan": "engine",
                   ".pt": "checkpoint", ".pth": "checkpoint", ".ckpt": "checkpoint"}
# Which artefact kinds each backend can run.
_ACCEPTS = {"tensorrt": ("engine", "onnx"), "onnxruntime": ("onnx",), "torch": ("checkpoint",)}
_HOW_TO_CREATE = {
    "onnx": "mlesam export --out {path}",
    "engine": "mlesam build-engine --onnx model.onnx --out {path}",
    "checkpoint": "mlesam_ros.model.save_checkpoint (training), or use the shipped demo model",
}


@dataclass(frozen=True)
class SegmentationResult:
    """Per-pixel class ids and the softmax probability of that class, at the model's input size."""

    labels: np.ndarray  # (H, W) integer
    confidence: np.ndarray | None  # (H, W) float32
    routing_weights: np.ndarray | None = None  # (levels, M) float32, if the model outputs it


def artefact_kind(path: str | Path) -> str:
    """``onnx``, ``engine`` or ``checkpoint`` from the file suffix."""
    kind = _KIND_BY_SUFFIX.get(Path(path).suffix.lower())
    if kind is None:
        raise ValueError(
            f"model: cannot tell what {path} is from its suffix; expected one of "
            + ", ".join(sorted(_KIND_BY_SUFFIX))
        )
    return kind


def _tensorrt_usable() -> bool:
    try:
        from mlesam_ros.engine.tensorrt_build import tensorrt_available
    except ImportError:
        return False
    return tensorrt_available()


def _onnxruntime_cuda() -> bool:
    from mlesam_ros.engine.backends.onnxruntime_backend import cuda_available

    return cuda_available()


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _torch_importable() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(kind: str, backend: str = "auto") -> tuple[str, str]:
    """(backend, device) to use for an artefact kind.

    ``auto`` preference: tensorrt (TensorRT + GPU) → onnxruntime on CUDA → torch on CUDA →
    onnxruntime on CPU → torch on CPU, keeping only backends that can run this artefact kind.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend != "auto":
        if kind not in _ACCEPTS[backend]:
            runs = [name for name, kinds in _ACCEPTS.items() if kind in kinds]
            raise ValueError(
                f"backend: {backend} cannot run a {kind} file "
                f"(it takes {' or '.join(_ACCEPTS[backend])}); a {kind} runs with "
                f"{' or '.join(runs)}"
            )
        if backend == "tensorrt":
            return backend, "cuda"
        cuda = _onnxruntime_cuda() if backend == "onnxruntime" else _torch_cuda()
        return backend, "cuda" if cuda else "cpu"
    candidates = [
        ("tensorrt", "cuda", _tensorrt_usable),
        ("onnxruntime", "cuda", _onnxruntime_cuda),
        ("torch", "cuda", _torch_cuda),
        ("onnxruntime", "cpu", lambda: True),
        ("torch", "cpu", _torch_importable),
    ]
    for name, device, usable in candidates:
        if kind in _ACCEPTS[name] and usable():
            return name, device
    raise ValueError(f"backend: no installed backend can run a {kind} file here")


class Segmenter:
    """A loaded model behind one of the backends; ``segment`` is allocation-free on the hot path.

    ``precision`` means the engine precision for tensorrt (fp32 or fp16, default fp16), the
    autocast dtype for torch (fp32, fp16, bf16; default bf16 on GPUs with native bf16, else fp16
    on CUDA, fp32 on the CPU) and is ignored by onnxruntime (it runs the graph's own types).
    ``typing`` (tensorrt only): ``auto`` (strongly typed on TensorRT 11, the fp16 builder flag on
    10), ``strong`` or ``weak``; ``engine_cache`` (tensorrt only): the engine folder (default
    ``engine_cache.engine_cache_dir()``); ``timing_cache`` (tensorrt only): a TensorRT timing
    cache file to read and update, which makes rebuilds on the same GPU faster. ``compile``
    (torch only): ``True`` or a ``torch.compile`` mode (see ``backends.torch_backend``).
    ``attention`` (torch only): ``sdpa`` (fused, default) or ``stock`` (segment-anything's code,
    for parity checks).
    ``sam_checkpoint`` is only for torch with a SAM-initialised checkpoint. ``max_batch``: the
    most frames one call runs where the artefact's batch is dynamic (torch, an ONNX exported
    with ``--batch 0``, its TensorRT engine's optimisation profile); a static batch is the
    graph's own.
    """

    def __init__(
        self,
        model: str | Path,
        backend: str = "auto",
        *,
        device: str | None = None,
        precision: str | None = None,
        compile: bool | str = False,
        threads: int = 0,
        workspace_mb: int = 4096,
        rebuild_engine: bool = True,
        sam_checkpoint: str | Path | None = None,
        attention: str = "sdpa",
        typing: str = "auto",
        engine_cache: str | Path | None = None,
        timing_cache: str | Path | None = None,
        max_batch: int = 1,
    ) -> None:
        path = Path(model)
        kind = artefact_kind(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"model: {path} does not exist; create it with "
                + _HOW_TO_CREATE[kind].format(path=path)
            )
        name, auto_device = resolve_backend(kind, backend)
        device = device or auto_device
        LOG.info("loading %s with backend %s on %s", path, name, device)
        if name == "tensorrt":
            self._backend: Backend | None = self._open_tensorrt(
                path, BuildOptions(precision=precision or "fp16", workspace_mb=workspace_mb,
                                   timing_cache=Path(timing_cache) if timing_cache else None,
                                   typing=typing, max_batch=max_batch), rebuild_engine,
                engine_cache)  # fmt: skip
        else:
            self._backend = self._open(name, path, device, precision, compile, threads,
                                       sam_checkpoint, attention, max_batch)  # fmt: skip
        self.artefact = path
        backend = self._backend
        routing = getattr(backend, "routing", None)
        # One frame's outputs: fixed views of the first row, so copy=False hands out the same
        # arrays every call (callers may keep them as buffers).
        self._first_row = (backend.labels[0], backend.confidence[0],
                           None if routing is None else routing[0])  # fmt: skip

    @staticmethod
    def _open_tensorrt(
        path: Path, options: BuildOptions, rebuild: bool, cache: str | Path | None
    ) -> Backend:
        try:
            from mlesam_ros.engine import cuda_runtime
            from mlesam_ros.engine.backends.tensorrt_backend import TensorRTBackend

            cuda_runtime.cudart()
        except ImportError as error:
            raise ValueError(
                f"backend: tensorrt is not usable here ({error}); install "
                "`pip install -e '.[trt]'` (in the checkout: TensorRT and cuda-python) or "
                "choose onnxruntime/torch"
            ) from error
        return TensorRTBackend(path, options, rebuild=rebuild, cache_dir=cache)

    @staticmethod
    def _open(
        name: str, path: Path, device: str, precision: str | None, compile: bool | str,
        threads: int, sam_checkpoint: str | Path | None, attention: str, max_batch: int,
    ) -> Backend:
        if name == "onnxruntime":
            from mlesam_ros.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

            return OnnxRuntimeBackend(path, device=device, threads=threads, max_batch=max_batch)
        from mlesam_ros.engine.backends.torch_backend import TorchBackend

        return TorchBackend(path, device=device, precision=precision, compile=compile,
                            sam_checkpoint=sam_checkpoint, attention=attention,
                            max_batch=max_batch)

    @property
    def spec(self) -> ModelSpec:
        """Everything the artefact declares about its inputs and outputs."""
        return self._backend.spec

    @property
    def backend(self) -> str:
        """Backend name in use (``tensorrt``, ``onnxruntime`` or ``torch``)."""
        return self._backend.name

    @property
    def device(self) -> str:
        """``cuda`` or ``cpu``."""
        return self._backend.device

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality order of the ``images``/``present`` inputs."""
        return self.spec.modalities

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the model takes and returns."""
        return self.spec.input_size

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.spec.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in id order."""
        return self.spec.class_names

    @property
    def max_batch(self) -> int:
        """Frames one inference call runs (``segment_batch`` splits larger batches).

        The graph's static batch, or the ``max_batch`` asked for where it is dynamic.
        """
        return self._open_backend("max_batch").capacity

    def segment(
        self, images: np.ndarray, present: np.ndarray, copy: bool = True
    ) -> SegmentationResult:
        """Segment one frame.

        ``images``: (1, M, 3, H, W) float32 or uint8 with 0..255 values, modalities in
        ``self.modalities`` order; ``present``: (1, M) bool. With ``copy=False`` the result
        holds views of the backend's output buffers, valid until the next call (no allocation).
        """
        backend = self._open_backend("segment")
        images, present = self._checked(images, present, batch=False)
        self._load(backend, images, present)
        labels, confidence, routing = self._first_row
        if copy:
            return SegmentationResult(labels.copy(), confidence.copy(),
                                      None if routing is None else routing.copy())  # fmt: skip
        return SegmentationResult(labels, confidence, routing)

    def segment_batch(self, images: np.ndarray, present: np.ndarray) -> list[SegmentationResult]:
        """Segment B frames (several cameras) in as few calls as the graph allows.

        ``images`` (B, M, 3, H, W), ``present`` (B, M) bool, each frame with at least one
        modality. Runs ``max_batch`` frames per call: a static batch larger than what is left
        is filled with copies of the last frame (their results are dropped). Returns one
        result per frame, in order, each owning its arrays.
        """
        backend = self._open_backend("segment_batch")
        images, present = self._checked(images, present, batch=True)
        results = []
        for start in range(0, images.shape[0], backend.capacity):
            chunk = slice(start, start + backend.capacity)
            self._load(backend, images[chunk], present[chunk])
            routing = getattr(backend, "routing", None)
            for row in range(images[chunk].shape[0]):
                results.append(SegmentationResult(
                    backend.labels[row].copy(), backend.confidence[row].copy(),
                    None if routing is None else routing[row].copy()))  # fmt: skip
        return results

    def _open_backend(self, what: str) -> Backend:
        if self._backend is None:
            raise ValueError(f"{what}: this Segmenter was closed")
        return self._backend

    def _checked(self, images: np.ndarray, present: np.ndarray,
                 batch: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Shapes and dtypes of one frame (``batch`` False: leading 1) or of B frames."""
        images, present = np.asarray(images), np.asarray(present)
        frame = (len(self.modalities), 3, *self.input_size)
        rows = images.shape[0] if batch and images.ndim == 5 and images.shape[0] >= 1 else 1
        if images.shape != (rows, *frame):
            shown = "B" if batch else "1"
            raise ValueError(
                f"images: expected shape {(rows, *frame)} ({shown}, M={len(self.modalities)} "
                f"[{','.join(self.modalities)}], 3, H, W={self.input_size}), got {images.shape}"
            )
        if images.dtype not in (np.float32, np.uint8):
            raise ValueError(f"images: dtype must be float32 or uint8, got {images.dtype}")
        if present.shape != (rows, len(self.modalities)) or present.dtype != np.bool_:
            raise ValueError(
                f"present: expected bool array of shape {(rows, len(self.modalities))}, got "
                f"{present.dtype} {present.shape}"
            )
        if not present.any(axis=1).all():
            raise ValueError("present: at least one modality must be present in every frame")
        return images, present

    @staticmethod
    def _load(backend: Backend, images: np.ndarray, present: np.ndarray) -> None:
        """Copy up to ``capacity`` frames in and run them (a static batch padded)."""
        rows = images.shape[0]
        np.copyto(backend.images[:rows], images, casting="unsafe")
        np.copyto(backend.present[:rows], present, casting="unsafe")
        if not backend.spec.dynamic_batch and rows < backend.capacity:
            backend.images[rows:] = backend.images[rows - 1]  # any valid frame will do
            backend.present[rows:] = backend.present[rows - 1]
        backend.run(rows)

    def close(self) -> None:
        """Release the backend; further ``segment`` calls raise."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
