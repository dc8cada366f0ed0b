"""The factory: a config (and optionally an official SAM / SAM 2 checkpoint) → ``MLESAM``."""

from __future__ import annotations

from pathlib import Path

from mlesam_ros.model.backbone import build_image_encoder
from mlesam_ros.model.config import MLESAMConfig
from mlesam_ros.model.hiera import HieraLoRABackbone, build_hiera_encoder
from mlesam_ros.model.mlesam import MLESAM
from mlesam_ros.model.presets import get_preset
from mlesam_ros.model.sam_weights import (
    load_decoder_weights,
    load_encoder_weights,
    read_sam_state_dict,
)


def encoder_fingerprint(model: MLESAM) -> float:
    """Checksum the frozen encoder cheaply, to spot a different SAM file at reload."""
    backbone = model.backbone
    encoder = backbone.trunk if isinstance(backbone, HieraLoRABackbone) else backbone.encoder
    weight = encoder.patch_embed.proj.weight
    return float(weight.detach().double().abs().sum())


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
        load_decoder_weights(model.mask_decoder, state)
        if hiera:
            if "no_mem_embed" not in state:
                raise ValueError(f"SAM 2 checkpoint {sam_checkpoint} lacks 'no_mem_embed'")
            model.pyramid.no_mem_embed.data.copy_(state["no_mem_embed"])
        model.sam_source = {
            "file": Path(sam_checkpoint).name,
            "fingerprint": encoder_fingerprint(model),
        }
    return model
