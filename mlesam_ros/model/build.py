"""The factory: a config (and optionally an official SAM / SAM 2 checkpoint) → ``MLESAM``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from mlesam_ros.model.backbone import build_image_encoder
from mlesam_ros.model.config import MLESAMConfig
from mlesam_ros.model.hiera import HieraLoRABackbone, build_hiera_encoder
from mlesam_ros.model.mlesam import MLESAM
from mlesam_ros.model.presets import get_preset
from mlesam_ros.model.sam_weights import (
    SAM2_HIGH_RES_KEYS,
    load_decoder_weights,
    load_encoder_weights,
    read_sam_state_dict,
)


def encoder_fingerprint(model: MLESAM) -> float:
    """Checksum of ``patch_embed`` only: the format 1 fingerprint, kept for old checkpoints."""
    backbone = model.backbone
    encoder = backbone.trunk if isinstance(backbone, HieraLoRABackbone) else backbone.encoder
    weight = encoder.patch_embed.proj.weight
    return float(weight.detach().double().abs().sum())


def encoder_digest(model: MLESAM) -> str:
    """SHA-256 of several frozen encoder tensors spread over its depth, to spot another file.

    Patch embedding, position embedding, the first, middle and last blocks' attention and MLP
    weights, and the neck: a fine-tuned or different SAM differs in at least one of them.
    For Hiera the frozen trunk only (SAM 2's FPN neck trains with the pyramid).
    """
    backbone = model.backbone
    hiera = isinstance(backbone, HieraLoRABackbone)
    encoder = backbone.trunk if hiera else backbone.encoder
    blocks = encoder.blocks
    picked: list[torch.Tensor] = [encoder.patch_embed.proj.weight]
    if encoder.pos_embed is not None:
        picked.append(encoder.pos_embed)
    for block in (blocks[0], blocks[len(blocks) // 2], blocks[-1]):
        qkv = block.attn.qkv
        mlp = block.mlp.layers if hiera else (block.mlp.lin1, block.mlp.lin2)
        picked += [getattr(qkv, "base", qkv).weight, block.attn.proj.weight,
                   mlp[0].weight, mlp[1].weight]  # fmt: skip
    if not hiera:
        picked.append(encoder.neck[0].weight)
    digest = hashlib.sha256()
    for tensor in picked:
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_mlesam(config: MLESAMConfig, sam_checkpoint: str | Path | None = None) -> MLESAM:
    """Build MLE-SAM; with ``sam_checkpoint`` the encoder and decoder start from SAM (2).

    SAM weights go into the stock encoder before LoRA is injected, so the official key layout
    is checked strictly (a wrong preset is reported with the preset the file looks like).
    ViT presets take SAM files, Hiera presets SAM 2 files (``sam2.1_hiera_*.pt``).
    Without a checkpoint every weight is randomly initialised (tests, ``tiny`` from scratch).
    """
    preset = get_preset(config.preset)
    hiera = preset.family == "hiera"
    encoder = build_hiera_encoder(preset) if hiera else build_image_encoder(preset)
    state = None
    if sam_checkpoint is not None:
        state = read_sam_state_dict(sam_checkpoint, preset.family)
        load_encoder_weights(encoder, state, preset, str(sam_checkpoint))
    model = MLESAM(config, encoder)
    if state is not None:
        left_as_built = load_decoder_weights(model.mask_decoder, state)
        if hiera:
            # SAM 2's pretrained high-resolution path is what the Hiera decoder is built around.
            unmatched = [key for key in left_as_built if key.startswith(SAM2_HIGH_RES_KEYS)]
            if unmatched:
                raise ValueError(
                    f"SAM 2 checkpoint {sam_checkpoint} lacks a fitting "
                    f"'sam_mask_decoder.{unmatched[0]}' (SAM 2's high-resolution decoder "
                    "path); use an official sam2 / sam2.1 Hiera checkpoint"
                )
            if "no_mem_embed" not in state:
                raise ValueError(f"SAM 2 checkpoint {sam_checkpoint} lacks 'no_mem_embed'")
            model.pyramid.no_mem_embed.data.copy_(state["no_mem_embed"])
        model.sam_source = {
            "file": Path(sam_checkpoint).name,
            "fingerprint": encoder_fingerprint(model),
            "digest": encoder_digest(model),
        }
    return model
