"""Mixing modalities per pyramid level over the modalities that are present.

Absent modalities must have exactly zero influence (a dead sensor may deliver garbage or NaN),
so their features are removed with ``torch.where`` before anything is summed: multiplying by a
zero weight would turn NaN into NaN. Everything is static tensor maths (no boolean indexing,
no data-dependent branches, no sort) so the graph exports to ONNX unchanged.

Three routers (``ROUTERS``):

- ``paper``: the MLE-SAM paper's formula — global average pool, one shared linear layer, a
  sigmoid score per modality, a softmax over the scores. Kept for fidelity. Its weights cannot
  express much: sigmoid scores lie in (0, 1), so a softmax over them caps any weight ratio at
  e, and saturated sigmoids pass no gradient.
- ``softmax``: one weight per modality from the modality's pooled features *and* the pooled
  features of the other present modalities (a leave-one-out consensus, so a sensor that
  disagrees with the rest can be told apart from one that is merely different), raw scores,
  a softmax with a learned temperature: ratios are unbounded.
- ``spatial``: the same per pixel of each level, so a sensor that lies in part of the view
  (a covered lens sector, a misregistered edge) is outweighed there and kept elsewhere.

Router maths runs in float32 even under autocast: scores that differ by less than bf16's
resolution would otherwise tie, and a softmax over them loses the ranking.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

ROUTERS = ("paper", "softmax", "spatial")


def _expand(present: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, M[, ...]) mask → broadcastable to ``like`` (B, M, ...)."""
    return present.reshape(present.shape + (1,) * (like.dim() - present.dim()))


def masked_softmax(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 restricted to ``present``; absent entries get exactly 0.

    ``scores`` (B, M, ...) and ``present`` broadcastable to it. Masked scores use the dtype's
    lowest finite value rather than -inf, so a row with nothing present yields all-zero
    weights (fused features 0, finite logits) instead of NaN.
    """
    present = _expand(present, scores).expand_as(scores)
    lowest = torch.finfo(scores.dtype).min
    masked = torch.where(present, scores, torch.full_like(scores, lowest))
    weights = torch.softmax(masked, dim=1)
    return torch.where(present, weights, torch.zeros_like(weights))


def top_k_mask(scores: torch.Tensor, present: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly ``min(k, present)`` modalities per row (dim 1), ties to the lower index.

    A rank by pairwise comparison (``M x M``, M ≤ 5) instead of ``topk``/``sort``: exact k even
    when scores tie (``scores >= kth`` would keep every tied one), deterministic on every
    backend, and plain elementwise maths in an exported graph.
    """
    present = _expand(present, scores).expand_as(scores)
    modalities = scores.shape[1]
    index = torch.arange(modalities, device=scores.device)
    # better[b, i, j, ...]: modality j outranks modality i (j present, higher score or tied
    # with a lower index).
    own = scores.unsqueeze(2)
    other = scores.unsqueeze(1)
    earlier = (index.reshape(1, 1, modalities) < index.reshape(1, modalities, 1)).reshape(
        (1, modalities, modalities) + (1,) * (scores.dim() - 2)
    )
    better = (other > own) | ((other == own) & earlier)
    better = better & present.unsqueeze(1)
    rank = better.sum(dim=2)
    return present & (rank < k)


def _without_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Turn autocast off on ``device`` (nothing to turn off on e.g. the meta device)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


class _Float32(nn.Module):
    """Base for routers: run ``route`` in float32 with autocast off."""

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Weights (B, M) or (B, M, h, w) over present modalities, float32."""
        with _without_autocast(features.device):
            return self.route(features.float(), present)

    def route(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class PaperRouter(_Float32):
    """The paper's router: GAP → linear → sigmoid score per modality → softmax over modalities.

    One linear layer is shared by all modalities (each modality's features already carry its
    expert's signature). ``top_k`` > 0 keeps only the k best-scored present modalities.
    """

    def __init__(self, dim: int, top_k: int = 0) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.top_k = top_k

    def route(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Weights (B, M) summing to 1 over the kept modalities; ``features`` (B, M, C, h, w)."""
        pooled = features.mean(dim=(3, 4))
        scores = torch.sigmoid(self.score(pooled)).squeeze(-1)
        keep = top_k_mask(scores, present, self.top_k) if self.top_k else present
        return masked_softmax(scores, keep)


def leave_one_out_mean(features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Return, per modality, the mean of the *other* present modalities' features (0 if none).

    ``features`` (B, M, ...) with absent entries already zero.
    """
    mask = _expand(present, features).to(features.dtype)
    total = features.sum(dim=1, keepdim=True)
    count = mask.sum(dim=1, keepdim=True)
    others = (count - mask).clamp_min(1.0)
    return (total - features * mask) / others


class _ConsensusRouter(_Float32):
    """Score each modality from its own features and the others' consensus.

    A softmax over the raw scores with a learned temperature gives the weights (the shared
    code of ``softmax`` and ``spatial``). Features are handled channel-last so every layer is
    a ``Linear`` over channels: the exported graph keeps static shapes (no reshapes of the
    batch and modality axes).
    """

    spatial = False

    def __init__(self, dim: int, top_k: int = 0, hidden: int = 64) -> None:
        super().__init__()
        self.top_k = top_k
        self.norm = nn.LayerNorm(dim)
        # Own features, the consensus and their product (agreement) → a hidden layer → score.
        self.own = nn.Linear(dim, hidden)
        self.consensus = nn.Linear(dim, hidden, bias=False)
        self.agreement = nn.Linear(dim, hidden, bias=False)
        self.score = nn.Linear(hidden, 1)
        # Zero last layer: every modality starts at the same score (uniform mixing, as the
        # mean path), and training moves it away only where that helps.
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def _scores(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Raw scores (B, M) or (B, M, h, w) from features (B, M, C, h, w)."""
        if self.spatial:
            channels_last = features.permute(0, 1, 3, 4, 2)  # (B, M, h, w, C)
        else:
            channels_last = features.mean(dim=(3, 4))  # (B, M, C)
        own = self.norm(channels_last)
        own = torch.where(_expand(present, own), own, torch.zeros_like(own))
        others = leave_one_out_mean(own, present)
        hidden = F.gelu(self.own(own) + self.consensus(others) + self.agreement(own * others))
        return self.score(hidden).squeeze(-1)

    def route(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Weights (B, M) (``softmax``) or (B, M, h, w) (``spatial``), float32."""
        scores = self._scores(features, present) / self.log_temperature.exp()
        keep = top_k_mask(scores, present, self.top_k) if self.top_k else present
        return masked_softmax(scores, keep)


class SoftmaxRouter(_ConsensusRouter):
    """One weight per modality and sample (see the module docstring)."""

    spatial = False


class SpatialRouter(_ConsensusRouter):
    """One weight per modality and pixel of the level (see the module docstring)."""

    spatial = True


def build_router(kind: str, dim: int, top_k: int = 0) -> _Float32:
    """Build the router named ``kind`` (one of ``ROUTERS``) for ``dim``-channel features."""
    if kind == "paper":
        return PaperRouter(dim, top_k)
    if kind == "softmax":
        return SoftmaxRouter(dim, top_k)
    if kind == "spatial":
        return SpatialRouter(dim, top_k)
    raise ValueError(f"router: unknown {kind!r}; choose from {', '.join(ROUTERS)}")


class ModalityFusion(nn.Module):
    """Fuse (B, M, C, h, w) features into (B, C, h, w): ``router``, ``mean`` or ``both``.

    ``both`` averages the routed and the mean-integrated features (the paper's setting uses
    both paths). Setting ``mode`` to ``mean`` on a trained model removes its router (the
    ablation in ``benchmarks/bench_robustness.py``). Both paths are weightings, so fusion is
    one weighted sum, done in float32.
    ``forward`` returns the fused features and the weights per modality (B, M) — for a
    spatial router their mean over the level's pixels — for diagnostics.
    """

    def __init__(
        self, dim: int, mode: str = "both", top_k: int = 0, router: str = "paper"
    ) -> None:
        super().__init__()
        self.mode = mode
        self.router = build_router(router, dim, top_k) if mode in ("router", "both") else None

    def forward(
        self, features: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return fused features (input dtype) and the per-modality weights used (B, M)."""
        features = torch.where(_expand(present, features), features, torch.zeros_like(features))
        # The mean path is a uniform weighting of the present modalities.
        weights = masked_softmax(torch.zeros(present.shape, device=features.device), present)
        if self.router is not None and self.mode != "mean":
            routed = self.router(features, present)
            if self.mode == "router":
                weights = routed
            else:
                weights = 0.5 * (routed + _expand(weights, routed))
        with _without_autocast(features.device):
            full = weights if weights.dim() == 4 else weights[..., None, None]
            fused = (full.unsqueeze(2) * features.float()).sum(dim=1)
        summary = weights if weights.dim() == 2 else weights.mean(dim=(2, 3))
        return fused.to(features.dtype), summary
