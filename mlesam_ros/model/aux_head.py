"""The auxiliary pathway: a SegFormer-style all-MLP head over every pyramid level."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn


class MultiScaleMLPHead(nn.Module):
    """SegFormer's decode head: per-level 1x1 projection, upsample to stride 4, fuse, classify.

    LayerNorm instead of SegFormer's BatchNorm keeps samples independent of each other.
    """

    def __init__(
        self,
        in_dim: int,
        embed_dim: int,
        num_classes: int,
        num_levels: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.projections = nn.ModuleList(
            nn.Conv2d(in_dim, embed_dim, kernel_size=1) for _ in range(num_levels)
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(num_levels * embed_dim, embed_dim, kernel_size=1, bias=False),
            LayerNorm2d(embed_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(embed_dim, num_classes, kernel_size=1)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Class logits at the finest level's resolution (stride 4)."""
        size = levels[0].shape[-2:]
        projected = [
            F.interpolate(proj(level), size=size, mode="bilinear", align_corners=False)
            for proj, level in zip(self.projections, levels, strict=True)
        ]
        return self.classifier(self.dropout(self.fuse(torch.cat(projected, dim=1))))
