"""Load a training checkpoint as a deployable model plus the ``ModelSpec`` it implies.

The runtime side reaches the training side's model only through here (export and the torch
backend), so the checkpoint format is interpreted in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlesam_ros.engine.spec import ModelSpec, default_class_names

if TYPE_CHECKING:
    import torch


def spec_for_model(
    model: torch.nn.Module,
    extra: dict[str, Any] | None = None,
    output: str = "labels",
    label_dtype: str = "int32",
    present_dtype: str = "bool",
    precision: str = "fp32",
    batch: int = 1,
) -> ModelSpec:
    """Describe a built MLE-SAM model (reads ``model.config``) in deployment terms."""
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError("model: has no .config (MLESAMConfig); build it with build_mlesam")
    extra = extra or {}
    class_names = extra.get("class_names") or default_class_names(config.num_classes)
    if len(class_names) != config.num_classes:
        raise ValueError(
            f"class_names: checkpoint lists {len(class_names)} names for "
            f"{config.num_classes} classes"
        )
    return ModelSpec(
        modalities=tuple(config.modalities),
        input_size=tuple(config.image_size),
        class_names=tuple(class_names),
        preset=config.preset,
        output=output,
        label_dtype=label_dtype,
        present_dtype=present_dtype,
        precision=precision,
        routing_levels=routing_levels(model) if output == "labels" else 0,
        batch=batch,
    )


def routing_levels(model: torch.nn.Module) -> int:
    """Levels whose fusion uses a router (0 for a mean-only model): its routing output size."""
    fusions = getattr(model, "fusions", ())
    routed = any(f.router is not None and f.mode != "mean" for f in fusions)
    return len(fusions) if routed else 0


def load_model(
    checkpoint: str | Path,
    sam_checkpoint: str | Path | None = None,
    map_location: str = "cpu",
    **spec_options: str | int,
) -> tuple[torch.nn.Module, ModelSpec]:
    """Load a checkpoint written by ``mlesam_ros.model.save_checkpoint`` in eval mode.

    ``sam_checkpoint`` is the official SAM file the model was trained on (checkpoints of
    SAM-initialised models store only the trained weights).
    """
    from mlesam_ros.model import load_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"checkpoint {checkpoint} does not exist; train one (mlesam_ros.model."
            "save_checkpoint writes it) or export the shipped demo model without --checkpoint"
        )
    model, extra = load_checkpoint(checkpoint, sam_checkpoint, map_location=map_location)
    return model.eval(), spec_for_model(model, extra, **spec_options)


def build_untrained(
    preset: str,
    modalities: tuple[str, ...],
    image_size: tuple[int, int] | None,
    num_classes: int = 25,
    seed: int = 0,
) -> torch.nn.Module:
    """Build a randomly initialised preset model: for benchmarks and engine builds only."""
    import torch

    from mlesam_ros.model import MLESAMConfig, build_mlesam

    torch.manual_seed(seed)
    config = MLESAMConfig(preset=preset, modalities=modalities, num_classes=num_classes,
                          image_size=image_size)
    return build_mlesam(config).eval()


def with_input_size(model: torch.nn.Module, image_size: tuple[int, int]) -> torch.nn.Module:
    """Rebuild the same weights for another (H, W) (SAM's position embedding is resized).

    Raises ``ValueError`` when the weights do not fit the new size.
    """
    import dataclasses

    from mlesam_ros.model import build_mlesam

    if tuple(model.config.image_size) == tuple(image_size):
        return model
    config = dataclasses.replace(model.config, image_size=tuple(image_size))
    resized = build_mlesam(config)
    try:
        resized.load_state_dict(model.state_dict())
    except RuntimeError as error:
        raise ValueError(
            f"height/width: the checkpoint's weights do not fit {image_size}: {error}"
        ) from error
    resized.sam_source = getattr(model, "sam_source", None)
    return resized.eval()
