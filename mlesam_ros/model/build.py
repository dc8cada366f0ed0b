"""The factory: a config (and optionally an official SAM checkpoint) → an ``MLESAM`` model."""

from __future__ import annotations

from pathlib import Path

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
    """Checksum the frozen encoder cheaply, to spot a different SAM file at reload."""
    weight = model.backbone.encoder.patch_embed.proj.weight
    return float(weight.detach().double().abs().sum())


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
        }
    return model
