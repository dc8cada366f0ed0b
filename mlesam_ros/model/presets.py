"""Named model sizes of two encoder families, plus a small size of each for tests.

``family="vit"``: SAM's ViT-B/L/H (segment-anything); the numbers mirror
``segment_anything.build_sam`` so that an official checkpoint loads key for key.
``family="hiera"``: SAM 2's Hiera-T/S/B+/L (the ``sam2`` package); the numbers mirror
``sam2/configs/sam2.1/sam2.1_hiera_*.yaml`` so that ``sam2.1_hiera_*.pt`` loads key for key.
Both families share the decoder numbers (SAM and SAM 2 use the same 2-layer two-way
transformer at 256 channels). ``tiny`` and ``tiny_hiera`` are small enough to train from
scratch on a laptop CPU and to run the test-suite in seconds; they have no official weights.
This module is torch-free so configs can be validated without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SAMPreset:
    """Hyper-parameters of one encoder/decoder size."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    patch_size: int = 16
    img_size: int = 1024
    out_chans: int = 256
    mlp_ratio: float = 4.0
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    pyramid_dim: int = 256
    aux_head_dim: int = 256
    # Blocks whose outputs feed the pyramid levels (strides 4, 8, 16, 32), shallow to deep. For
    # the SAM sizes these are the global-attention blocks, as in ViTDet-style SAM adapters; for
    # Hiera they are the last block of each stage (its native pyramid).
    taps: tuple[int, ...] = ()
    family: str = "vit"
    # Hiera only (sam2's ``Hiera`` arguments): blocks per stage, window size per stage, the
    # background size of the windowed position embedding. ``embed_dim``/``num_heads`` are the
    # first stage's; ``global_attn_indexes`` are Hiera's ``global_att_blocks``.
    stages: tuple[int, ...] = ()
    window_spec: tuple[int, ...] = ()
    pos_embed_size: tuple[int, int] = (14, 14)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this: patch (ViT) or coarsest stride (Hiera)."""
        return 32 if self.family == "hiera" else self.patch_size

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channels of each pyramid tap: constant for ViT, doubling per stage for Hiera."""
        if self.family == "hiera":
            return tuple(self.embed_dim * 2**stage for stage in range(len(self.stages)))
        return (self.embed_dim,) * len(self.taps)


def _hiera(
    name: str,
    embed_dim: int,
    num_heads: int,
    stages: tuple[int, ...],
    global_att_blocks: tuple[int, ...],
    pos_embed_size: tuple[int, int] = (7, 7),
    window_spec: tuple[int, ...] = (8, 4, 14, 7),
    **overrides: object,
) -> SAMPreset:
    """Make a Hiera preset; taps are the stage ends, ``depth`` the total block count."""
    ends = tuple(sum(stages[: i + 1]) - 1 for i in range(len(stages)))
    return SAMPreset(
        name,
        embed_dim=embed_dim,
        depth=sum(stages),
        num_heads=num_heads,
        global_attn_indexes=global_att_blocks,
        taps=ends,
        family="hiera",
        stages=stages,
        window_spec=window_spec,
        pos_embed_size=pos_embed_size,
        patch_size=4,
        **overrides,  # type: ignore[arg-type]
    )


PRESETS: dict[str, SAMPreset] = {
    "vit_b": SAMPreset(
        "vit_b",
        embed_dim=768,
        depth=12,
        num_heads=12,
        global_attn_indexes=(2, 5, 8, 11),
        taps=(2, 5, 8, 11),
    ),
    "vit_l": SAMPreset(
        "vit_l",
        embed_dim=1024,
        depth=24,
        num_heads=16,
        global_attn_indexes=(5, 11, 17, 23),
        taps=(5, 11, 17, 23),
    ),
    "vit_h": SAMPreset(
        "vit_h",
        embed_dim=1280,
        depth=32,
        num_heads=16,
        global_attn_indexes=(7, 15, 23, 31),
        taps=(7, 15, 23, 31),
    ),
    # Four blocks of width 96 with 4x4 windows: every block is a pyramid tap.
    "tiny": SAMPreset(
        "tiny",
        embed_dim=96,
        depth=4,
        num_heads=3,
        global_attn_indexes=(1, 3),
        window_size=4,
        img_size=128,
        out_chans=64,
        decoder_mlp_dim=256,
        decoder_num_heads=4,
        pyramid_dim=64,
        aux_head_dim=64,
        taps=(0, 1, 2, 3),
    ),
    # SAM 2.1's image encoders (sam2/configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml).
    "hiera_t": _hiera("hiera_t", 96, 1, (1, 2, 7, 2), (5, 7, 9)),
    "hiera_s": _hiera("hiera_s", 96, 1, (1, 2, 11, 2), (7, 10, 13)),
    "hiera_b+": _hiera("hiera_b+", 112, 2, (2, 3, 16, 3), (12, 16, 20), pos_embed_size=(14, 14)),
    "hiera_l": _hiera(
        "hiera_l", 144, 2, (2, 6, 36, 4), (23, 33, 43), window_spec=(8, 4, 16, 8)
    ),
    # Five blocks of width 32..256 with 4x4 windows at 128x128: Hiera's structure (Q pooling,
    # width doubling, windowed and global attention, FPN) at test size.
    "tiny_hiera": _hiera(
        "tiny_hiera",
        32,
        1,
        (1, 1, 2, 1),
        (3,),
        pos_embed_size=(4, 4),
        window_spec=(4, 4, 4, 2),
        img_size=128,
        out_chans=64,
        decoder_mlp_dim=256,
        decoder_num_heads=4,
        pyramid_dim=64,
        aux_head_dim=64,
    ),
}


def get_preset(name: str) -> SAMPreset:
    """Look a preset up by name, with an error that lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"preset: unknown {name!r}; choose from {', '.join(PRESETS)}") from None
