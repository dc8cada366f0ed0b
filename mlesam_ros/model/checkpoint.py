"""MLE-SAM checkpoints: the config plus only the weights that SAM cannot give back.

A checkpoint stores the trainable weights (LoRA experts, routers, pyramid, decoders, and the
encoder too when ``train_encoder``), all buffers, and the config. The frozen SAM encoder is
not copied (360 MB for ViT-B); loading needs the same SAM file again, checked by a
fingerprint. A model built without SAM weights (random frozen encoder, e.g. ``tiny`` tests)
stores everything, so it reloads exactly on its own.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from mlesam_ros.model.build import build_mlesam, encoder_digest, encoder_fingerprint
from mlesam_ros.model.config import MLESAMConfig, legacy_checkpoint_config
from mlesam_ros.model.mlesam import MLESAM

FORMAT = "mlesam_ros.checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, model: MLESAM, **extra: Any) -> Path:
    """Write ``model``'s config and own weights (plus ``extra`` metadata) to ``path``.

    ``extra`` values must be plain data or tensors (the file is read with
    ``weights_only=True``). The file is written atomically.
    """
    if not isinstance(model, MLESAM):
        raise ValueError(f"save_checkpoint: expected an MLESAM model, got {type(model).__name__}")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    keep_all = model.sam_source is None
    state = {
        key: value.detach().cpu()
        for key, value in model.state_dict().items()
        if keep_all or key in trainable or key in buffers
    }
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "sam_source": model.sam_source,
        "state_dict": state,
        "extra": extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)
    return path


def load_checkpoint(
    path: str | Path,
    sam_checkpoint: str | Path | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[MLESAM, dict[str, Any]]:
    """Rebuild the model from ``path`` (and the SAM file it was trained from); eval mode.

    Returns ``(model, extra)`` where ``extra`` is what ``save_checkpoint`` was given.
    """
    payload = _read(Path(path))
    config = MLESAMConfig.from_dict(legacy_checkpoint_config(payload["config"]))
    sam_source = payload.get("sam_source")
    if sam_source is not None and sam_checkpoint is None:
        raise ValueError(
            f"checkpoint {path} holds only the trained weights; pass sam_checkpoint= the SAM "
            f"file it was trained from ({sam_source['file']})"
        )
    model = build_mlesam(config, sam_checkpoint if sam_source is not None else None)
    if sam_source is not None:
        if "digest" in sam_source:
            different = encoder_digest(model) != sam_source["digest"]
        else:  # checkpoints written before the digest: patch_embed's checksum only
            found = encoder_fingerprint(model)
            different = abs(found - sam_source["fingerprint"]) > 1e-6 * max(1.0, abs(found))
        if different:
            raise ValueError(
                f"checkpoint {path} was trained on SAM weights {sam_source['file']}, but "
                f"{sam_checkpoint} holds different encoder weights; pass the original file"
            )
    _load_state(model, payload["state_dict"], path)
    model.sam_source = sam_source
    model.to(map_location)
    model.eval()
    return model, dict(payload.get("extra") or {})


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"MLE-SAM checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # the safe unpickler met a class or function reference
            # torch's safe loader met a pickled object other than tensors and plain
            # containers: possibly code to run, never executed here.
            raise ValueError(
                f"MLE-SAM checkpoint {path} refused: not a plain-tensor checkpoint (it pickles "
                "objects that torch.load(weights_only=True) does not allow); re-save it with "
                "mlesam_ros.model.save_checkpoint from a trusted source"
            ) from None
        raise ValueError(
            f"MLE-SAM checkpoint {path} is not a readable PyTorch file ({type(error).__name__});"
            " was it written completely?"
        ) from error
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(
            f"MLE-SAM checkpoint {path} is not a readable PyTorch file ({type(error).__name__});"
            " was it written completely?"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an MLE-SAM checkpoint (no format tag {FORMAT!r}); official SAM "
            "weights go to sam_checkpoint=, not here"
        )
    if payload.get("version") != VERSION:
        raise ValueError(
            f"MLE-SAM checkpoint {path} has format version {payload.get('version')}; this "
            f"mlesam_ros reads version {VERSION}"
        )
    return payload


def _load_state(model: MLESAM, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``state`` and insist it covers every weight SAM did not provide."""
    expected = model.state_dict()
    mismatched = [
        f"{key} {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and expected[key].shape != value.shape
    ]
    unexpected = sorted(set(state) - set(expected))
    if mismatched or unexpected:
        raise ValueError(
            f"MLE-SAM checkpoint {path} does not match its own config: "
            + "; ".join((mismatched + [f"unexpected {k}" for k in unexpected])[:3])
        )
    frozen_from_sam = (
        {name for name, p in model.named_parameters() if not p.requires_grad}
        if model.sam_source is not None
        else set()
    )
    missing = sorted(set(expected) - set(state) - frozen_from_sam)
    if missing:
        raise ValueError(
            f"MLE-SAM checkpoint {path} lacks {len(missing)} weights (first: {missing[0]})"
        )
    model.load_state_dict(state, strict=False)
