"""Named model sizes: SAM's real ViT-B/L/H hyper-parameters plus a ``tiny`` size for tests.

The ViT numbers mirror ``segment_anything.build_sam`` so that an official checkpoint loads
key for key; the decoder numbers are SAM's mask decoder (a 2-layer two-way transformer at
256 channels). ``tiny`` is small enough to train from scratch on a laptop CPU and to run
the test-suite in seconds; it has no official weights. This module is torch-free so configs
can be validated without importing torch.
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
    # the SAM sizes these are the global-attention blocks, as in ViTDet-style SAM adapters.
    taps: tuple[int, ...] = ()


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
}


def get_preset(name: str) -> SAMPreset:
    """Look a preset up by name, with an error that lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"preset: unknown {name!r}; choose from {', '.join(PRESETS)}") from None
