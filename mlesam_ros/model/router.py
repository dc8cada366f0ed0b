"""Mixing modalities per pyramid level over the modalities that are present.

Absent modalities must have exactly zero influence (a dead sensor may deliver garbage or NaN),
so their features are removed with ``torch.where`` before anything is summed: multiplying by a
zero weight would turn NaN into NaN. Everything is static tensor maths (no boolean indexing,
no data-dependent branches) so the graph exports to ONNX unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def _expand(present: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, M) mask → broadcastable to ``like`` (B, M, ...)."""
    return present.reshape(present.shape + (1,) * (like.dim() - 2))


def masked_softmax(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 restricted to ``present``; absent entries get exactly 0.

    Masked scores use the dtype's lowest finite value rather than -inf, so a row with nothing
    present yields all-zero weights (fused features 0, finite logits) instead of NaN.
    """
    lowest = torch.finfo(scores.dtype).min
    masked = torch.where(present, scores, torch.full_like(scores, lowest))
    weights = torch.softmax(masked, dim=1)
    return torch.where(present, weights, torch.zeros_like(weights))


class ModalityRouter(nn.Module):
    """The paper's router: GAP → linear → sigmoid score per modality → softmax over modalities.

    One linear layer is shared by all modalities (each modality's features already carry its
    expert's signature). ``top_k`` > 0 keeps only the k best-scored present modalities.
    """

    def __init__(self, dim: int, top_k: int = 0) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.top_k = top_k

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Weights (B, M) summing to 1 over present modalities; ``features`` (B, M, C, h, w)."""
        pooled = features.mean(dim=(3, 4))
        scores = torch.sigmoid(self.score(pooled)).squeeze(-1)
        keep = present
        if self.top_k:
            # Sigmoid scores lie in (0, 1); absent ones become -1, so the k-th best score is a
            # present one, or -1 when fewer than k are present and then every present one stays.
            scores = torch.where(present, scores, torch.full_like(scores, -1.0))
            kth = torch.topk(scores, self.top_k, dim=1).values[:, -1:]
            keep = present & (scores >= kth)
        return masked_softmax(scores, keep)


class ModalityFusion(nn.Module):
    """Fuse (B, M, C, h, w) features into (B, C, h, w): ``router``, ``mean`` or ``both``.

    ``both`` averages the routed and the mean-integrated features (the paper's best setting
    uses both paths). Both paths are weightings, so fusion is one weighted sum.
    """

    def __init__(self, dim: int, mode: str = "both", top_k: int = 0) -> None:
        super().__init__()
        self.mode = mode
        self.router = ModalityRouter(dim, top_k) if mode in ("router", "both") else None

    def forward(
        self, features: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return fused features and the per-modality weights used (B, M)."""
        features = torch.where(_expand(present, features), features, torch.zeros_like(features))
        # The mean path is a uniform weighting of the present modalities.
        weights = masked_softmax(torch.zeros_like(present, dtype=features.dtype), present)
        if self.router is not None:
            routed = self.router(features, present)
            weights = routed if self.mode == "router" else 0.5 * (routed + weights)
        return torch.einsum("bm,bmchw->bchw", weights, features), weights
