"""Training configuration: YAML in ``config/train/`` loaded once into typed dataclasses.

Torch-free so a config can be checked (``mlesam train --dry-run``, tests) without torch.
Every error names the file and the dotted field (``optim.lr``) and says what was expected;
unknown keys are errors so a typo never falls back to a default silently.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from mlesam_ros.model.config import MLESAMConfig

DATASETS = ("synthetic", "deliver", "muses")
DEVICES = ("auto", "cpu", "cuda")
DROPOUT_MODES = ("independent", "subset")  # mlesam_ros.model.dropout (torch-free copy)
NORMALIZATIONS = ("default", "dataset")


@dataclass
class DataConfig:
    """Where training samples come from.

    ``synthetic`` renders ``frames`` frames of the synthetic world once (``frames_per_drive``
    per street, conditions cycling per street, sensors failing at ``failure_rate``) and caches
    them under ``cache_dir`` (default: the run folder), in ``render_workers`` processes;
    ``deliver``/``muses`` read ``root``.
    ``conditions`` filters DELIVER weathers / picks synthetic conditions; for MUSES it filters
    weathers. ``scale_range`` is the random-scale augmentation before the crop to the model
    size.
    """

    dataset: str = "synthetic"
    root: str | None = None
    split: str = "train"
    conditions: tuple[str, ...] | None = None
    frames: int = 400
    frames_per_drive: int = 8
    failure_rate: float = 0.0
    seed: int = 0
    cache_dir: str | None = None
    scale_range: tuple[float, float] = (0.75, 1.5)
    render_workers: int = 1

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: unknown {self.dataset!r}; choose from {DATASETS}")
        if self.dataset != "synthetic" and not self.root:
            raise ValueError(f"root: dataset {self.dataset!r} needs the folder it is unpacked in")
        if self.frames < 1 or self.frames_per_drive < 1:
            raise ValueError("frames/frames_per_drive: must be >= 1")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate: must be in [0, 1], got {self.failure_rate}")
        if self.render_workers < 1:
            raise ValueError(f"render_workers: must be >= 1, got {self.render_workers}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range: need 0 < low <= high, got {self.scale_range}")


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up then polynomial decay to 0 at the last step.

    Training length is ``max_steps`` optimiser steps when set, else ``epochs`` passes over
    the data. The effective batch is ``batch_size × grad_accum × world size``.
    """

    lr: float = 6e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 50
    poly_power: float = 0.9
    batch_size: int = 8
    grad_accum: int = 1
    epochs: int = 10
    max_steps: int | None = None
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field."""
        if self.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        for name in ("batch_size", "grad_accum", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps: must be >= 1 or null, got {self.max_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: must be >= 0, got {self.warmup_steps}")


@dataclass
class LossConfig:
    """``MLESAMLoss`` options; ``ohem_threshold`` null trains on every pixel."""

    mask_weight: float = 0.4
    aux_weight: float = 0.4
    ohem_threshold: float | None = 0.7
    ohem_min_kept: int = 2000

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field."""
        if self.ohem_threshold is not None and not 0 < self.ohem_threshold <= 1:
            raise ValueError(
                f"ohem_threshold: must be in (0, 1] or null, got {self.ohem_threshold}"
            )


@dataclass
class CorruptionConfig:
    """Sensors that lie during training (``mlesam_ros.data.corruptions``).

    With probability ``rate`` one present sensor of a sample (chosen uniformly; samples
    with two or more sensors) is corrupted by a kind drawn uniformly from ``kinds`` (all that
    apply to that sensor when null) at a severity drawn from ``severities``; modality dropout
    then runs as usual. ``route_weight`` > 0 adds a
    router term: the weight the router gives a corrupted sensor (mean over levels and pixels,
    samples with two or more sensors present) is pushed towards 0. Synthetic training
    renders ``variants`` sensor-level corruptions of every sensor of every cached frame (the
    same code path as ``mlesam eval --corrupt``) and draws from them; ``frozen`` comes from
    neighbouring frames, and dataset folders corrupt their encoded images directly.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] | None = None
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    route_weight: float = 0.0
    variants: int = 3

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field."""
        from mlesam_ros.data.corruptions import KINDS, SEVERITIES

        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate: must be in [0, 1], got {self.rate}")
        unknown = sorted(set(self.kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(
                f"kinds: unknown {', '.join(unknown)}; choose from {', '.join(KINDS)}"
            )
        if self.kinds is not None and not self.kinds:
            raise ValueError("kinds: empty; give at least one kind or null for all")
        bad = sorted(set(self.severities) - set(SEVERITIES))
        if bad or not self.severities:
            raise ValueError(f"severities: must be values in 1..5, got {list(self.severities)}")
        if self.variants < 1:
            raise ValueError(f"variants: must be >= 1, got {self.variants}")
        if self.route_weight < 0:
            raise ValueError(f"route_weight: must be >= 0, got {self.route_weight}")


@dataclass
class TrainConfig:
    """Everything ``mlesam train`` needs; ``model`` is the model's own ``MLESAMConfig``.

    ``modality_dropout_mode``: ``independent`` drops each sensor with p; ``subset`` re-draws a
    sample with p as a uniformly sized, uniformly chosen sensor subset (every subset size
    trained equally often). ``normalization``: ``default`` uses ``mlesam_ros.modalities``'
    fixed statistics, ``dataset`` measures each modality's mean/std on the training set
    (stored in the checkpoint's buffers). ``amp`` autocasts on CUDA in bfloat16 where the GPU
    supports it, else float16 with loss scaling. ``gradient_checkpointing`` recomputes the
    encoder blocks in the backward pass to save memory.
    """

    model: MLESAMConfig = field(default_factory=MLESAMConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    sam_checkpoint: str | None = None
    modality_dropout: float = 0.0
    modality_dropout_mode: str = "independent"
    normalization: str = "default"
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    amp: bool = True
    gradient_checkpointing: bool = False
    torch_threads: int = 0
    log_every: int = 10
    checkpoint_every: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field."""
        if not 0.0 <= self.modality_dropout <= 1.0:
            raise ValueError(f"modality_dropout: must be in [0, 1], got {self.modality_dropout}")
        if self.modality_dropout_mode not in DROPOUT_MODES:
            raise ValueError(f"modality_dropout_mode: unknown {self.modality_dropout_mode!r}; "
                             f"choose from {', '.join(DROPOUT_MODES)}")  # fmt: skip
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization: unknown {self.normalization!r}; "
                             f"choose from {', '.join(NORMALIZATIONS)}")  # fmt: skip
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device: unknown {self.device!r}; choose from {DEVICES} or cuda:N")
        for name in ("num_workers", "torch_threads", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.log_every < 1:
            raise ValueError(f"log_every: must be >= 1, got {self.log_every}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and the run folder's ``config.yaml``)."""
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return _plain(data)


def load_train_config(
    path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> TrainConfig:
    """Read a YAML training config and apply ``overrides`` (``"optim.lr=1e-3"`` strings).

    Errors are ``ValueError``/``FileNotFoundError`` naming the file and the dotted field.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} not found (see config/train/*.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections at the top level")
    try:
        for key, value in _parse_overrides(overrides).items():
            _set_dotted(data, key, value)
        return train_config_from_dict(data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Build a ``TrainConfig`` from plain data, checking every field's type and value."""
    data = dict(data)
    model_data = data.pop("model", None) or {}
    if not isinstance(model_data, Mapping):
        raise ValueError("model: expected a mapping of MLESAMConfig fields")
    try:
        model = MLESAMConfig.from_dict(model_data)
    except (TypeError, ValueError) as error:
        message = str(error).removeprefix("model config: ")
        raise ValueError(f"model.{message}") from None
    config = _build(TrainConfig, data, "", skip={"model"})
    config.model = model
    return config


def _build(cls: type, data: Mapping[str, Any], prefix: str, skip: set[str] = frozenset()):
    """Type-check ``data`` against dataclass ``cls`` and construct it (nested sections too)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{prefix.rstrip('.') or 'config'}: expected a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{prefix}{unknown[0]}: unknown field; known in this section: "
            f"{', '.join(sorted(known))}"
        )
    values = {}
    for name, value in data.items():
        if name in skip:
            continue
        hint = hints[name]
        if is_dataclass(hint):
            values[name] = _build(hint, value or {}, f"{prefix}{name}.")
        else:
            values[name] = _coerce(value, hint, f"{prefix}{name}")
    try:
        return cls(**values)
    except ValueError as error:
        raise ValueError(f"{prefix}{error}") from None


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Check/convert one YAML value to the annotated type (int, float, str, bool, tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, Sequence):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{name}: expected {len(args)} values, got {list(value)!r}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in pairs)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        return value
    if hint is float:
        # YAML reads "1e-3" (no dot) as a string; accept numeric strings for floats.
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    raise ValueError(f"{name}: unsupported field type {hint}")  # pragma: no cover


def _parse_overrides(overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    import yaml

    if isinstance(overrides, Mapping):
        return dict(overrides)
    parsed = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"override {item!r}: expected section.field=value, e.g. optim.lr=1e-3"
            )
        parsed[key.strip()] = yaml.safe_load(text)
    return parsed


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {key}: {section} is not a section")
        node = child
    node[leaf] = value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
