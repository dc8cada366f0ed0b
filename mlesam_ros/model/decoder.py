"""SAM's mask decoder repurposed for semantic segmentation: one mask token per class.

Both decoders are segment-anything's ``MaskDecoder`` with ``num_multimask_outputs = C - 1`` (so
C mask tokens and C hypernetwork MLPs), used without prompts: a few learned sparse prompt
tokens and a learned dense embedding (SAM's ``no_mask_embed``) stand in for points/boxes/masks,
and the positional encoding is SAM's ``PositionEmbeddingRandom``. SAM's IoU head has no
meaning for classes and is removed; the IoU token stays because the pretrained two-way
transformer attends to it. They differ in how the stride-4 and stride-8 pyramid levels reach
the masks:

- ``SemanticMaskDecoder`` (SAM ViT family): SAM 1 has no high-resolution layers, so, as in
  SAM-HQ, new layers add the levels to the upscaled mask features before the per-class dot
  products.
- ``SAM2SemanticMaskDecoder`` (SAM 2 Hiera family): SAM 2's own high-resolution path, with its
  pretrained ``conv_s0``/``conv_s1``: the projected levels are added inside the output
  upscaling, exactly as sam2's ``MaskDecoder(use_high_res_features=True)`` does, and SAM 2's
  object-score token joins the tokens its transformer was trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, TwoWayTransformer
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from torch import nn


class _PromptFreeMaskDecoder(MaskDecoder):
    """Per-class SAM mask decoder without prompts; subclasses add the high-resolution path."""

    def __init__(
        self,
        *,
        num_classes: int,
        transformer_dim: int,
        depth: int,
        mlp_dim: int,
        num_heads: int,
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

    def output_tokens(self) -> list[torch.Tensor]:
        """Learned (1, D) tokens placed before the mask tokens, in the pretrained order."""
        return [self.iou_token.weight]

    def upscale(
        self, src: torch.Tensor, features_4: torch.Tensor, features_8: torch.Tensor
    ) -> torch.Tensor:
        """(B, D, h, w) transformer output → (B, D / 8, 4h, 4w) mask features."""
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self,
        image_embedding: torch.Tensor,
        features_4: torch.Tensor,
        features_8: torch.Tensor,
    ) -> torch.Tensor:
        """Per-class mask logits at stride 4: (B, C, 4h, 4w) from a (B, D, h, w) embedding.

        ``features_4`` and ``features_8`` are the stride-4 and stride-8 pyramid levels.
        """
        batch, _, height, width = image_embedding.shape
        image_pe = self.pe_layer((height, width)).unsqueeze(0)
        leading = self.output_tokens()
        tokens = torch.cat([*leading, self.mask_tokens.weight, self.prompt_tokens], dim=0)
        tokens = tokens.unsqueeze(0).expand(batch, -1, -1)
        src = image_embedding + self.no_mask_embed.weight.reshape(1, -1, 1, 1)
        hs, src = self.transformer(src, image_pe, tokens)
        mask_tokens_out = hs[:, len(leading) : len(leading) + self.num_mask_tokens, :]

        src = src.transpose(1, 2).reshape(batch, -1, height, width)
        upscaled = self.upscale(src, features_4, features_8)

        # A static loop over the C class hypernetworks, as SAM does for its mask tokens.
        hypernetworks = self.output_hypernetworks_mlps
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(hypernetworks)], dim=1
        )
        _, channels, up_h, up_w = upscaled.shape
        masks = hyper_in @ upscaled.reshape(batch, channels, up_h * up_w)
        return masks.reshape(batch, -1, up_h, up_w)


class SemanticMaskDecoder(_PromptFreeMaskDecoder):
    """SAM 1's decoder with SAM-HQ-style high-resolution injection (new, trained layers)."""

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
            num_classes=num_classes,
            transformer_dim=transformer_dim,
            depth=depth,
            mlp_dim=mlp_dim,
            num_heads=num_heads,
            num_prompt_tokens=num_prompt_tokens,
        )
        mask_dim = transformer_dim // 8
        self.high_res_4 = nn.Sequential(
            nn.Conv2d(pyramid_dim, mask_dim, kernel_size=1), LayerNorm2d(mask_dim), nn.GELU()
        )
        self.high_res_8 = nn.Sequential(
            nn.Conv2d(pyramid_dim, mask_dim, kernel_size=1), LayerNorm2d(mask_dim), nn.GELU()
        )
        self.high_res_out = nn.Conv2d(mask_dim, mask_dim, kernel_size=3, padding=1)

    def upscale(
        self, src: torch.Tensor, features_4: torch.Tensor, features_8: torch.Tensor
    ) -> torch.Tensor:
        """SAM's upscaling, then the projected stride-4/8 levels added after it."""
        upscaled = self.output_upscaling(src)
        high_res = self.high_res_4(features_4) + F.interpolate(
            self.high_res_8(features_8),
            size=features_4.shape[-2:],
            mode="bilinear",
            align_corners=False,
        )
        return upscaled + self.high_res_out(high_res)


class SAM2SemanticMaskDecoder(_PromptFreeMaskDecoder):
    """SAM 2's decoder: its pretrained ``conv_s0``/``conv_s1`` feed the levels into upscaling.

    Module names and shapes are those of sam2's ``MaskDecoder`` (``conv_s0``: D → D/8 at stride
    4, ``conv_s1``: D → D/4 at stride 8, ``obj_score_token``), so SAM 2 checkpoints load into
    them. The object-score and IoU heads are not used for classes and are not built.
    """

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
            num_classes=num_classes,
            transformer_dim=transformer_dim,
            depth=depth,
            mlp_dim=mlp_dim,
            num_heads=num_heads,
            num_prompt_tokens=num_prompt_tokens,
        )
        # SAM 2.x models predict object scores, so their transformer always saw this token first.
        self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.conv_s0 = nn.Conv2d(pyramid_dim, transformer_dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(pyramid_dim, transformer_dim // 4, kernel_size=1)

    def output_tokens(self) -> list[torch.Tensor]:
        """SAM 2's order: object-score token, IoU token (then the mask tokens)."""
        return [self.obj_score_token.weight, self.iou_token.weight]

    def upscale(
        self, src: torch.Tensor, features_4: torch.Tensor, features_8: torch.Tensor
    ) -> torch.Tensor:
        """``sam2.modeling.sam.mask_decoder.MaskDecoder.predict_masks``' high-res upscaling."""
        deconv_1, norm_1, act_1, deconv_2, act_2 = self.output_upscaling
        upscaled = act_1(norm_1(deconv_1(src) + self.conv_s1(features_8)))
        return act_2(deconv_2(upscaled) + self.conv_s0(features_4))
