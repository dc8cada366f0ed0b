"""Training side: the training loop, evaluation with the missing-modality protocol, metrics.

Light to import: ``metrics`` and ``config`` are numpy/yaml only; the torch modules
(``trainer``, ``evaluate``) load when their names are first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "mlesam_ros.train.config",
    "DataConfig": "mlesam_ros.train.config",
    "OptimConfig": "mlesam_ros.train.config",
    "LossConfig": "mlesam_ros.train.config",
    "load_train_config": "mlesam_ros.train.config",
    "ConfusionMatrix": "mlesam_ros.train.metrics",
    "train": "mlesam_ros.train.trainer",
    "TrainResult": "mlesam_ros.train.trainer",
    "evaluate": "mlesam_ros.train.evaluate",
    "EvaluationResult": "mlesam_ros.train.evaluate",
    "modality_subsets": "mlesam_ros.train.evaluate",
    "torch_predictor": "mlesam_ros.train.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the defining submodule on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mlesam_ros.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
