"""Per-modality LoRA experts on the Q and V projections of SAM's attention blocks.

SAM's ``Attention`` computes Q, K and V with one ``nn.Linear(dim, 3 * dim)`` (SAM 2's Hiera
with ``nn.Linear(dim, 3 * dim_out)``, wider at stage transitions). ``LoRAQKV``
replaces that linear: the frozen projection is shared by every sample, and each sample adds
its own modality's low-rank update. The batch is modality-major (all samples of modality 0,
then modality 1, ...), and SAM's window partition keeps each sample's windows contiguous, so
the tokens of expert ``m`` are one contiguous block: ``x.reshape(M, -1, dim)`` lines them up
with the stacked expert matrices and one batched matmul applies all experts at once. No
Python loop over modalities, and the graph is static for ONNX export.

Written by hand because peft's LoRA applies one adapter per forward call, not a different
adapter per batch block.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRAQKV(nn.Module):
    """A frozen ``qkv`` linear plus M rank-r experts on its Q and V thirds.

    ``B`` matrices start at zero, so an untrained expert leaves SAM's output unchanged.
    """

    def __init__(self, base: nn.Linear, num_experts: int, rank: int, alpha: float) -> None:
        super().__init__()
        dim, dim_out = base.in_features, base.out_features // 3
        if base.out_features != 3 * dim_out:
            raise ValueError(f"LoRAQKV: expected a (dim, 3*dim_out) qkv linear, got {base}")
        self.dim_out = dim_out
        self.base = base
        self.num_experts = num_experts
        self.rank = rank
        self.scale = alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_a_q = nn.Parameter(torch.empty(num_experts, dim, rank, **factory))
        self.lora_b_q = nn.Parameter(torch.zeros(num_experts, rank, dim_out, **factory))
        self.lora_a_v = nn.Parameter(torch.empty(num_experts, dim, rank, **factory))
        self.lora_b_v = nn.Parameter(torch.zeros(num_experts, rank, dim_out, **factory))
        # Per-sample expert index (N,) for a batch that is not M equal modality blocks (the
        # torch path skipping absent modalities); None = modality-major equal blocks.
        self.expert_ids: torch.Tensor | None = None
        for a in (self.lora_a_q, self.lora_a_v):
            # The nn.Linear / peft default for the down-projection, per expert.
            bound = 1.0 / math.sqrt(dim)
            nn.init.uniform_(a, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (M * N, ..., dim), modality-major; returns (M * N, ..., 3 * dim_out)."""
        qkv = self.base(x)
        dim = x.shape[-1]
        a_q, b_q, a_v, b_v = self.lora_a_q, self.lora_b_q, self.lora_a_v, self.lora_b_v
        if self.expert_ids is None:
            tokens = x.reshape(self.num_experts, -1, dim)
        else:
            # One block per sample (a sample's windows are contiguous), each with its expert.
            tokens = x.reshape(self.expert_ids.shape[0], -1, dim)
            ids = self.expert_ids
            a_q, b_q, a_v, b_v = a_q[ids], b_q[ids], a_v[ids], b_v[ids]
        delta_q = torch.matmul(torch.matmul(tokens, a_q), b_q)
        delta_v = torch.matmul(torch.matmul(tokens, a_v), b_v)
        q, k, v = qkv.split(self.dim_out, dim=-1)
        q = q + (self.scale * delta_q).reshape(q.shape)
        v = v + (self.scale * delta_v).reshape(v.shape)
        return torch.cat([q, k, v], dim=-1)


def inject_lora(encoder: nn.Module, num_experts: int, rank: int, alpha: float) -> None:
    """Replace every ``blocks[i].attn.qkv`` of a SAM ``ImageEncoderViT`` with ``LoRAQKV``."""
    for block in encoder.blocks:
        block.attn.qkv = LoRAQKV(block.attn.qkv, num_experts, rank, alpha)
