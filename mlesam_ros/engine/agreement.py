"""How closely a backend reproduces a reference segmentation, measured where it is decidable.

Exact label agreement is the wrong contract between fp32 on two devices, fp16 and fp32, or
TF32 and fp32: wherever the two best classes are within rounding of each other, either label
is right. So labels are compared on all pixels *and* on the pixels whose top-2 logit margin in
the reference exceeds ``eps``; the latter is the one held to a near-1 threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Logit margin below which a pixel's label is a near-tie. fp16 keeps ~3 significant digits:
# logits of magnitude ~10 round by ~1e-2, so 0.05 leaves the decidable pixels.
DEFAULT_MARGIN_EPS = 0.05


@dataclass(frozen=True)
class Agreement:
    """Labels and confidence of one run against the reference run."""

    label_agreement: float  # fraction of all pixels with the reference label
    confident_agreement: float  # same, over pixels with reference top-2 margin > margin_eps
    confident_fraction: float  # share of pixels that are confident
    margin_eps: float
    confidence_max_abs: float
    confidence_mean_abs: float

    def to_dict(self) -> dict[str, float]:
        """JSON-able form (rounded for reports)."""
        return {key: round(float(value), 6) for key, value in asdict(self).items()}


def top2_margin(logits: np.ndarray) -> np.ndarray:
    """(C, H, W) logits → (H, W) largest minus second-largest logit."""
    top2 = np.partition(logits, -2, axis=0)[-2:]
    return top2[1] - top2[0]


def compare(
    reference_labels: np.ndarray,
    reference_confidence: np.ndarray,
    labels: np.ndarray,
    confidence: np.ndarray,
    margin: np.ndarray | None = None,
    margin_eps: float = DEFAULT_MARGIN_EPS,
) -> Agreement:
    """Compare one run with the reference; without ``margin`` every pixel counts as confident."""
    same = reference_labels == labels
    confident = np.ones(same.shape, bool) if margin is None else margin > margin_eps
    difference = np.abs(reference_confidence.astype(np.float32) - confidence.astype(np.float32))
    return Agreement(
        label_agreement=float(same.mean()),
        confident_agreement=float(same[confident].mean()) if confident.any() else 1.0,
        confident_fraction=float(confident.mean()),
        margin_eps=margin_eps,
        confidence_max_abs=float(difference.max()),
        confidence_mean_abs=float(difference.mean()),
    )
