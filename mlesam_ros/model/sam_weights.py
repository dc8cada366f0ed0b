"""Reading official SAM and SAM 2 checkpoints into MLE-SAM.

SAM (ViT family, ``sam_vit_b_01ec64.pth``): the state dict of a
``segment_anything.sam_model_registry`` model, keys ``image_encoder.*``, ``prompt_encoder.*``
and ``mask_decoder.*``. SAM 2 (Hiera family, ``sam2.1_hiera_base_plus.pt``): ``{"model":
state_dict}`` of sam2's ``SAM2Base``, keys ``image_encoder.trunk.*``, ``image_encoder.neck.*``,
``sam_prompt_encoder.*``, ``sam_mask_decoder.*``, ``no_mem_embed`` and the video-memory
modules (not used here). Files are read with ``weights_only=True`` because a checkpoint is
data, never code; a file of the other family is rejected with the presets it fits.

What is loaded: the whole image encoder (strictly: every key and shape must fit the preset),
and into the decoder every tensor whose shape still fits: the two-way transformer, the IoU
token, the output upscaling, SAM's dense "no mask" embedding and the random positional
encoding matrix. Skipped: SAM's 4 mask tokens, its 4 hypernetwork MLPs and its IoU head,
because they encode SAM's ambiguity masks, not our C classes. SAM 2's decoder has the same
layout except that its two-way transformer's MLPs are named ``layers.0/1`` (``lin1/lin2`` in
segment-anything), mapped below, and it adds what the Hiera family's decoder uses as SAM 2
does (``decoder.py``): the high-resolution projections ``conv_s0``/``conv_s1`` and the
object-score token. Its object-score head is skipped like the IoU head. SAM 2's
``no_mem_embed`` goes to the Hiera pyramid (``hiera.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mlesam_ros.model.presets import PRESETS, SAMPreset

ENCODER_PREFIX = "image_encoder."
HIERA_PREFIX = "image_encoder.trunk."
# Our decoder's state key → the checkpoint's key, per family (prefix match, rest kept).
DECODER_KEY_MAP = {
    "transformer.": "mask_decoder.transformer.",
    "iou_token.": "mask_decoder.iou_token.",
    "output_upscaling.": "mask_decoder.output_upscaling.",
    "no_mask_embed.": "prompt_encoder.no_mask_embed.",
    "pe_layer.": "prompt_encoder.pe_layer.",
}
# SAM 2 prefixes the same modules with ``sam_`` and has its high-resolution path besides.
SAM2_DECODER_KEY_MAP = {
    **{ours: f"sam_{theirs}" for ours, theirs in DECODER_KEY_MAP.items()},
    "conv_s0.": "sam_mask_decoder.conv_s0.",
    "conv_s1.": "sam_mask_decoder.conv_s1.",
    "obj_score_token.": "sam_mask_decoder.obj_score_token.",
}
# Our Hiera decoder's keys that every official SAM 2 file must provide.
SAM2_HIGH_RES_KEYS = ("conv_s0.", "conv_s1.", "obj_score_token.")
# segment-anything's MLPBlock (lin1, lin2) is sam2's MLP (layers.0, layers.1).
SAM2_MLP_RENAMES = ((".mlp.lin1.", ".mlp.layers.0."), (".mlp.lin2.", ".mlp.layers.1."))
FAMILY_FILES = {
    "vit": "a SAM checkpoint (segment-anything ViT, e.g. sam_vit_b_01ec64.pth)",
    "hiera": "a SAM 2 checkpoint (sam2 Hiera, e.g. sam2.1_hiera_base_plus.pt)",
}
FAMILY_SOURCES = {  # where the official files are listed
    "vit": "https://github.com/facebookresearch/segment-anything#model-checkpoints",
    "hiera": "https://github.com/facebookresearch/sam2#download-checkpoints",
}
FAMILY_PRESETS = {"vit": "vit_b, vit_l, vit_h", "hiera": "hiera_t, hiera_s, hiera_b+, hiera_l"}


def read_sam_state_dict(path: str | Path, family: str = "vit") -> dict[str, torch.Tensor]:
    """Load a SAM (``family="vit"``) or SAM 2 (``"hiera"``) file as a flat state dict.

    Bad, foreign or other-family files get an error saying what the file is and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"SAM checkpoint {path} not found; download {FAMILY_FILES[family]} from "
            f"{FAMILY_SOURCES[family]} and pass that path"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(
            f"SAM checkpoint {path} is not a readable PyTorch weights file "
            f"({type(error).__name__}); is the download complete?"
        ) from error
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # SAM 2's layout, as sam2.build_sam reads it
    if not isinstance(state, Mapping) or not any(
        isinstance(k, str) and k.startswith(ENCODER_PREFIX) for k in state
    ):
        raise ValueError(
            f"SAM checkpoint {path} has no '{ENCODER_PREFIX}*' weights; expected "
            f"{FAMILY_FILES[family]}"
        )
    found = checkpoint_family(state)
    if found != family:
        raise ValueError(
            f"SAM checkpoint {path} is {FAMILY_FILES[found]}, but the preset needs "
            f"{FAMILY_FILES[family]}; use that file, or a preset of the file's family "
            f"({FAMILY_PRESETS[found]})"
        )
    return dict(state)


def checkpoint_family(state: Mapping[str, torch.Tensor]) -> str:
    """``"hiera"`` for a SAM 2 state dict (a Hiera trunk), else ``"vit"``."""
    return "hiera" if any(key.startswith(HIERA_PREFIX) for key in state) else "vit"


def describe_encoder(state: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """(embed_dim, depth) of the encoder stored in a SAM or SAM 2 state dict."""
    prefix = HIERA_PREFIX if checkpoint_family(state) == "hiera" else ENCODER_PREFIX
    embed_dim = int(state[f"{prefix}patch_embed.proj.weight"].shape[0])
    blocks = {
        int(match.group(1))
        for key in state
        if (match := re.match(rf"{re.escape(prefix)}blocks\.(\d+)\.", key))
    }
    return embed_dim, len(blocks)


def guess_preset(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the preset whose encoder size matches the checkpoint, if any."""
    size = describe_encoder(state)
    return next((name for name, p in PRESETS.items() if (p.embed_dim, p.depth) == size), None)


def load_encoder_weights(
    encoder: nn.Module, state: Mapping[str, torch.Tensor], preset: SAMPreset, source: str
) -> None:
    """Copy ``image_encoder.*`` into a stock encoder (before LoRA is injected).

    The stock encoder is segment-anything's ``ImageEncoderViT`` or sam2's ``ImageEncoder``;
    both are the checkpoint's ``image_encoder`` module, so keys map one to one.
    """
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
    sam2 = checkpoint_family(state) == "hiera"
    own = decoder.state_dict()
    loaded = {}
    for key, value in own.items():
        for ours, theirs in (SAM2_DECODER_KEY_MAP if sam2 else DECODER_KEY_MAP).items():
            if key.startswith(ours):
                name = theirs + key[len(ours) :]
                for segment_anything_name, sam2_name in SAM2_MLP_RENAMES if sam2 else ():
                    name = name.replace(segment_anything_name, sam2_name)
                source = state.get(name)
                if source is not None and source.shape == value.shape:
                    loaded[key] = source
                break
    decoder.load_state_dict(loaded, strict=False)
    return sorted(set(own) - set(loaded))
