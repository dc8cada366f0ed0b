"""PyTorch backend: the checkpoint in eager mode, optionally torch.compile'd, fp16/bf16 on CUDA.

Useful where no ONNX/TensorRT artefact exists yet (right after training) and as the reference
the other backends are compared with. Device-agnostic: CUDA when asked, CPU otherwise.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from mlesam_ros.engine.backends.base import Backend
from mlesam_ros.engine.torch_model import load_model

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend(Backend):
    """Eager (or compiled) MLE-SAM; labels and confidence computed on the device."""

    name = "torch"

    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "cpu",
        precision: str = "fp32",
        compile: bool = False,
        sam_checkpoint: str | Path | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.device = device
        self._device = torch.device(device)
        if precision != "fp32" and self._device.type != "cuda":
            raise ValueError(f"precision: {precision} autocast is for CUDA; use fp32 on {device}")
        model, self.spec = load_model(checkpoint, sam_checkpoint)
        self._model = model.to(self._device).eval()
        self._forward = torch.compile(self._model) if compile else self._model
        self._autocast = (
            torch.autocast("cuda", dtype=PRECISIONS[precision])
            if precision != "fp32" else contextlib.nullcontext()
        )
        self._allocate_buffers()

    def _allocate_buffers(self) -> None:
        """Host buffers are numpy views of (pinned, on CUDA) tensors; device twins beside them."""
        spec, pin = self.spec, self._device.type == "cuda"
        M = len(spec.modalities)
        host_images = torch.zeros(spec.images_shape, dtype=torch.float32, pin_memory=pin)
        host_present = torch.ones((1, M), dtype=torch.bool, pin_memory=pin)
        host_labels = torch.zeros(spec.input_size, dtype=getattr(torch, spec.label_dtype),
                                  pin_memory=pin)
        host_confidence = torch.zeros(spec.input_size, dtype=torch.float32, pin_memory=pin)
        self._host = (host_images, host_present, host_labels, host_confidence)
        self.images, self.present = host_images.numpy(), host_present.numpy()
        self.labels, self.confidence = host_labels.numpy(), host_confidence.numpy()
        if pin:
            self._dev_images = torch.zeros_like(host_images, device=self._device)
            self._dev_present = torch.zeros_like(host_present, device=self._device)
        else:
            self._dev_images, self._dev_present = host_images, host_present
        self._dev_index = torch.zeros(spec.input_size, dtype=torch.int64, device=self._device)
        self._dev_confidence = torch.zeros(spec.input_size, dtype=torch.float32,
                                           device=self._device)
        if self.present.dtype != np.bool_:
            raise AssertionError("torch backend present buffer must be bool")

    @torch.inference_mode()
    def run(self) -> None:
        """H2D copy (non-blocking from pinned memory), forward, argmax/max, D2H copy."""
        host_images, host_present, host_labels, host_confidence = self._host
        if self._dev_images is not host_images:
            self._dev_images.copy_(host_images, non_blocking=True)
            self._dev_present.copy_(host_present, non_blocking=True)
        with self._autocast:
            logits = self._forward(self._dev_images, self._dev_present)["logits"]
        probabilities = logits[0].float().softmax(dim=0)
        torch.max(probabilities, dim=0, out=(self._dev_confidence, self._dev_index))
        host_labels.copy_(self._dev_index, non_blocking=True)
        host_confidence.copy_(self._dev_confidence, non_blocking=True)
        if self._device.type == "cuda":
            torch.cuda.current_stream(self._device).synchronize()

    def close(self) -> None:
        """Drop the model (frees its device memory)."""
        self._model = self._forward = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
