"""The factory: a config (and optionally an official SAM checkpoint) → an ``MLESAM`` model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from mlesam_ros.model.backbone import build_image_encoder
from mlesam_ros.model.config import MLESAMConfig
from mlesam_ros.model.mlesam import MLESAM
from mlesam_ros.model.presets import get_preset
from mlesam_ros.model.sam_weights import (
    load_decoder_weights,
    load_encoder_weights,
    read_sam_state_dict,
)


def encoder_fingerprint(model: MLESAM) -> float:
    """Checksum of ``patch_embed`` only: the format 1 fingerprint, kept for old checkpoints."""
    weight = model.backbone.encoder.patch_embed.proj.weight
    return float(weight.detach().double().abs().sum())


def encoder_digest(model: MLESAM) -> str:
    """SHA-256 of several frozen encoder tensors spread over its depth, to spot another file.

    Patch embedding, position embedding, the first, middle and last blocks' attention and MLP
    weights, and the neck: a fine-tuned or different SAM differs in at least one of them.
    """
    encoder = model.backbone.encoder
    blocks = encoder.blocks
    picked: list[torch.Tensor] = [encoder.patch_embed.proj.weight]
    if encoder.pos_embed is not None:
        picked.append(encoder.pos_embed)
    for block in (blocks[0], blocks[len(blocks) // 2], blocks[-1]):
        qkv = block.attn.qkv
        picked += [getattr(qkv, "base", qkv).weight, block.attn.proj.weight,
                   block.mlp.lin1.weight, block.mlp.lin2.weight]  # fmt: skip
    picked.append(encoder.neck[0].weight)
    digest = hashlib.sha256()
    for tensor in picked:
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_mlesam(config: MLESAMConfig, sam_checkpoint: str | Path | None = None) -> MLESAM:
    """Build MLE-SAM; with ``sam_checkpoint`` the encoder and decoder start from SAM.

    SAM weights go into the stock encoder before LoRA is injected, so the official key layout
    is checked strictly (a wrong preset is reported with the preset the file looks like).
    Without a checkpoint every weight is randomly initialised (tests, ``tiny`` from scratch).
    """
    preset = get_preset(config.preset)
    encoder = build_image_encoder(preset)
    state = None
    if sam_checkpoint is not None:
        state = read_sam_state_dict(sam_checkpoint)
        load_encoder_weights(encoder, state, preset, str(sam_checkpoint))
    model = MLESAM(config, encoder)
    if state is not None:
        load_decoder_weights(model.mask_decoder, state)
        model.sam_source = {
            "file": Path(sam_checkpoint).name,
            "fingerprint": encoder_fingerprint(model),
            "digest": encoder_digest(model),
        }
    return model
