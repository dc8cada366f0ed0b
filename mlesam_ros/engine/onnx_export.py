"""Export a model to a static-shape ONNX file and prove it matches PyTorch before keeping it.

Exporter choice: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter) is the
default. In torch 2.14 it honours ``opset_version=17`` exactly and exports the tiny model in
well under a second, while the dynamo exporter emits opset 18 (its down-converter fails on
Reduce ops) and takes seconds even for toy models. Both graphs use only TensorRT-supported
operators; the dynamo graph has fewer Shape/Slice nodes. ``exporter="dynamo"`` stays
available for when the TorchScript exporter is removed.

Before export, a copy of the model gets SAM's position embedding resized for the export size
(``bake_position_embedding``), so the graph carries a constant instead of a bicubic Resize,
which TensorRT's Resize (nearest and linear only) cannot parse. The exporters' own constant
folding is used; ``onnxscript.optimizer`` was tried on top and is NOT used: on a trained model
its folding changed the results (ONNX Runtime vs PyTorch max |Δlogits| 4.2, found by the
parity check below), while the unfolded TorchScript graph matches to 1e-5.

``precision="fp16"`` converts the verified fp32 graph with ``fp16_graph.convert_to_fp16`` (I/O
types unchanged, normalisation and softmax kept in fp32) for TensorRT's strongly typed builds,
and verifies the fp16 graph against PyTorch's fp32 on the pixels whose label is decidable (top-2
logit margin above ``agreement.DEFAULT_MARGIN_EPS``). ONNX Runtime's CPU provider computes
operators it has no fp16 kernel for in fp32, so this checks the conversion (fp16 weights, cast
placement), not fp16 arithmetic; the GPU check (``mlesam gpu-check``) measures that.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from mlesam_ros.engine.agreement import DEFAULT_MARGIN_EPS, compare, top2_margin
from mlesam_ros.engine.op_support import OpSupportReport, check_tensorrt_ops
from mlesam_ros.engine.spec import ModelSpec

if TYPE_CHECKING:
    import torch

LOG = logging.getLogger(__name__)
EXPORTERS = ("torchscript", "dynamo")
LOGITS_ATOL = 1e-3
MIN_ARGMAX_AGREEMENT = 0.999
# fp16 graphs: confidence may move by fp16 rounding; labels must agree wherever decidable.
FP16_CONFIDENCE_ATOL = 2e-2


class ExportVerificationError(RuntimeError):
    """The exported graph does not match PyTorch closely enough, or TensorRT cannot parse it."""


@dataclass(frozen=True)
class ParityResult:
    """ONNX Runtime vs PyTorch on one presence pattern."""

    present: tuple[bool, ...]
    max_abs_diff: float  # logits (output=logits) or confidence (output=labels)
    argmax_agreement: float  # fraction of pixels with the same label
    confident_agreement: float = 1.0  # same, where PyTorch's top-2 margin > DEFAULT_MARGIN_EPS
    precision: str = "fp32"

    @property
    def ok(self) -> bool:
        """Inside the export tolerances (fp16 graphs: on the decidable pixels)."""
        if self.precision == "fp16":
            return (self.max_abs_diff < FP16_CONFIDENCE_ATOL
                    and self.confident_agreement >= MIN_ARGMAX_AGREEMENT)  # fmt: skip
        return self.max_abs_diff < LOGITS_ATOL and self.argmax_agreement >= MIN_ARGMAX_AGREEMENT


@dataclass
class ExportReport:
    """Everything ``export_onnx`` checked, for the CLI to print."""

    path: Path
    spec: ModelSpec
    opset: int
    ops: OpSupportReport
    parity: list[ParityResult] = field(default_factory=list)


def deploy_module(model: torch.nn.Module, spec: ModelSpec) -> torch.nn.Module:
    """Wrap a model so its inputs/outputs are the deployed ones described by ``spec``."""
    import torch

    label_dtype = getattr(torch, spec.label_dtype)

    class DeployedModel(torch.nn.Module):
        """images (1,M,3,H,W) + present (1,M) → logits, or labels + softmax confidence."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor, present: torch.Tensor):
            outputs = self.model(images, present > 0.5 if present.is_floating_point() else present)
            logits = outputs["logits"]
            if spec.output == "logits":
                return logits
            # The robot only needs the class and how sure the model is; doing softmax/argmax
            # in the engine keeps the (C,H,W) float logits on the GPU.
            confidence, labels = logits.softmax(dim=1).max(dim=1)
            if label_dtype == torch.uint8:
                # TensorRT casts to UINT8 only from float (exact here: ids are < 256).
                labels = labels.to(torch.float32)
            if spec.routing_levels:
                return labels.to(label_dtype), confidence, outputs["routing_weights"].float()
            return labels.to(label_dtype), confidence

    return DeployedModel().eval()


def output_names(spec: ModelSpec) -> list[str]:
    """Graph output names for a spec."""
    if spec.output == "logits":
        return ["logits"]
    return ["labels", "confidence"] + (["routing_weights"] if spec.routing_levels else [])


def example_inputs(
    spec: ModelSpec, present: tuple[bool, ...] | None = None, seed: int = 0,
    rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Random 0..255 images and a presence vector in the deployed dtypes.

    ``rows`` frames (default: the spec's batch, 1 for a dynamic batch), each with ``present``.
    """
    rows = rows or spec.rows
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 255.0, size=(rows, *spec.images_shape[1:])).astype(np.float32)
    mask = np.array([present or (True,) * len(spec.modalities)] * rows, dtype=bool)
    return images, mask.astype(np.float32) if spec.present_dtype == "float32" else mask


def presence_patterns(num_modalities: int) -> list[tuple[bool, ...]]:
    """All present, each single modality absent, and only the first present."""
    patterns = [(True,) * num_modalities]
    if num_modalities > 1:
        for absent in range(num_modalities):
            patterns.append(tuple(i != absent for i in range(num_modalities)))
        if num_modalities > 2:
            patterns.append((True,) + (False,) * (num_modalities - 1))
    return patterns


def export_onnx(
    model: torch.nn.Module,
    spec: ModelSpec,
    out: str | Path,
    opset: int = 17,
    exporter: str = "torchscript",
    verify: bool = True,
) -> ExportReport:
    """Export, check (onnx.checker, shape inference, TensorRT ops) and verify against PyTorch.

    ``spec.precision`` ``fp16`` writes an fp16 graph (see the module docstring). The file is
    written next to ``out`` first and renamed only after every check passed, so a file at
    ``out`` is always a verified export. On failure the graph is kept as
    ``<out>.failed.onnx`` for inspection and ``ExportVerificationError`` is raised.
    """
    import torch

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter: {exporter!r} is not one of {', '.join(EXPORTERS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".tmp.onnx")
    model = copy.deepcopy(model).eval()
    model.backbone.bake_position_embedding(spec.input_size)
    wrapped = deploy_module(model, spec)
    # A dynamic batch is traced with two frames, so no size-1 broadcast is baked in.
    images, present = example_inputs(spec, rows=2 if spec.dynamic_batch else None)
    names = output_names(spec)
    dynamic = {name: {0: "batch"} for name in ["images", "present", *names]}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns that it is legacy on every call; the choice is
        # deliberate (see the module docstring).
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # Shape-dependent Python branches in segment-anything are constants for a static export.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            wrapped,
            (torch.from_numpy(images), torch.from_numpy(present)),
            str(staging),
            input_names=["images", "present"],
            output_names=names,
            opset_version=opset,
            dynamic_axes=dynamic if spec.dynamic_batch else None,
            dynamo=exporter == "dynamo",
            **(
                {"do_constant_folding": True}
                if exporter == "torchscript"
                else {"external_data": False, "optimize": True}
            ),
        )
    proto = onnx.load(str(staging))
    proto = _finalise(proto, spec)
    if spec.precision == "fp16":
        from mlesam_ros.engine.fp16_graph import convert_to_fp16

        proto = _finalise(convert_to_fp16(proto), spec)
    onnx.save(proto, str(staging))
    report = ExportReport(out, spec, _default_opset(proto), check_tensorrt_ops(proto))
    try:
        if not report.ops.ok:
            raise ExportVerificationError(report.ops.summary())
        if verify:
            report.parity = verify_onnx(staging, wrapped, spec)
            bad = [result for result in report.parity if not result.ok]
            if bad:
                raise ExportVerificationError(
                    "ONNX Runtime disagrees with PyTorch: "
                    + "; ".join(_describe(result) for result in bad)
                )
    except ExportVerificationError:
        failed = out.with_name(out.name + ".failed.onnx")
        os.replace(staging, failed)
        LOG.error("export failed its checks; graph kept at %s", failed)
        raise
    os.replace(staging, out)
    return report


def _finalise(proto: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Metadata, checker, shape inference, and a check that every output shape is static."""
    del proto.metadata_props[:]
    for key, value in spec.to_metadata_props().items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"MLE-SAM {spec.preset} for {','.join(spec.modalities)}"
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    rows = None if spec.dynamic_batch else spec.batch  # a dynamic batch stays symbolic
    expected = {"logits": (rows, spec.num_classes, *spec.input_size),
                "labels": (rows, *spec.input_size), "confidence": (rows, *spec.input_size),
                "routing_weights": spec.routing_shape and (rows, *spec.routing_shape[1:])}
    for output in proto.graph.output:
        dims = tuple(d.dim_value if d.HasField("dim_value") else None
                     for d in output.type.tensor_type.shape.dim)
        if dims != expected[output.name]:
            raise ExportVerificationError(
                f"output {output.name} has shape {dims}, expected static {expected[output.name]}"
            )
    return proto


def _default_opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _describe(result: ParityResult) -> str:
    if result.precision == "fp16":
        return (f"present={list(result.present)}: max|Δ confidence|={result.max_abs_diff:.2e} "
                f"(< {FP16_CONFIDENCE_ATOL:g}), agreement where the top-2 margin > "
                f"{DEFAULT_MARGIN_EPS:g} {result.confident_agreement:.4%} "
                f"(≥ {MIN_ARGMAX_AGREEMENT:.1%})")  # fmt: skip
    return (f"present={list(result.present)}: max|Δ|={result.max_abs_diff:.2e} "
            f"(< {LOGITS_ATOL:g}), argmax agreement {result.argmax_agreement:.4%} "
            f"(≥ {MIN_ARGMAX_AGREEMENT:.1%})")


def verify_onnx(
    onnx_path: str | Path, wrapped: torch.nn.Module, spec: ModelSpec, seed: int = 0
) -> list[ParityResult]:
    """Run ONNX Runtime (CPU) and the wrapped PyTorch model on every presence pattern."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3  # fp16 graphs: one "no CPU kernel to fold" warning per node
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    results = []
    for index, pattern in enumerate(presence_patterns(len(spec.modalities))):
        # A dynamic batch is checked at three frames first, then at one.
        rows = (3 if index == 0 else 1) if spec.dynamic_batch else None
        images, present = example_inputs(spec, pattern, seed + index, rows)
        onnx_outputs = session.run(None, {"images": images, "present": present})
        with torch.no_grad():
            image_tensor, present_tensor = torch.from_numpy(images), torch.from_numpy(present)
            torch_outputs = wrapped(image_tensor, present_tensor)
            mask = present_tensor > 0.5 if present_tensor.is_floating_point() else present_tensor
            logits = wrapped.model(image_tensor, mask)["logits"].numpy()
        margin = np.stack([top2_margin(frame) for frame in logits])
        if spec.output == "logits":
            ref, got = torch_outputs.numpy(), onnx_outputs[0]
            same = ref.argmax(1) == got.argmax(1)
            agreement = float(same.mean())
            if spec.precision == "fp16":  # compare what the node publishes: the confidence
                diff = max(float(np.abs(_softmax_max(r) - _softmax_max(g)).max())
                           for r, g in zip(ref, got, strict=True))  # fmt: skip
            else:
                diff = float(np.abs(ref - got).max())
        else:
            ref_labels, ref_conf = (t.numpy() for t in torch_outputs[:2])
            measured = compare(ref_labels, ref_conf, onnx_outputs[0], onnx_outputs[1], margin)
            diff, agreement = measured.confidence_max_abs, measured.label_agreement
            if spec.routing_levels:  # the router's weights must match as well as its result
                routing = np.abs(torch_outputs[2].numpy() - onnx_outputs[2]).max()
                diff = max(diff, float(routing))
            same = ref_labels == onnx_outputs[0]
        confident = margin > DEFAULT_MARGIN_EPS
        confident_agreement = float(same[confident].mean()) if confident.any() else 1.0
        results.append(ParityResult(pattern, diff, agreement, confident_agreement,
                                    spec.precision))  # fmt: skip
    return results


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    """(C, H, W) → (H, W) largest softmax probability."""
    logits = logits.astype(np.float32)
    return 1.0 / np.exp(logits - logits.max(axis=0)).sum(axis=0)


def read_spec(onnx_path: str | Path) -> ModelSpec:
    """Read the ``ModelSpec`` stored in an exported ONNX file and check the graph against it.

    Weights are not loaded. Any mismatch (input names, shapes, dtypes, outputs) raises one
    ``ValueError`` here, at load, instead of failing on every frame later.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(
            f"{onnx_path} does not exist; create it with `mlesam export --out {onnx_path}`"
        )
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as error:  # protobuf DecodeError, truncated files, foreign formats
        raise ValueError(
            f"model: {onnx_path} is not a readable ONNX file ({type(error).__name__}); "
            "re-export it with `mlesam export`"
        ) from None
    props = {prop.key: prop.value for prop in proto.metadata_props}
    try:
        spec = ModelSpec.from_metadata_props(props, source=str(onnx_path))
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"model: {onnx_path} has unreadable mlesam metadata ({error})") from None
    check_graph(proto, spec, str(onnx_path))
    check_class_count(proto, spec, str(onnx_path))
    return spec


def graph_class_count(proto: onnx.ModelProto) -> int | None:
    """Return how many classes a ``labels`` graph computes (None when it cannot be told).

    ``labels`` is an ArgMax over the class axis (through Cast/Identity); ONNX shape inference
    gives that axis' static length. Best effort: a graph shape inference cannot read (or a
    symbolic class axis) gives None and is left to the per-frame output check.
    """
    producer = {name: node for node in proto.graph.node for name in node.output}
    node = producer.get("labels")
    while node is not None and node.op_type in ("Cast", "Identity"):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "ArgMax":
        return None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # a graph inference cannot follow (custom ops, > 2 GB): no verdict
        return None
    values = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.input]}
    value = values.get(node.input[0])
    if value is None:
        return None
    dims = value.type.tensor_type.shape.dim
    if not -len(dims) <= axis < len(dims) or not dims[axis].HasField("dim_value"):
        return None
    return int(dims[axis].dim_value)


def check_class_count(proto: onnx.ModelProto, spec: ModelSpec, source: str = "model") -> None:
    """Raise ``ValueError`` when a labels graph computes another number of classes than named."""
    if spec.output != "labels":
        return  # a logits graph's class axis is checked by check_graph
    computed = graph_class_count(proto)
    if computed is not None and computed != spec.num_classes:
        raise ValueError(
            f"model: {source} computes {computed} classes but its metadata names "
            f"{spec.num_classes} ({', '.join(spec.class_names[:5])}, ...); the labels would "
            "carry the wrong names: re-export it with `mlesam export`"
        )


_ONNX_DTYPES = {"float32": 1, "uint8": 2, "int32": 6, "int64": 7, "bool": 9}


def check_graph(proto: onnx.ModelProto, spec: ModelSpec, source: str = "model") -> None:
    """Raise ``ValueError`` when the graph's inputs/outputs disagree with ``spec``.

    Symbolic dimensions are accepted (they are checked by the runtime); static ones must equal
    what the spec promises, so a graph exported for another size or modality set is refused.
    """
    height, width = spec.input_size
    rows = None if spec.dynamic_batch else spec.batch  # None: the graph's batch is symbolic
    expected_inputs = {
        "images": ((rows, *spec.images_shape[1:]), ("float32",)),
        "present": ((rows, len(spec.modalities)), (spec.present_dtype,)),
    }
    if spec.output == "logits":
        expected_outputs = {"logits": ((rows, spec.num_classes, height, width), ("float32",))}
    else:
        expected_outputs = {
            "labels": ((rows, height, width), (spec.label_dtype, "int64")),
            "confidence": ((rows, height, width), ("float32",)),
        }
        if spec.routing_shape is not None:
            expected_outputs["routing_weights"] = ((rows, *spec.routing_shape[1:]),
                                                   ("float32",))  # fmt: skip
    initialisers = {init.name for init in proto.graph.initializer}
    for kind, values, expected in (
        ("input", [v for v in proto.graph.input if v.name not in initialisers], expected_inputs),
        ("output", list(proto.graph.output), expected_outputs),
    ):
        found = {value.name: value for value in values}
        if set(found) != set(expected):
            raise ValueError(
                f"model: {source} has graph {kind}s {sorted(found)} but its metadata (and the "
                f"node) need {sorted(expected)}; re-export it with `mlesam export`"
            )
        for name, (shape, dtypes) in expected.items():
            tensor = found[name].type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            if len(dims) != len(shape) or any(
                (want is None and d is not None)  # a dynamic batch must be symbolic
                or (d is not None and d != want)
                for d, want in zip(dims, shape, strict=True)
            ):
                shown = ["?" if d is None else d for d in dims]
                needed = ["batch" if want is None else want for want in shape]
                raise ValueError(
                    f"model: {source} {kind} '{name}' has shape {shown}, but its metadata "
                    f"(modalities {','.join(spec.modalities)}, input_size {height}x{width}, "
                    f"{spec.num_classes} classes) needs {needed}; re-export it with "
                    "`mlesam export`"
                )
            allowed = {_ONNX_DTYPES[d] for d in dtypes}
            if tensor.elem_type not in allowed:
                raise ValueError(
                    f"model: {source} {kind} '{name}' has ONNX element type "
                    f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}, its metadata says "
                    f"{'/'.join(dtypes)}; re-export it with `mlesam export`"
                )
