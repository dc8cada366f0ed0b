"""PyTorch backend: the checkpoint in eager mode, optionally torch.compile'd, fp16/bf16 on CUDA.

Useful where no ONNX/TensorRT artefact exists yet (right after training) and as the reference
the other backends are compared with. Device-agnostic: CUDA when asked, CPU otherwise.

Precision (``model.precision``) means autocast for torch: weights stay fp32, matmuls and
convolutions run in bf16 or fp16 while LayerNorm, softmax and the reductions accumulate in
fp32 as PyTorch's autocast lists do. The default on CUDA is bf16 where the GPU has it natively
(Ampere and newer: no overflow, same range as fp32) and fp16 otherwise (T4, V100, Xavier: there
bf16 would only be emulated, several times slower); fp32 on the CPU.

Compilation (``compile``): ``default`` (inductor kernels, the cheapest start-up), ``reduce-
overhead`` (the same plus CUDA graphs: one launch per frame, the static-shape forward suits it),
``max-autotune`` (benchmarks kernel choices at start-up: many minutes for ViT-B) or
``max-autotune-no-cudagraphs``. Compilation happens on the first frame; ``startup_s`` records
loading, and the first ``run`` includes the compile time (``mlesam bench`` reports both).
Inductor caches compiled kernels on disk (``TORCHINDUCTOR_CACHE_DIR``, default under /tmp),
so a node restarted on the same machine compiles much faster the second time.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch

from mlesam_ros.engine import COMPILE_MODES
from mlesam_ros.engine.backends.base import Backend
from mlesam_ros.engine.torch_model import load_model

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def native_bf16() -> bool:
    """Whether the current GPU computes bf16 in hardware (compute capability 8.0 and newer).

    ``torch.cuda.is_bf16_supported()`` alone also counts emulated bf16 (Turing, Volta), which
    runs much slower than fp16 there.
    """
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``fp32``/``fp16``/``bf16`` for this device; ``None``, ``''`` or ``auto`` = the default."""
    if precision in (None, "", "auto"):
        if device.type != "cuda":
            return "fp32"
        return "bf16" if native_bf16() else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision: {precision!r} is not a torch precision; use one of "
            f"{', '.join(PRECISIONS)} or '' for the default"
        )
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(f"precision: {precision} autocast is for CUDA; use fp32 on {device}")
    if precision == "bf16" and not native_bf16():
        raise ValueError(
            f"precision: {torch.cuda.get_device_name(device)} has no native bf16 (only slow "
            "emulation); use fp16"
        )
    return precision


def resolve_compile_mode(compile: bool | str | None) -> str:
    """``none`` or a ``torch.compile`` mode; ``True`` means ``default``."""
    if compile is True:
        return "default"
    if compile in (False, None, ""):
        return "none"
    if compile not in COMPILE_MODES:
        raise ValueError(f"compile: {compile!r} is not one of {', '.join(COMPILE_MODES)}")
    return str(compile)


class TorchBackend(Backend):
    """Eager (or compiled) MLE-SAM; labels and confidence computed on the device."""

    name = "torch"

    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "cpu",
        precision: str | None = None,
        compile: bool | str = False,
        sam_checkpoint: str | Path | None = None,
        attention: str = "sdpa",
        max_batch: int = 1,
    ) -> None:
        import dataclasses

        from mlesam_ros.model.attention import set_attention_impl

        started = time.perf_counter()
        self.device = device
        self._device = torch.device(device)
        self.precision = resolve_precision(precision, self._device)
        self.compile_mode = resolve_compile_mode(compile)
        model, spec = load_model(checkpoint, sam_checkpoint)
        self.spec = dataclasses.replace(spec, batch=0)  # eager torch takes any batch
        self.capacity = self.batch_capacity(self.spec, max_batch)
        set_attention_impl(model, attention)
        self.attention = attention
        self._model = model.to(self._device).eval()
        self._forward = self._model
        if self.compile_mode != "none":
            # fullgraph=False: a graph break (e.g. a data-dependent branch) costs speed, not
            # the node; dynamic=False: every input has one static shape.
            mode = None if self.compile_mode == "default" else self.compile_mode
            self._forward = torch.compile(self._model, mode=mode, dynamic=False)
        self._autocast = (
            torch.autocast("cuda", dtype=PRECISIONS[self.precision])
            if self.precision != "fp32" else contextlib.nullcontext()
        )
        self._allocate_buffers()
        self.startup_s = time.perf_counter() - started

    def _allocate_buffers(self) -> None:
        """Host buffers are numpy views of (pinned, on CUDA) tensors; device twins beside them."""
        spec, pin, rows = self.spec, self._device.type == "cuda", self.capacity
        M = len(spec.modalities)
        host_images = torch.zeros((rows, M, 3, *spec.input_size), dtype=torch.float32,
                                  pin_memory=pin)  # fmt: skip
        host_present = torch.ones((rows, M), dtype=torch.bool, pin_memory=pin)
        host_labels = torch.zeros((rows, *spec.input_size), dtype=getattr(torch, spec.label_dtype),
                                  pin_memory=pin)
        host_confidence = torch.zeros((rows, *spec.input_size), dtype=torch.float32,
                                      pin_memory=pin)  # fmt: skip
        self._host = (host_images, host_present, host_labels, host_confidence)
        self.images, self.present = host_images.numpy(), host_present.numpy()
        self.labels, self.confidence = host_labels.numpy(), host_confidence.numpy()
        self._host_routing = None
        self.routing = None
        if spec.routing_shape is not None:
            self._host_routing = torch.zeros((rows, *spec.routing_shape[1:]),
                                             dtype=torch.float32, pin_memory=pin)  # fmt: skip
            self.routing = self._host_routing.numpy()
        if pin:
            self._dev_images = torch.zeros_like(host_images, device=self._device)
            self._dev_present = torch.zeros_like(host_present, device=self._device)
        else:
            self._dev_images, self._dev_present = host_images, host_present
        self._dev_index = torch.zeros((rows, *spec.input_size), dtype=torch.int64,
                                      device=self._device)  # fmt: skip
        self._dev_confidence = torch.zeros((rows, *spec.input_size), dtype=torch.float32,
                                           device=self._device)
        if self.present.dtype != np.bool_:
            raise AssertionError("torch backend present buffer must be bool")

    @torch.inference_mode()
    def run(self, rows: int = 1) -> None:
        """H2D copy (non-blocking from pinned memory), forward, argmax/max, D2H copy.

        Only the first ``rows`` frames of the buffers are run.
        """
        host_images, host_present, host_labels, host_confidence = (t[:rows] for t in self._host)
        dev_images, dev_present = self._dev_images[:rows], self._dev_present[:rows]
        if self._dev_images is not self._host[0]:
            dev_images.copy_(host_images, non_blocking=True)
            dev_present.copy_(host_present, non_blocking=True)
        with self._autocast:
            outputs = self._forward(dev_images, dev_present)
        logits = outputs["logits"]
        if self._host_routing is not None:
            self._host_routing[:rows].copy_(outputs["routing_weights"].float(), non_blocking=True)
        probabilities = logits.float().softmax(dim=1)
        dev_index, dev_confidence = self._dev_index[:rows], self._dev_confidence[:rows]
        torch.max(probabilities, dim=1, out=(dev_confidence, dev_index))
        host_labels.copy_(dev_index, non_blocking=True)
        host_confidence.copy_(dev_confidence, non_blocking=True)
        if self._device.type == "cuda":
            torch.cuda.current_stream(self._device).synchronize()

    def close(self) -> None:
        """Drop the model (frees its device memory)."""
        self._model = self._forward = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
