"""What a deployed model expects and returns, stored inside every artefact.

An ONNX file or a TensorRT engine is opaque: without this record a runtime would have to be
told the modality order, the input size and the class names separately, and a mismatch would
silently produce wrong labels. The exporter writes a ``ModelSpec`` into the ONNX
``metadata_props``; the engine cache copies it into the engine's JSON sidecar; checkpoints
derive it from the model config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from mlesam_ros._version import __version__
from mlesam_ros.modalities import parse_modalities
from mlesam_ros.text import quote

OUTPUT_KINDS = ("labels", "logits")
LABEL_DTYPES = ("int32", "uint8")
PRESENT_DTYPES = ("bool", "float32")
# The float type the graph computes in (its I/O types do not change): fp16 graphs are written by
# ``mlesam export --precision fp16`` for TensorRT's strongly typed builds.
GRAPH_PRECISIONS = ("fp32", "fp16")
_KEY_PREFIX = "mlesam."


@dataclass(frozen=True)
class ModelSpec:
    """Inputs, outputs and classes of one deployed model.

    ``batch``: the frames one call takes (the leading dimension of every input and output):
    N for a graph of that static batch (1 unless exported with ``--batch``), 0 for a graph
    whose batch is dynamic (any number of frames; TensorRT builds an optimisation profile).
    """

    modalities: tuple[str, ...]
    input_size: tuple[int, int]  # (H, W)
    class_names: tuple[str, ...]
    preset: str = "unknown"
    output: str = "labels"
    label_dtype: str = "int32"
    present_dtype: str = "bool"
    precision: str = "fp32"
    # Pyramid levels of the ``routing_weights`` output (1, levels, M): the router's weight per
    # sensor, for sensor health. 0: the artefact has no such output (no router, or exported
    # before it existed).
    routing_levels: int = 0
    batch: int = 1
    version: str = __version__

    def __post_init__(self) -> None:
        """Validate eagerly so a bad artefact fails at load time, not on the first frame."""
        object.__setattr__(self, "modalities", parse_modalities(self.modalities))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ValueError(f"input_size: expected (H, W) > 0, got {self.input_size}")
        if not self.class_names:
            raise ValueError("class_names: need at least one class")
        unnamed = [i for i, name in enumerate(self.class_names) if not name.strip()]
        repeated = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
        if unnamed or repeated:
            raise ValueError(
                "class_names: every class needs its own name (LabelInfo and the class filter "
                "go by name); "
                + (f"ids {unnamed[:10]} have none" if unnamed else
                   f"repeated: {', '.join(quote(n) for n in repeated[:10])}")
            )
        for name, value, allowed in (
            ("output", self.output, OUTPUT_KINDS),
            ("label_dtype", self.label_dtype, LABEL_DTYPES),
            ("present_dtype", self.present_dtype, PRESENT_DTYPES),
            ("precision", self.precision, GRAPH_PRECISIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        object.__setattr__(self, "routing_levels", int(self.routing_levels))
        object.__setattr__(self, "batch", int(self.batch))
        if self.batch < 0:
            raise ValueError(f"batch: must be >= 1, or 0 for a dynamic batch; got {self.batch}")
        if self.routing_levels < 0 or (self.routing_levels and self.output != "labels"):
            raise ValueError(
                f"routing_levels: must be >= 0, and only labels outputs carry routing weights "
                f"(got {self.routing_levels} with output {self.output})"
            )
        if self.label_dtype == "uint8" and self.num_classes > 256:
            raise ValueError("label_dtype: uint8 cannot hold more than 256 classes; use int32")

    @property
    def num_classes(self) -> int:
        """Number of output classes (length of ``class_names``)."""
        return len(self.class_names)

    @property
    def dynamic_batch(self) -> bool:
        """Whether the graph takes any number of frames per call (``batch`` 0)."""
        return self.batch == 0

    @property
    def rows(self) -> int:
        """Leading dimension of the example shapes below: ``batch``, or 1 for a dynamic batch."""
        return self.batch or 1

    @property
    def routing_shape(self) -> tuple[int, int, int] | None:
        """Shape of the ``routing_weights`` output, (batch, levels, M), or None without it."""
        if not self.routing_levels:
            return None
        return (self.rows, self.routing_levels, len(self.modalities))

    @property
    def images_shape(self) -> tuple[int, int, int, int, int]:
        """Shape of the ``images`` input: (batch, M, 3, H, W)."""
        return (self.rows, len(self.modalities), 3, *self.input_size)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able dict (lists instead of tuples), plus the derived class count."""
        data: dict[str, object] = {k: (list(v) if isinstance(v, tuple) else v)
                                   for k, v in asdict(self).items()}
        data["num_classes"] = self.num_classes
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ModelSpec:
        """Inverse of ``to_dict``; unknown keys (from newer writers) are ignored.

        The derived ``num_classes`` that ``to_dict`` writes must agree with the class names:
        metadata edited by hand (10 names for a 25-class model) would otherwise load and
        label every pixel with the wrong name.
        """
        names = {f.name for f in fields(cls)}
        spec = cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]
        declared = data.get("num_classes")
        if declared is not None and declared != spec.num_classes:
            shown = declared if isinstance(declared, int) else quote(declared)
            raise ValueError(
                f"class_names: the metadata lists {spec.num_classes} class names but declares "
                f"num_classes {shown}; the names must match the model's classes (re-export it "
                "with `mlesam export`)"
            )
        return spec

    def to_metadata_props(self) -> dict[str, str]:
        """Key/value strings for ONNX ``metadata_props`` (values JSON-encoded)."""
        return {_KEY_PREFIX + k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_metadata_props(cls, props: dict[str, str], source: str = "model") -> ModelSpec:
        """Read a spec written by ``to_metadata_props``; errors name the artefact."""
        data = {k[len(_KEY_PREFIX):]: json.loads(v) for k, v in props.items()
                if k.startswith(_KEY_PREFIX)}
        if not data:
            raise ValueError(
                f"{source}: no mlesam metadata in the ONNX file; re-export it with `mlesam export`"
            )
        return cls.from_dict(data)


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """Class names for a model that did not record them: the dataset with that many classes."""
    from mlesam_ros.data.classes import CLASS_SETS

    for class_set in CLASS_SETS.values():
        if len(class_set.names) == num_classes:
            return tuple(class_set.names)
    return tuple(f"class_{i}" for i in range(num_classes))
