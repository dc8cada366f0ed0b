"""What every backend provides: pre-allocated host buffers and one ``run`` per frame.

The ``Segmenter`` writes each frame into ``images``/``present`` in place and reads ``labels``
and ``confidence`` back, so a backend allocates its buffers once at construction and never on
the hot path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from mlesam_ros.engine.spec import ModelSpec


class Backend(ABC):
    """A loaded model on one runtime; buffers are host numpy arrays owned by the backend."""

    name: str
    device: str
    spec: ModelSpec
    images: np.ndarray  # (1, M, 3, H, W) float32
    present: np.ndarray  # (1, M) bool or float32, as spec.present_dtype says
    labels: np.ndarray  # (H, W) integer
    confidence: np.ndarray  # (H, W) float32
    routing: np.ndarray | None = None  # (levels, M) float32 when the artefact outputs it

    def _allocate_host(self, spec: ModelSpec) -> None:
        """Plain host buffers; CUDA backends override with pinned ones."""
        self.images = np.zeros(spec.images_shape, dtype=np.float32)
        self.present = np.ones((1, len(spec.modalities)), dtype=spec.present_dtype)
        self.labels = np.zeros(spec.input_size, dtype=spec.label_dtype)
        self.confidence = np.zeros(spec.input_size, dtype=np.float32)
        self.routing = None
        if spec.routing_shape is not None:
            self.routing = np.zeros(spec.routing_shape[1:], dtype=np.float32)

    @abstractmethod
    def run(self) -> None:
        """Run the model on ``images``/``present`` and fill ``labels``/``confidence``."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing special
        """Release runtime resources (sessions, engines, CUDA memory)."""


class LogitsToLabels:
    """Argmax and softmax-max of (1, C, H, W) logits into pre-allocated numpy buffers.

    For ONNX files exported with ``--output logits`` on the CPU: numpy's ``out=`` arguments
    keep the per-frame work allocation-free.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self._scratch = np.empty((spec.num_classes, *spec.input_size), dtype=np.float32)
        self._index = np.empty(spec.input_size, dtype=np.intp)

    def __call__(self, logits: np.ndarray, labels: np.ndarray, confidence: np.ndarray) -> None:
        """Fill labels = argmax, confidence = max softmax probability = 1 / Σ exp(l - max l)."""
        scores = logits[0]
        np.argmax(scores, axis=0, out=self._index)
        labels[...] = self._index
        np.max(scores, axis=0, out=confidence)
        np.subtract(scores, confidence, out=self._scratch)
        np.exp(self._scratch, out=self._scratch)
        np.sum(self._scratch, axis=0, out=confidence)
        np.reciprocal(confidence, out=confidence)
