"""The model's answer checked per frame before anything is published.

A model whose labels hold ids outside its classes (200 for a 25-class model, or -1 that a
uint8 output turns into 255), or whose confidence is not a probability, is broken or does not
match its metadata: publishing those labels would hand a tracker ids that name nothing. Such
a frame is an inference error: counted under ``dropped_inference_error``, reported (the
pipeline's diagnostics go ERROR with the reason) and not published.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CONFIDENCE_TOLERANCE = 1e-3
"""How far outside [0, 1] a confidence may round (fp16 softmax) before it is an error."""


class ModelOutputError(ValueError):
    """The model returned values no frame may carry; the frame is dropped."""


def check_model_output(segmentation: Any, num_classes: int) -> None:
    """Raise :class:`ModelOutputError` unless labels, confidence and routing are in range.

    ``segmentation`` has ``labels`` (H, W) integers, ``confidence`` (H, W) or None and
    optionally ``routing_weights``.
    """
    labels = np.asarray(segmentation.labels)
    if labels.size == 0:
        raise ModelOutputError("model output: empty labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ModelOutputError(f"model output: labels are {labels.dtype}, not class ids")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        outside = int(np.count_nonzero((labels < 0) | (labels >= num_classes)))
        raise ModelOutputError(
            f"model output: labels hold class ids {low}..{high}, outside the model's "
            f"0..{num_classes - 1} ({outside} pixels); the model does not match its class "
            "names (re-export it with `mlesam export`); frame dropped"
        )
    confidence = getattr(segmentation, "confidence", None)
    if confidence is not None:
        confidence = np.asarray(confidence)
        finite = np.isfinite(confidence)
        if not finite.all():
            raise ModelOutputError(
                f"model output: confidence has {int(confidence.size - finite.sum())} NaN or "
                "infinite pixels; frame dropped"
            )
        low_c, high_c = float(confidence.min()), float(confidence.max())
        if low_c < -CONFIDENCE_TOLERANCE or high_c > 1 + CONFIDENCE_TOLERANCE:
            raise ModelOutputError(
                f"model output: confidence spans {low_c:.4g}..{high_c:.4g}, not a probability "
                "in 0..1; frame dropped"
            )
    routing = getattr(segmentation, "routing_weights", None)
    if routing is not None and not np.isfinite(np.asarray(routing)).all():
        raise ModelOutputError("model output: routing_weights hold NaN or inf; frame dropped")


__all__ = ["CONFIDENCE_TOLERANCE", "ModelOutputError", "check_model_output"]
