"""Reading official SAM checkpoints (``sam_vit_b_01ec64.pth`` layout) into MLE-SAM.

The file is the state dict of a ``segment_anything.sam_model_registry`` model: keys
``image_encoder.*``, ``prompt_encoder.*`` and ``mask_decoder.*``. It is read with
``weights_only=True`` because a checkpoint is data, never code.

What is loaded: the whole image encoder (strictly: every key and shape must fit the preset),
and into the decoder every tensor whose shape still fits: the two-way transformer, the IoU
token, the output upscaling, SAM's dense "no mask" embedding and the random positional
encoding matrix. Skipped: SAM's 4 mask tokens, its 4 hypernetwork MLPs and its IoU head,
because they encode SAM's ambiguity masks, not our C classes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mlesam_ros.model.presets import PRESETS, SAMPreset

ENCODER_PREFIX = "image_encoder."
# Our decoder's state key → SAM's key (prefix match, the rest of the key is kept).
DECODER_KEY_MAP = {
    "transformer.": "mask_decoder.transformer.",
    "iou_token.": "mask_decoder.iou_token.",
    "output_upscaling.": "mask_decoder.output_upscaling.",
    "no_mask_embed.": "prompt_encoder.no_mask_embed.",
    "pe_layer.": "prompt_encoder.pe_layer.",
}


def read_sam_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a SAM checkpoint file as a flat state dict, with clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"SAM checkpoint {path} not found; download the official weights "
            "(e.g. sam_vit_b_01ec64.pth from the segment-anything README) and pass that path"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(
            f"SAM checkpoint {path} is not a readable PyTorch weights file "
            f"({type(error).__name__}); is the download complete?"
        ) from error
    if not isinstance(state, Mapping) or not any(
        isinstance(k, str) and k.startswith(ENCODER_PREFIX) for k in state
    ):
        raise ValueError(
            f"SAM checkpoint {path} has no '{ENCODER_PREFIX}*' weights; expected the state dict "
            "of a segment_anything sam_model_registry model such as sam_vit_b_01ec64.pth"
        )
    return dict(state)


def describe_encoder(state: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """(embed_dim, depth) of the encoder stored in a SAM state dict."""
    embed_dim = int(state[f"{ENCODER_PREFIX}patch_embed.proj.weight"].shape[0])
    blocks = {
        int(match.group(1))
        for key in state
        if (match := re.match(rf"{re.escape(ENCODER_PREFIX)}blocks\.(\d+)\.", key))
    }
    return embed_dim, len(blocks)


def guess_preset(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the preset whose encoder size matches the checkpoint, if any."""
    size = describe_encoder(state)
    return next((name for name, p in PRESETS.items() if (p.embed_dim, p.depth) == size), None)


def load_encoder_weights(
    encoder: nn.Module, state: Mapping[str, torch.Tensor], preset: SAMPreset, source: str
) -> None:
    """Copy ``image_encoder.*`` into a stock ``ImageEncoderViT`` (before LoRA is injected)."""
    weights = {
        key[len(ENCODER_PREFIX) :]: value
        for key, value in state.items()
        if key.startswith(ENCODER_PREFIX)
    }
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = sorted(
        key for key in set(expected) & set(weights) if expected[key].shape != weights[key].shape
    )
    if missing or unexpected or mismatched:
        embed_dim, depth = describe_encoder(state)
        guess = guess_preset(state)
        looks_like = f"it looks like preset {guess!r}" if guess else "it matches no preset"
        details = (mismatched or missing or unexpected)[0]
        raise ValueError(
            f"SAM checkpoint {source} does not fit preset {preset.name!r} "
            f"(embed dim {preset.embed_dim}, {preset.depth} blocks): the checkpoint has embed "
            f"dim {embed_dim}, {depth} blocks, so {looks_like}; first difference at "
            f"'{ENCODER_PREFIX}{details}' ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} shape mismatches)"
        )
    encoder.load_state_dict(weights, strict=True)


def load_decoder_weights(decoder: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy every SAM decoder/prompt tensor whose shape fits; return our keys left as built."""
    own = decoder.state_dict()
    loaded = {}
    for key, value in own.items():
        for ours, theirs in DECODER_KEY_MAP.items():
            if key.startswith(ours):
                source = state.get(theirs + key[len(ours) :])
                if source is not None and source.shape == value.shape:
                    loaded[key] = source
                break
    decoder.load_state_dict(loaded, strict=False)
    return sorted(set(own) - set(loaded))
