"""SAM's encoder attention computed by ``F.scaled_dot_product_attention`` (fused kernels).

segment-anything's ``Attention`` materialises softmax(q kᵀ · scale + rel-pos) explicitly. The
same result comes from SDPA with the decomposed relative-position bias passed as an additive
float ``attn_mask``: on CUDA that runs the memory-efficient fused kernel (FlashAttention does
not take a float mask), compiles into one kernel under ``torch.compile`` and lowers to plain
MatMul/Add/Softmax in ONNX. ``FusedAttention`` keeps SAM's parameters (same names, same
tensors), so checkpoints, the official SAM loader and LoRA's ``qkv`` replacement are unchanged,
and ``fused = False`` runs segment-anything's own code for parity checks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, get_rel_pos
from torch import nn

ATTENTION_IMPLS = ("sdpa", "stock")


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """SAM's decomposed relative-position term as an additive mask (B, heads, h·w, h·w).

    ``q``: (B, heads, h·w, C), unscaled, as segment-anything's ``add_decomposed_rel_pos`` uses
    it. The (h, w) query × (h, w) key bias is rel_h[..., kh] + rel_w[..., kw], broadcast.
    """
    h, w = size
    batch, heads, _, dim = q.shape
    rh = get_rel_pos(h, h, rel_pos_h)  # (h, kh, C)
    rw = get_rel_pos(w, w, rel_pos_w)  # (w, kw, C)
    r_q = q.reshape(batch, heads, h, w, dim)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rh)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rw)
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # (B, heads, h, w, kh, kw)
    # Under autocast the einsums may return another dtype than q; SDPA wants them equal.
    return bias.reshape(batch, heads, h * w, h * w).to(q.dtype)


class FusedAttention(Attention):
    """SAM ``Attention`` whose forward uses SDPA; adopts an existing module's parameters."""

    def __init__(self, stock: Attention, fused: bool = True) -> None:
        # Deliberately not Attention.__init__: that would allocate fresh parameters; this
        # module takes over the stock module's tensors (loaded SAM weights, LoRA's qkv) as is.
        nn.Module.__init__(self)
        self.num_heads = stock.num_heads
        self.scale = stock.scale
        self.qkv = stock.qkv
        self.proj = stock.proj
        self.use_rel_pos = stock.use_rel_pos
        if self.use_rel_pos:
            self.rel_pos_h = stock.rel_pos_h
            self.rel_pos_w = stock.rel_pos_w
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, h, w, dim) tokens of one window or of the whole grid; same shape out."""
        if not self.fused:
            return super().forward(x)
        batch, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(batch, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, h·w, C)
        mask = (
            decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w))
            if self.use_rel_pos else None
        )  # fmt: skip
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(batch, h, w, -1))


def use_fused_attention(encoder: nn.Module) -> None:
    """Swap every block's ``attn`` of a SAM ``ImageEncoderViT`` for ``FusedAttention``."""
    for block in encoder.blocks:
        if not isinstance(block.attn, FusedAttention):
            block.attn = FusedAttention(block.attn)


def set_attention_impl(module: nn.Module, impl: str) -> None:
    """Choose ``sdpa`` (default, fused) or ``stock`` (segment-anything's code) everywhere."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention: {impl!r} is not one of {', '.join(ATTENTION_IMPLS)}")
    for child in module.modules():
        if isinstance(child, FusedAttention):
            child.fused = impl == "sdpa"


def attention_impl(module: nn.Module) -> str:
    """``sdpa``, ``stock``, ``mixed`` or ``none`` (no SAM attention inside ``module``)."""
    impls = {("sdpa" if child.fused else "stock") for child in module.modules()
             if isinstance(child, FusedAttention)}  # fmt: skip
    if not impls:
        return "none"
    return impls.pop() if len(impls) == 1 else "mixed"
