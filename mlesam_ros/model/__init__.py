"""MLE-SAM in PyTorch: frozen SAM encoder, LoRA experts, routers, pyramid, two decoders.

Names are imported lazily so that ``mlesam_ros.model.config``/``presets`` stay usable
without torch (the runtime side reads configs from checkpoints and artefacts).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MLESAMConfig": "mlesam_ros.model.config",
    "PRESETS": "mlesam_ros.model.presets",
    "SAMPreset": "mlesam_ros.model.presets",
    "get_preset": "mlesam_ros.model.presets",
    "MLESAM": "mlesam_ros.model.mlesam",
    "build_mlesam": "mlesam_ros.model.build",
    "save_checkpoint": "mlesam_ros.model.checkpoint",
    "load_checkpoint": "mlesam_ros.model.checkpoint",
    "MLESAMLoss": "mlesam_ros.model.losses",
    "ohem_cross_entropy": "mlesam_ros.model.losses",
    "modality_dropout": "mlesam_ros.model.dropout",
    "random_presence": "mlesam_ros.model.dropout",
    "parameter_report": "mlesam_ros.model.report",
    "format_report": "mlesam_ros.model.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the defining submodule on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlesam_ros.model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
