"""SAM's ViT image encoder (from segment-anything) run with LoRA experts and pyramid taps."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from segment_anything.modeling import ImageEncoderViT
from torch import nn

from mlesam_ros.model.attention import use_fused_attention
from mlesam_ros.model.lora import inject_lora
from mlesam_ros.model.presets import SAMPreset


def build_image_encoder(preset: SAMPreset) -> ImageEncoderViT:
    """SAM's encoder exactly as ``segment_anything.build_sam`` builds it for this size."""
    return ImageEncoderViT(
        depth=preset.depth,
        embed_dim=preset.embed_dim,
        img_size=preset.img_size,
        mlp_ratio=preset.mlp_ratio,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_heads=preset.num_heads,
        patch_size=preset.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=preset.global_attn_indexes,
        window_size=preset.window_size,
        out_chans=preset.out_chans,
    )


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Fit SAM's absolute position embedding (1, h, w, C) to another token grid.

    SAM only runs at its native size; bicubic resizing (as ViTDet and SAM-HQ do) lets the model
    train and deploy at e.g. 512x512 or non-square inputs. Native size is returned untouched,
    so stock SAM behaviour is reproduced exactly there.
    """
    if tuple(pos_embed.shape[1:3]) == tuple(grid):
        return pos_embed
    resized = F.interpolate(
        pos_embed.permute(0, 3, 1, 2), size=grid, mode="bicubic", align_corners=False
    )
    return resized.permute(0, 2, 3, 1)


class LoRABackbone(nn.Module):
    """A SAM ``ImageEncoderViT`` with per-modality LoRA experts, returning pyramid taps.

    Input is one modality-major batch ``(M * B, 3, H, W)`` of normalised images. The encoder's
    own modules run in order; iterating ``blocks`` here (instead of ``encoder.forward``) gives
    the intermediate taps and the position-embedding resize for other input sizes. Attention
    runs through SDPA (``model.attention.FusedAttention``, same parameters and results);
    ``set_attention_impl(model, "stock")`` switches back to segment-anything's code.
    """

    def __init__(
        self,
        encoder: ImageEncoderViT,
        num_experts: int,
        taps: tuple[int, ...],
        lora_rank: int,
        lora_alpha: float,
    ) -> None:
        super().__init__()
        use_fused_attention(encoder)
        inject_lora(encoder, num_experts, lora_rank, lora_alpha)
        self.encoder = encoder
        self.taps = tuple(taps)
        # Recompute each block's activations in the backward pass instead of storing them
        # (ViT-B at 1024 x 4 modalities); set by training, off for inference and export.
        self.gradient_checkpointing = False

    def forward(
        self, images: torch.Tensor, expert_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Return the tapped blocks' outputs, each ``(N, embed_dim, H / 16, W / 16)``.

        ``images`` is modality-major ``(M * B, 3, H, W)``, or with ``expert_ids`` (N,) any
        N images, each run with the LoRA expert of its modality index.
        """
        x = self.encoder.patch_embed(images)
        if self.encoder.pos_embed is not None:
            x = x + resize_pos_embed(self.encoder.pos_embed, (x.shape[1], x.shape[2]))
        taps = []
        checkpointing = self.gradient_checkpointing and torch.is_grad_enabled()
        for index, block in enumerate(self.encoder.blocks):
            if checkpointing:
                x = torch.utils.checkpoint.checkpoint(
                    _run_block, block, x, expert_ids, use_reentrant=False
                )
            else:
                x = _run_block(block, x, expert_ids)
            if index in self.taps:
                taps.append(x.permute(0, 3, 1, 2))
        return taps

    def bake_position_embedding(self, image_size: tuple[int, int]) -> None:
        """Store the position embedding already resized for ``image_size`` (H, W).

        For deployment: the forward pass then adds it as is, so an exported graph holds a
        constant instead of a bicubic Resize that TensorRT cannot parse. Outputs at that size
        are unchanged; the parameter's shape changes, so bake a copy, not a model to train.
        """
        if self.encoder.pos_embed is None:
            return
        patch = self.encoder.patch_embed.proj.kernel_size
        grid = (image_size[0] // patch[0], image_size[1] // patch[1])
        with torch.no_grad():
            resized = resize_pos_embed(self.encoder.pos_embed, grid).clone()
        self.encoder.pos_embed = nn.Parameter(resized, requires_grad=False)

    def neck(self, features: torch.Tensor) -> torch.Tensor:
        """Apply SAM's neck: (N, embed_dim, h, w) block features → (N, 256, h, w) embedding."""
        return self.encoder.neck(features)


def _run_block(block: nn.Module, x: torch.Tensor, expert_ids: torch.Tensor | None) -> torch.Tensor:
    """Run one ViT block with its LoRA experts picked per sample (``None``: equal blocks).

    The ids are set around the call, inside what gradient checkpointing recomputes.
    """
    qkv = getattr(getattr(block, "attn", None), "qkv", None)
    if expert_ids is None or qkv is None or not hasattr(qkv, "expert_ids"):
        return block(x)
    qkv.expert_ids = expert_ids
    try:
        return block(x)
    finally:
        qkv.expert_ids = None
