"""The one typed description of an MLE-SAM model, shared by training, checkpoints and export.

Torch-free on purpose: the runtime side reads a checkpoint's or an artefact's config without
importing torch. ``to_dict``/``from_dict`` are the checkpoint format of this config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mlesam_ros.modalities import parse_modalities
from mlesam_ros.model.presets import get_preset

FUSIONS = ("router", "mean", "both")
ROUTERS = ("paper", "softmax", "spatial")  # mlesam_ros.model.router builds them
# Checkpoints written before the router became selectable carry no ``router`` key: they were
# trained with the paper's formula (``legacy_checkpoint_config`` fills it in).
LEGACY_ROUTER = "paper"
PYRAMID_LEVELS = 4  # strides 4, 8, 16, 32


@dataclass
class MLESAMConfig:
    """What to build: encoder size, modalities, classes, input size and the adapter options.

    ``image_size`` is the (H, W) the model is trained and exported at (multiples of 16, the
    ViT patch size, or of 32, Hiera's coarsest stride); ``None`` means the preset's native
    square size. ``pyramid_dim``,
    ``aux_head_dim`` and ``taps`` default to the preset's values. ``lora_alpha / lora_rank``
    scales the LoRA update. ``fusion`` picks the routed path, the mean path or their average
    (the paper's ``both``); ``router`` the router formula (``paper``, ``softmax``, ``spatial``:
    see ``mlesam_ros.model.router``). ``router_top_k`` 0 mixes all present modalities; k keeps
    exactly the k best-scored present ones. ``train_encoder`` unfreezes the ViT or Hiera trunk (for
    ``tiny`` without SAM weights); otherwise only LoRA, routers, pyramid and decoders train.
    """

    preset: str = "tiny"
    modalities: tuple[str, ...] = ("rgb", "depth")
    num_classes: int = 25
    image_size: tuple[int, int] | None = None
    lora_rank: int = 32
    lora_alpha: float = 32.0
    fusion: str = "router"
    router: str = "spatial"
    router_top_k: int = 0
    pyramid_dim: int | None = None
    aux_head_dim: int | None = None
    taps: tuple[int, ...] | None = None
    num_prompt_tokens: int = 1
    train_encoder: bool = False

    def __post_init__(self) -> None:
        """Fill preset defaults and reject inconsistent values early, naming the field."""
        preset = get_preset(self.preset)
        self.modalities = parse_modalities(self.modalities)
        if self.image_size is None:
            self.image_size = (preset.img_size, preset.img_size)
        self.image_size = _pair(self.image_size, "image_size")
        multiple = preset.size_multiple
        if any(side <= 0 or side % multiple for side in self.image_size):
            unit = "the coarsest Hiera stride" if preset.family == "hiera" else "the patch size"
            raise ValueError(
                f"image_size: {self.image_size} must be positive multiples of {multiple} "
                f"({unit} of preset {self.preset})"
            )
        if self.num_classes < 2:
            raise ValueError(f"num_classes: need at least 2, got {self.num_classes}")
        if self.lora_rank < 1:
            raise ValueError(f"lora_rank: must be >= 1, got {self.lora_rank}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion: unknown {self.fusion!r}; choose from {', '.join(FUSIONS)}")
        if self.router not in ROUTERS:
            raise ValueError(f"router: unknown {self.router!r}; choose from {', '.join(ROUTERS)}")
        if not 0 <= self.router_top_k <= len(self.modalities):
            raise ValueError(
                f"router_top_k: must be 0 (all) or 1..{len(self.modalities)}, "
                f"got {self.router_top_k}"
            )
        if self.num_prompt_tokens < 1:
            raise ValueError(f"num_prompt_tokens: must be >= 1, got {self.num_prompt_tokens}")
        self.pyramid_dim = self.pyramid_dim or preset.pyramid_dim
        self.aux_head_dim = self.aux_head_dim or preset.aux_head_dim
        self.taps = tuple(int(t) for t in (self.taps or preset.taps))
        if (
            len(self.taps) != PYRAMID_LEVELS
            or list(self.taps) != sorted(set(self.taps))
            or self.taps[0] < 0
            or self.taps[-1] != preset.depth - 1
        ):
            raise ValueError(
                f"taps: need {PYRAMID_LEVELS} increasing block indexes ending at the last block "
                f"{preset.depth - 1} of {self.preset}, got {self.taps}"
            )
        if preset.family == "hiera" and self.taps != preset.taps:
            raise ValueError(
                f"taps: {self.preset} routes over Hiera's stage ends {preset.taps}, "
                f"got {self.taps}"
            )
        if preset.family == "hiera" and self.pyramid_dim != preset.out_chans:
            raise ValueError(
                f"pyramid_dim: {self.preset}'s pyramid is SAM 2's FPN neck with "
                f"{preset.out_chans} channels; got {self.pyramid_dim}"
            )

    @property
    def num_modalities(self) -> int:
        """Number of configured modalities (the M of ``images (B, M, 3, H, W)``)."""
        return len(self.modalities)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, numbers, strings) for checkpoints and YAML."""
        data = asdict(self)
        data["modalities"] = list(self.modalities)
        data["image_size"] = list(self.image_size or ())
        data["taps"] = list(self.taps or ())
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLESAMConfig:
        """Inverse of ``to_dict``; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"model config: unknown keys {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values = dict(data)
        for key in ("modalities", "taps"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def legacy_checkpoint_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in the fields older checkpoints lack in their stored config.

    Only for checkpoints: a YAML config that leaves ``router`` out gets today's default.
    """
    values = dict(data)
    values.setdefault("router", LEGACY_ROUTER)
    return values


def _pair(value: Iterable[int] | int, name: str) -> tuple[int, int]:
    items = [value, value] if isinstance(value, int) else [int(v) for v in value]
    if len(items) != 2:
        raise ValueError(f"{name}: expected (H, W), got {value!r}")
    return items[0], items[1]
