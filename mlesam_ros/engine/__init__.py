"""Deployment: ONNX export, TensorRT engines and one ``Segmenter`` over every backend.

Importing this package is cheap (no torch, onnxruntime or tensorrt); the heavy modules load
inside ``segmenter``, ``onnx_export`` and the backends when used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The shipped demo model that `mlesam export` uses without --checkpoint. It lives in the
# repository's models/ folder; colcon installs the same folder to share/mlesam_ros/models.
DEMO_CHECKPOINT_NAME = "mlesam_demo_tiny.pt"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / DEMO_CHECKPOINT_NAME
# Inference backends ("auto" picks one from the model file); here so the CLI and the parameter
# spec can list them without importing a runtime.
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
# torch.compile modes the torch backend accepts ("none" = eager); here so the CLI can list them
# without importing torch.
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune",
                 "max-autotune-no-cudagraphs")  # fmt: skip
# ``model.precision`` values: '' = each backend's default (tensorrt fp16; torch bf16 on GPUs with
# native bf16, else fp16; fp32 on the CPU). TensorRT builds fp32 or fp16 (there is no INT8
# calibration or Q/DQ path, so int8 is not offered); bf16 is a torch autocast type only.
PRECISIONS = ("", "fp16", "fp32", "bf16")


def default_checkpoint_candidates() -> list[Path]:
    """Where the demo checkpoint may be: the source tree, then installed share folders."""
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    shared = [Path(p) / "share" / "mlesam_ros" / "models" / DEMO_CHECKPOINT_NAME
              for p in prefixes if p]
    return [DEFAULT_CHECKPOINT, *shared]


def resolve_default_checkpoint() -> Path:
    """Return the first existing demo checkpoint; the error lists every place looked at."""
    candidates = default_checkpoint_candidates()
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the demo checkpoint is not shipped in this install (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); pass --checkpoint PATH with a checkpoint written by mlesam_ros.model.save_checkpoint"
    )
