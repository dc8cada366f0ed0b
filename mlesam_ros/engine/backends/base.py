"""What every backend provides: pre-allocated host buffers and one ``run`` per batch.

The ``Segmenter`` writes each batch of frames into ``images``/``present`` in place and reads
``labels`` and ``confidence`` back, so a backend allocates its buffers once at construction
(for ``capacity`` frames) and never on the hot path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from mlesam_ros.engine.spec import ModelSpec


class Backend(ABC):
    """A loaded model on one runtime; buffers are host numpy arrays owned by the backend.

    Every buffer holds ``capacity`` frames: the graph's static batch, or for a dynamic batch
    the most frames one call may take (``Segmenter(max_batch=...)``).
    """

    name: str
    device: str
    spec: ModelSpec
    capacity: int = 1
    images: np.ndarray  # (capacity, M, 3, H, W) float32
    present: np.ndarray  # (capacity, M) bool or float32, as spec.present_dtype says
    labels: np.ndarray  # (capacity, H, W) integer
    confidence: np.ndarray  # (capacity, H, W) float32
    routing: np.ndarray | None = None  # (capacity, levels, M) float32 when the artefact has it

    @staticmethod
    def batch_capacity(spec: ModelSpec, max_batch: int) -> int:
        """Frames per call: a static graph's batch, else ``max_batch`` (at least 1)."""
        if max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
        return spec.batch or max_batch

    def _allocate_host(self, spec: ModelSpec, capacity: int = 1) -> None:
        """Plain host buffers; CUDA backends override with pinned ones."""
        self.capacity = capacity
        modalities = len(spec.modalities)
        self.images = np.zeros((capacity, modalities, 3, *spec.input_size), dtype=np.float32)
        self.present = np.ones((capacity, modalities), dtype=spec.present_dtype)
        self.labels = np.zeros((capacity, *spec.input_size), dtype=spec.label_dtype)
        self.confidence = np.zeros((capacity, *spec.input_size), dtype=np.float32)
        self.routing = None
        if spec.routing_shape is not None:
            self.routing = np.zeros((capacity, *spec.routing_shape[1:]), dtype=np.float32)

    @abstractmethod
    def run(self, rows: int = 1) -> None:
        """Run the first ``rows`` frames of ``images``/``present`` into ``labels``/``confidence``.

        A static graph always runs all ``capacity`` frames.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing special
        """Release runtime resources (sessions, engines, CUDA memory)."""


class LogitsToLabels:
    """Argmax and softmax-max of (B, C, H, W) logits into pre-allocated numpy buffers.

    For ONNX files exported with ``--output logits`` on the CPU: numpy's ``out=`` arguments
    keep the per-frame work allocation-free.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self._scratch = np.empty((spec.num_classes, *spec.input_size), dtype=np.float32)
        self._index = np.empty(spec.input_size, dtype=np.intp)

    def __call__(self, logits: np.ndarray, labels: np.ndarray, confidence: np.ndarray) -> None:
        """Fill labels = argmax, confidence = max softmax probability = 1 / Σ exp(l - max l).

        ``logits`` (B, C, H, W), ``labels``/``confidence`` (B, H, W) or (H, W) for one frame.
        """
        if logits.shape[0] != 1 or labels.ndim == 3:
            for row in range(logits.shape[0]):
                self(logits[row : row + 1], labels[row], confidence[row])
            return
        scores = logits[0]
        np.argmax(scores, axis=0, out=self._index)
        labels[...] = self._index
        np.max(scores, axis=0, out=confidence)
        np.subtract(scores, confidence, out=self._scratch)
        np.exp(self._scratch, out=self._scratch)
        np.sum(self._scratch, axis=0, out=confidence)
        np.reciprocal(confidence, out=confidence)
