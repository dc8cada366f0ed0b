"""ViTDet's simple feature pyramid, fed by fused taps from four encoder depths.

ViTDet builds strides 4/8/16/32 from the last ViT block with deconvolutions and pooling; here
level i starts from tap i (shallow taps for fine levels), the SAM-adapter variant of the same
idea. Channel sizes and norms follow detectron2's ``SimpleFeaturePyramid`` (LayerNorm, no BN,
so no statistics are shared across the batch).
"""

from __future__ import annotations

import torch
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

STRIDES = (4, 8, 16, 32)


def _rescale(dim: int, stride: int) -> tuple[nn.Module, int]:
    """Return the stride-16 → ``stride`` resampler and its output width."""
    if stride == 4:
        return nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
            LayerNorm2d(dim // 2),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
        ), dim // 4
    if stride == 8:
        return nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2), dim // 2
    if stride == 16:
        return nn.Identity(), dim
    return nn.MaxPool2d(kernel_size=2, stride=2), dim


class SimpleFeaturePyramid(nn.Module):
    """Four fused (B, embed_dim, H/16, W/16) maps → (B, out_dim, H/s, W/s), s = 4, 8, 16, 32."""

    def __init__(self, embed_dim: int, out_dim: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        for stride in STRIDES:
            rescale, width = _rescale(embed_dim, stride)
            self.levels.append(
                nn.Sequential(
                    rescale,
                    nn.Conv2d(width, out_dim, kernel_size=1, bias=False),
                    LayerNorm2d(out_dim),
                    nn.Conv2d(out_dim, out_dim, kernel_size=3, padding=1, bias=False),
                    LayerNorm2d(out_dim),
                )
            )

    def forward(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        """One output per level, finest first."""
        return [level(tap) for level, tap in zip(self.levels, taps, strict=True)]
