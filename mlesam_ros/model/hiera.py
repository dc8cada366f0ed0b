"""SAM 2's Hiera image encoder (from Meta's ``sam2`` package) with LoRA experts and its FPN neck.

Hiera is hierarchical: its four stages already give the strides 4, 8, 16 and 32 that MLE-SAM
routes over, so the routers sit on the stage outputs and SAM 2's own ``FpnNeck`` turns the
fused stage outputs into the pyramid (no simple-pyramid reconstruction from one scale). The
modules are sam2's, built as ``sam2/configs/sam2.1/sam2.1_hiera_*.yaml`` builds them; this
file only wires them: LoRA on every block's ``attn.qkv``, the stage taps, and a position
embedding that can be baked for export.

``sam2`` is imported inside ``build_hiera_encoder`` only, so the ViT family works without it.
"""

from __future__ import annotations

import contextlib

import torch
import torch.utils.checkpoint
from torch import nn

from mlesam_ros.model.backbone import _run_block
from mlesam_ros.model.lora import LoRAQKV
from mlesam_ros.model.presets import SAMPreset

SAM2_INSTALL = "SAM2_BUILD_CUDA=0 pip install --no-build-isolation -e '.[sam2]'"


def build_hiera_encoder(preset: SAMPreset) -> nn.Module:
    """SAM 2's ``ImageEncoder`` (Hiera trunk + FPN neck) as sam2's config builds it for ``preset``.

    Under ``torch.device("meta")`` (``mlesam model-info``) the trunk is built on the CPU and
    moved to meta, because ``Hiera.__init__`` reads its drop-path schedule with ``.item()``.
    """
    try:
        from sam2.modeling.backbones.hieradet import Hiera
        from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
        from sam2.modeling.position_encoding import PositionEmbeddingSine
    except ImportError as error:
        raise ImportError(
            f"preset {preset.name!r} needs Meta's sam2 package (SAM 2's Hiera); install it after "
            f"torch with `{SAM2_INSTALL}` (in the checkout), or use a ViT preset (vit_b, vit_l, "
            "vit_h, tiny)"
        ) from error
    on_meta = torch.empty(0).device.type == "meta"
    with torch.device("cpu") if on_meta else contextlib.nullcontext():
        trunk = Hiera(
            embed_dim=preset.embed_dim,
            num_heads=preset.num_heads,
            stages=preset.stages,
            global_att_blocks=preset.global_attn_indexes,
            window_spec=preset.window_spec,
            window_pos_embed_bkg_spatial_size=preset.pos_embed_size,
        )
    if on_meta:
        trunk = trunk.to("meta")
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(
            num_pos_feats=preset.out_chans, normalize=True, scale=None, temperature=10000
        ),
        d_model=preset.out_chans,
        backbone_channel_list=list(reversed(preset.stage_dims)),
        fpn_top_down_levels=[2, 3],  # levels 0 and 1 (strides 4, 8) use lateral features only
        fpn_interp_model="nearest",
    )
    return ImageEncoder(trunk=trunk, neck=neck, scalp=1)


class HieraLoRABackbone(nn.Module):
    """A Hiera trunk with per-modality LoRA experts, returning its four stage outputs.

    Input is one modality-major batch ``(M * B, 3, H, W)`` of normalised images. Hiera's
    window partition keeps each sample's windows contiguous, as SAM's does, so ``LoRAQKV``
    applies all experts in one batched matmul. The trunk's own modules run in the order of
    ``Hiera.forward``; iterating here adds the baked position embedding for export.
    """

    def __init__(self, trunk: nn.Module, num_experts: int, lora_rank: int, lora_alpha: float):
        super().__init__()
        for block in trunk.blocks:
            block.attn.qkv = LoRAQKV(block.attn.qkv, num_experts, lora_rank, lora_alpha)
        self.trunk = trunk
        self.register_buffer("baked_pos_embed", None, persistent=False)
        # As LoRABackbone: recompute block activations in backward (set by training).
        self.gradient_checkpointing = False

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channels of the four stage outputs, finest first."""
        return tuple(self.trunk.blocks[end].dim_out for end in self.trunk.stage_ends)

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """Hiera's (1, h, w, C) position embedding; the baked copy when it fits ``grid``."""
        baked = self.baked_pos_embed
        if baked is not None and tuple(baked.shape[1:3]) == tuple(grid):
            return baked
        return self.trunk._get_pos_embed(grid)

    def forward(
        self, images: torch.Tensor, expert_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Stage outputs ``(N, C_s, H / s, W / s)`` for s = 4, 8, 16, 32.

        ``images`` is modality-major ``(M * B, 3, H, W)``, or with ``expert_ids`` (N,) any
        N images, each run with the LoRA expert of its modality index.
        """
        x = self.trunk.patch_embed(images)
        x = x + self.position_embedding((x.shape[1], x.shape[2]))
        outputs = []
        checkpointing = self.gradient_checkpointing and torch.is_grad_enabled()
        for index, block in enumerate(self.trunk.blocks):
            if checkpointing:
                x = torch.utils.checkpoint.checkpoint(
                    _run_block, block, x, expert_ids, use_reentrant=False
                )
            else:
                x = _run_block(block, x, expert_ids)
            if index in self.trunk.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs

    def bake_position_embedding(self, image_size: tuple[int, int]) -> None:
        """Precompute the position embedding for ``image_size`` (H, W), for deployment.

        Hiera resizes its background embedding bicubically on every call (even at the native
        size); an exported graph then holds a constant instead of a bicubic Resize, which
        TensorRT cannot parse. Outputs are unchanged; the weights are not touched.
        """
        stride = self.trunk.patch_embed.proj.stride
        grid = (image_size[0] // stride[0], image_size[1] // stride[1])
        with torch.no_grad():
            self.baked_pos_embed = self.trunk._get_pos_embed(grid).clone()


class HieraFeaturePyramid(nn.Module):
    """SAM 2's FPN neck over the fused stage outputs, and the decoder input SAM 2 derives.

    Levels are (B, d_model, H/s, W/s) for s = 4, 8, 16, 32. For single images SAM 2 feeds its
    mask decoder the stride-16 level plus a learned ``no_mem_embed`` (its "no memory" token),
    and discards stride 32 (``scalp=1``); ``image_embedding`` does the same. The stride-4 and
    stride-8 levels go to the decoder's high-resolution path (``SAM2SemanticMaskDecoder``).
    """

    def __init__(self, neck: nn.Module) -> None:
        super().__init__()
        self.neck = neck
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, neck.d_model))

    def forward(self, stage_features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Four pyramid levels, finest first (the neck's position encodings are not needed)."""
        levels, _ = self.neck(stage_features)
        return levels

    def image_embedding(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Return the stride-16 (B, d_model, H/16, W/16) embedding for the mask decoder."""
        return levels[2] + self.no_mem_embed.reshape(1, -1, 1, 1)
