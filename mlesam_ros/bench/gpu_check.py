"""``mlesam gpu-check``: one command that proves every GPU backend on the machine it runs on.

Uses whatever it finds (torch CUDA, ONNX Runtime's CUDA provider, TensorRT) and skips the rest
with the reason. For the shipped demo model it compares each backend with the CPU reference
(PyTorch fp32 on the CPU; ONNX Runtime's CPU provider where torch or segment-anything is
missing) over every presence pattern (label agreement on all pixels and on those whose
reference top-2 logit margin exceeds ``margin_eps``, confidence differences), reloads a
TensorRT engine from the cache, rebuilds a corrupted one, and times model-only and full-frame
p50/p99 with the peak GPU memory. Everything goes into one JSON report. Written to finish in
well under five minutes on a datacentre GPU with torch only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlesam_ros.bench.frame import full_frame_step
from mlesam_ros.bench.latency import (
    machine_info,
    measure_latency,
    model_only_step,
    peak_memory_mb,
    reset_peak_memory,
)
from mlesam_ros.engine import resolve_default_checkpoint
from mlesam_ros.engine.agreement import DEFAULT_MARGIN_EPS, compare, top2_margin
from mlesam_ros.engine.onnx_export import presence_patterns
from mlesam_ros.engine.segmenter import Segmenter

LOG = logging.getLogger(__name__)


class SkipBackendError(Exception):
    """A backend that cannot run here; the message is the reason recorded in the report."""


def _frames(modalities: int, size: tuple[int, int]) -> list[tuple[tuple[bool, ...], np.ndarray,
                                                                 np.ndarray]]:  # fmt: skip
    """One random uint8 frame per presence pattern (fixed seeds: every backend sees the same)."""
    frames = []
    for index, pattern in enumerate(presence_patterns(modalities)):
        rng = np.random.default_rng(100 + index)
        images = rng.integers(0, 256, (1, modalities, 3, *size), dtype=np.uint8)
        frames.append((pattern, images, np.array([pattern])))
    return frames


def _stub_torchvision() -> bool:
    """Let segment-anything import where torchvision is absent; True when stubs were added.

    segment-anything imports four torchvision functions at package import for its predictor
    and mask generator, which MLE-SAM's modules (image encoder, mask decoder, LayerNorm2d)
    never call. A GPU machine with torch but no matching torchvision can then still run the
    torch backend; the stubs raise if anything does call them.
    """
    try:
        if importlib.util.find_spec("torchvision") is not None:
            return False
    except ImportError:  # a broken install counts as absent
        pass

    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torchvision is not installed (stubbed by mlesam gpu-check)")

    names = {"torchvision": [], "torchvision.ops": [], "torchvision.ops.boxes":
             ["batched_nms", "box_area"], "torchvision.transforms": [],
             "torchvision.transforms.functional": ["resize", "to_pil_image"]}  # fmt: skip
    for module_name, functions in names.items():
        module = types.ModuleType(module_name)
        for function in functions:
            setattr(module, function, unavailable)
        sys.modules[module_name] = module
    return True


class _Reference:
    """CPU reference labels, confidence and top-2 margins per presence pattern."""

    def __init__(self, checkpoint: Path, onnx_path: Path, frames: list, notes: list[str]) -> None:
        self.results: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        try:
            import torch

            from mlesam_ros.engine.torch_model import load_model

            model, _ = load_model(checkpoint)
            self.name = "torch cpu fp32"
            with torch.inference_mode():
                for _, images, present in frames:
                    logits = model(torch.from_numpy(images).float(),
                                   torch.from_numpy(present))["logits"][0]  # fmt: skip
                    best = logits.softmax(0).max(0)
                    self.results.append((best.indices.numpy().astype(np.int64),
                                         best.values.numpy(), top2_margin(logits.numpy())))
        except ImportError as error:
            notes.append(f"reference: torch model unavailable ({error}); ONNX Runtime CPU is "
                         "the reference and every pixel counts as decidable")  # fmt: skip
            self.name = "onnxruntime cpu"
            self.results = []
            with Segmenter(onnx_path, "onnxruntime", device="cpu") as reference:
                for _, images, present in frames:
                    result = reference.segment(images, present)
                    self.results.append((result.labels.astype(np.int64), result.confidence,
                                         None))  # fmt: skip


def _measure_backend(
    name: str, open_segmenter: Callable[[], Segmenter], frames: list, reference: _Reference,
    margin_eps: float, warmup: int, iterations: int, camera: tuple[int, int] | None,
) -> dict[str, Any]:  # fmt: skip
    """Open one backend, compare it on every pattern, time it, and describe it."""
    row: dict[str, Any] = {"name": name}
    reset_peak_memory()
    started = time.perf_counter()
    segmenter = open_segmenter()
    row["startup_s"] = round(time.perf_counter() - started, 3)
    try:
        backend = segmenter._backend
        if getattr(backend, "engine_path", None) is not None:
            row["engine"] = {"path": str(backend.engine_path), "rebuilt": backend.rebuilt,
                             "reasons": list(backend.rebuild_reasons)}  # fmt: skip
        if getattr(backend, "precision", None):
            row["precision"] = backend.precision
        patterns = []
        for (pattern, images, present), (labels, confidence, margin) in zip(
                frames, reference.results, strict=True):  # fmt: skip
            result = segmenter.segment(images, present)
            measured = compare(labels, confidence, result.labels.astype(np.int64),
                               result.confidence, margin, margin_eps)  # fmt: skip
            patterns.append({"present": [int(p) for p in pattern], **measured.to_dict()})
        row["agreement"] = patterns
        row["worst"] = {
            "label_agreement": min(p["label_agreement"] for p in patterns),
            "confident_agreement": min(p["confident_agreement"] for p in patterns),
            "confidence_max_abs": max(p["confidence_max_abs"] for p in patterns),
        }
        model = measure_latency(f"{name} model", model_only_step(segmenter), warmup, iterations)
        row["model_ms"] = {"p50": round(model.p50_ms, 3), "p99": round(model.p99_ms, 3)}
        if camera is not None:
            try:
                frame = measure_latency(f"{name} full frame", full_frame_step(segmenter, camera),
                                        warmup, iterations)  # fmt: skip
                row["full_frame_ms"] = {"p50": round(frame.p50_ms, 3),
                                        "p99": round(frame.p99_ms, 3)}  # fmt: skip
            except Exception as error:  # the frame path needs more than the model
                row["full_frame_ms"] = {"skipped": f"{type(error).__name__}: {error}"}
        memory = peak_memory_mb(segmenter.device)
        row["peak_memory_mb"] = None if memory is None else round(memory, 1)
        row["status"] = "ok"
    finally:
        segmenter.close()
    return row


def _torch_cuda(precision: str) -> Callable[[Path, Path], Segmenter]:
    def open_torch(checkpoint: Path, onnx_path: Path) -> Segmenter:
        import torch

        if not torch.cuda.is_available():
            raise SkipBackendError("torch.cuda.is_available() is False (no GPU, or a CPU-only "
                                   "torch)")
        if importlib.util.find_spec("segment_anything") is None:
            raise SkipBackendError("the torch model needs segment-anything (pip install "
                                   "segment-anything==1.0)")  # fmt: skip
        if precision == "fp32":  # TF32 off: fp32 means fp32 here
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        return Segmenter(checkpoint, "torch", device="cuda",
                         precision=None if precision == "default" else precision)

    return open_torch


def _onnxruntime_cuda(checkpoint: Path, onnx_path: Path) -> Segmenter:
    import onnxruntime as ort

    from mlesam_ros.engine.backends.onnxruntime_backend import cuda_available

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SkipBackendError(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                               "(the CPU wheel; install onnxruntime-gpu)")  # fmt: skip
    if not cuda_available():
        raise SkipBackendError("onnxruntime has its CUDA provider but no NVIDIA GPU is visible")
    return Segmenter(onnx_path, "onnxruntime", device="cuda")


def _tensorrt(precision: str, typing: str, cache: Path) -> Callable[[Path, Path], Segmenter]:
    def open_tensorrt(checkpoint: Path, onnx_path: Path) -> Segmenter:
        reason = tensorrt_skip_reason()
        if reason:
            raise SkipBackendError(reason)
        return Segmenter(onnx_path, "tensorrt", precision=precision, typing=typing,
                         engine_cache=cache, timing_cache=cache / "timing.cache")  # fmt: skip

    return open_tensorrt


def tensorrt_skip_reason() -> str | None:
    """Why the TensorRT backend cannot run here, or None."""
    try:
        import tensorrt

        from mlesam_ros.engine import cuda_runtime
        from mlesam_ros.engine.engine_cache import EngineError, check_tensorrt_version

        cuda_runtime.cudart()
    except ImportError as error:
        return f"TensorRT or cuda-python not importable ({error})"
    try:
        check_tensorrt_version(tensorrt.__version__)
    except EngineError as error:
        return str(error)
    if cuda_runtime.device_count() == 0:
        return "cuda-python sees no CUDA GPU"
    return None


def _tensorrt_cache_check(onnx_path: Path, cache: Path) -> dict[str, Any]:
    """Reload the fp16 engine from the cache, then corrupt it and check it is rebuilt."""
    reason = tensorrt_skip_reason()
    if reason:
        return {"status": "skipped", "reason": reason}
    options = {"engine_cache": cache, "timing_cache": cache / "timing.cache"}
    started = time.perf_counter()
    with Segmenter(onnx_path, "tensorrt", **options) as again:
        reload = {"rebuilt": again._backend.rebuilt,
                  "startup_s": round(time.perf_counter() - started, 3)}  # fmt: skip
        engine_path = again._backend.engine_path
    engine_path.write_bytes(engine_path.read_bytes()[: 1024] + b"corrupted")
    started = time.perf_counter()
    with Segmenter(onnx_path, "tensorrt", **options) as rebuilt:
        corrupted = {"rebuilt": rebuilt._backend.rebuilt,
                     "reasons": list(rebuilt._backend.rebuild_reasons),
                     "startup_s": round(time.perf_counter() - started, 3)}  # fmt: skip
    ok = not reload["rebuilt"] and corrupted["rebuilt"]
    return {"status": "ok" if ok else "failed", "reload": reload, "corrupted": corrupted}


def run_gpu_check(
    out: Path, warmup: int = 5, iterations: int = 50, camera: tuple[int, int] | None = (480, 640),
    margin_eps: float = DEFAULT_MARGIN_EPS, work_dir: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run every check, write the JSON report to ``out`` and return it."""
    started = time.perf_counter()
    notes: list[str] = []
    if _stub_torchvision():
        notes.append("torchvision absent: stubbed the four names segment-anything imports at "
                     "package import (MLE-SAM never calls them)")  # fmt: skip
    checkpoint = resolve_default_checkpoint()
    onnx_path = checkpoint.with_suffix(".onnx")
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-check-")))
        cache = Path(work_dir) / "engines"
        from mlesam_ros.engine.onnx_export import read_spec

        spec = read_spec(onnx_path)
        frames = _frames(len(spec.modalities), spec.input_size)
        reference = _Reference(checkpoint, onnx_path, frames, notes)
        report: dict[str, Any] = {
            "machine": machine_info(),
            "model": {"checkpoint": str(checkpoint), "onnx": str(onnx_path),
                      "modalities": list(spec.modalities),
                      "input": "x".join(str(v) for v in spec.input_size),
                      "classes": spec.num_classes},
            "setup": {"reference": reference.name, "margin_eps": margin_eps,
                      "presence_patterns": [[int(p) for p in f[0]] for f in frames],
                      "warmup": warmup, "iterations": iterations,
                      "full_frame_camera": None if camera is None
                      else f"{camera[1]}x{camera[0]} all sensors"},
            "backends": [],
        }  # fmt: skip
        candidates: list[tuple[str, Callable[[Path, Path], Segmenter]]] = [
            ("onnxruntime cpu", lambda c, o: Segmenter(o, "onnxruntime", device="cpu")),
            ("torch cuda fp32", _torch_cuda("fp32")),
            ("torch cuda default", _torch_cuda("default")),
            ("onnxruntime cuda", _onnxruntime_cuda),
            ("tensorrt fp32", _tensorrt("fp32", "auto", cache)),
            ("tensorrt fp16", _tensorrt("fp16", "auto", cache)),
        ]
        try:
            import tensorrt

            if tensorrt.__version__.startswith("10."):
                candidates.append(("tensorrt fp16 strongly typed",
                                   _tensorrt("fp16", "strong", cache)))  # fmt: skip
        except ImportError:
            pass
        for name, opener in candidates:
            LOG.info("gpu-check: %s", name)
            try:
                row = _measure_backend(name, lambda opener=opener: opener(checkpoint, onnx_path),
                                       frames, reference, margin_eps, warmup, iterations,
                                       camera)  # fmt: skip
            except SkipBackendError as skip:
                row = {"name": name, "status": "skipped", "reason": str(skip)}
            except Exception as error:
                row = {"name": name, "status": "failed",
                       "reason": f"{type(error).__name__}: {' '.join(str(error).split())}",
                       "traceback": traceback.format_exc(limit=6)}  # fmt: skip
            report["backends"].append(row)
        try:
            report["tensorrt_cache"] = _tensorrt_cache_check(onnx_path, cache)
        except Exception as error:
            report["tensorrt_cache"] = {"status": "failed",
                                        "reason": f"{type(error).__name__}: {error}"}
    report["notes"] = notes
    report["duration_s"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def summary(report: dict[str, Any]) -> str:
    """Format the report as a fixed-width table for the terminal."""
    lines = [f"{'backend':<30}{'status':<9}{'agree':>8}{'decid.':>8}{'Δconf':>8}"
             f"{'model p50/p99 ms':>18}{'frame p50/p99 ms':>18}{'MB':>7}"]  # fmt: skip
    for row in report["backends"]:
        if row["status"] != "ok":
            lines.append(f"{row['name']:<30}{row['status']:<9}{row['reason']}")
            continue
        worst, model = row["worst"], row["model_ms"]
        frame = row.get("full_frame_ms", {})
        frame_text = (f"{frame['p50']:.2f}/{frame['p99']:.2f}" if "p50" in frame
                      else "-")  # fmt: skip
        memory = "-" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:.0f}"
        lines.append(f"{row['name']:<30}{'ok':<9}{worst['label_agreement']:>8.4f}"
                     f"{worst['confident_agreement']:>8.4f}{worst['confidence_max_abs']:>8.4f}"
                     f"{model['p50']:>9.2f}/{model['p99']:<8.2f}{frame_text:>18}{memory:>7}")
    cache = report.get("tensorrt_cache", {})
    lines.append(f"tensorrt cache: {cache.get('status')} {cache.get('reason', '')}".rstrip())
    lines.extend(f"note: {note}" for note in report.get("notes", []))
    lines.append(f"({report['duration_s']} s; reference {report['setup']['reference']}, "
                 f"'decid.' = agreement where the top-2 margin > {report['setup']['margin_eps']})")
    return "\n".join(lines)
