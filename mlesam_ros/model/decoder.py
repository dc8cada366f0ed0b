"""SAM's mask decoder repurposed for semantic segmentation: one mask token per class.

``SemanticMaskDecoder`` is segment-anything's ``MaskDecoder`` with ``num_multimask_outputs =
C - 1`` (so C mask tokens and C hypernetwork MLPs), used without prompts: a few learned
sparse prompt tokens and a learned dense embedding (SAM's ``no_mask_embed``) stand in for
points/boxes/masks, and the positional encoding is SAM's ``PositionEmbeddingRandom``. As in
SAM-HQ, high-resolution pyramid features (strides 4 and 8) are added to the upscaled mask
features before the per-class dot products. SAM's IoU head has no meaning for classes and is
removed; the IoU token stays because the pretrained two-way transformer attends to it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, TwoWayTransformer
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from torch import nn


class SemanticMaskDecoder(MaskDecoder):
    """Prompt-free, per-class SAM mask decoder with SAM-HQ-style high-resolution injection."""

    def __init__(
        self,
        *,
        num_classes: int,
        transformer_dim: int,
        depth: int,
        mlp_dim: int,
        num_heads: int,
        pyramid_dim: int,
        num_prompt_tokens: int = 1,
    ) -> None:
        super().__init__(
            transformer_dim=transformer_dim,
            transformer=TwoWayTransformer(
                depth=depth, embedding_dim=transformer_dim, mlp_dim=mlp_dim, num_heads=num_heads
            ),
            num_multimask_outputs=num_classes - 1,
        )
        del self.iou_prediction_head
        self.pe_layer = PositionEmbeddingRandom(transformer_dim // 2)
        self.prompt_tokens = nn.Parameter(0.02 * torch.randn(num_prompt_tokens, transformer_dim))
        self.no_mask_embed = nn.Embedding(1, transformer_dim)
        mask_dim = transformer_dim // 8
        self.high_res_4 = nn.Sequential(
            nn.Conv2d(pyramid_dim, mask_dim, kernel_size=1), LayerNorm2d(mask_dim), nn.GELU()
        )
        self.high_res_8 = nn.Sequential(
            nn.Conv2d(pyramid_dim, mask_dim, kernel_size=1), LayerNorm2d(mask_dim), nn.GELU()
        )
        self.high_res_out = nn.Conv2d(mask_dim, mask_dim, kernel_size=3, padding=1)

    def forward(  # type: ignore[override]
        self,
        image_embedding: torch.Tensor,
        features_4: torch.Tensor,
        features_8: torch.Tensor,
    ) -> torch.Tensor:
        """Per-class mask logits at stride 4: (B, C, 4h, 4w) from a (B, D, h, w) embedding."""
        batch, _, height, width = image_embedding.shape
        image_pe = self.pe_layer((height, width)).unsqueeze(0)
        tokens = torch.cat(
            [self.iou_token.weight, self.mask_tokens.weight, self.prompt_tokens], dim=0
        )
        tokens = tokens.unsqueeze(0).expand(batch, -1, -1)
        src = image_embedding + self.no_mask_embed.weight.reshape(1, -1, 1, 1)
        hs, src = self.transformer(src, image_pe, tokens)
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]

        src = src.transpose(1, 2).reshape(batch, -1, height, width)
        upscaled = self.output_upscaling(src)
        high_res = self.high_res_4(features_4) + F.interpolate(
            self.high_res_8(features_8),
            size=features_4.shape[-2:],
            mode="bilinear",
            align_corners=False,
        )
        upscaled = upscaled + self.high_res_out(high_res)

        # A static loop over the C class hypernetworks, as SAM does for its mask tokens.
        hypernetworks = self.output_hypernetworks_mlps
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(hypernetworks)], dim=1
        )
        _, channels, up_h, up_w = upscaled.shape
        masks = hyper_in @ upscaled.reshape(batch, channels, up_h * up_w)
        return masks.reshape(batch, -1, up_h, up_w)
