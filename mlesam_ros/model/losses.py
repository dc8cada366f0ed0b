"""Training losses: CE (ignore 255, optional OHEM) on fused logits plus auxiliary terms.

Each decoder pathway gets its own weighted cross-entropy, so both learn to segment alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    threshold: float = 0.7,
    min_kept: int = 100_000,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Cross-entropy over the hard pixels only (online hard example mining).

    As in mmsegmentation's OHEM sampler: keep every valid pixel whose probability of the true
    class is below ``threshold``, and at least the ``min_kept`` hardest ones.
    """
    losses = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    losses = losses[target != ignore_index]
    if losses.numel() == 0:
        return logits.sum() * 0.0
    hard = int((losses > -math.log(threshold)).sum())
    kept = max(hard, min(min_kept, losses.numel()))
    return torch.topk(losses, kept, sorted=False).values.mean()


class MLESAMLoss(nn.Module):
    """Fused-output CE plus ``mask_weight`` × mask-pathway CE plus ``aux_weight`` × aux CE.

    ``forward(outputs, target)`` takes the model's output dict and ``target`` (B, H, W) class
    ids (255 = ignore) and returns a dict with ``loss`` (to back-propagate) and its terms.
    """

    def __init__(
        self,
        *,
        mask_weight: float = 0.4,
        aux_weight: float = 0.4,
        ohem_threshold: float | None = None,
        ohem_min_kept: int = 100_000,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.weights = {"logits": 1.0, "mask_logits": mask_weight, "aux_logits": aux_weight}
        self.ohem_threshold = ohem_threshold
        self.ohem_min_kept = ohem_min_kept
        self.ignore_index = ignore_index

    def term(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One cross-entropy term (OHEM when configured); 0 when every pixel is ignored."""
        if self.ohem_threshold is not None:
            return ohem_cross_entropy(
                logits,
                target,
                threshold=self.ohem_threshold,
                min_kept=self.ohem_min_kept,
                ignore_index=self.ignore_index,
            )
        # Sum / count instead of reduction="mean": same value, but 0 (not NaN) when every
        # pixel is ignored, without a device sync.
        total = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="sum")
        return total / (target != self.ignore_index).sum().clamp(min=1)

    def forward(
        self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Weighted sum of the per-output terms, each also returned as ``loss_<output>``."""
        target = target.long()
        terms = {
            f"loss_{name}": self.term(outputs[name], target)
            for name, weight in self.weights.items()
            if weight > 0
        }
        total = sum(self.weights[name[len("loss_") :]] * value for name, value in terms.items())
        return {"loss": total, **terms}
