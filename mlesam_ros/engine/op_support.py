"""Check an ONNX graph against what TensorRT's ONNX parser imports: operators *and* types.

An unsupported node only shows up when ``build-engine`` runs on the robot, minutes into a
build; checking the exported graph against ``tensorrt_ops.yaml`` at export time (and in the
tests) moves that failure to the developer's machine. The table is data, kept beside this
module, one per TensorRT release; onnx has no such table, so the walk over the graph is written
here. Types come from ONNX shape inference, so a Cast that TensorRT cannot run (INT64 → UINT8)
is refused although ``Cast`` itself is supported.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnx.inliner
import yaml

TENSORRT_OPS_FILE = Path(__file__).with_name("tensorrt_ops.yaml")
_DEFAULT_DOMAINS = ("", "ai.onnx")
# TensorRT's Resize supports only these modes; bicubic position-embedding resizes are a
# common way for a ViT export to trip over this.
_RESIZE_MODES = {b"nearest", b"linear"}
# ONNX element types in onnx-tensorrt's spelling (the table's). DOUBLE is cast down to FP32.
_TYPE_NAMES = {
    onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16", onnx.TensorProto.DOUBLE: "FP32",
    onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.INT8: "INT8", onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.BOOL: "BOOL", onnx.TensorProto.FLOAT8E4M3FN: "FP8",
    onnx.TensorProto.INT4: "INT4",
}  # fmt: skip


@dataclass(frozen=True)
class SupportedOps:
    """One TensorRT release's operator table: operator → accepted input types."""

    operators: dict[str, frozenset[str]]
    opset_range: tuple[int, int]
    source: str
    tensorrt: str  # the release this table describes, e.g. "10.0"
    uint8_casts: frozenset[str] = frozenset({"FP32", "FP16"})


@dataclass
class OpSupportReport:
    """What the walk found: unsupported operators (with counts) and other blocking issues."""

    op_counts: Counter[str] = field(default_factory=Counter)
    unsupported: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    tensorrt: str = ""

    @property
    def ok(self) -> bool:
        """True when TensorRT's parser should accept every node of the graph."""
        return not self.unsupported and not self.problems

    def summary(self) -> str:
        """One readable paragraph for logs and error messages."""
        if self.ok:
            return (f"all {sum(self.op_counts.values())} nodes use operators and types TensorRT "
                    f"≥ {self.tensorrt} supports")  # fmt: skip
        parts = [f"{op} x{count}" for op, count in sorted(self.unsupported.items())]
        lines = []
        if parts:
            lines.append(f"unsupported by TensorRT {self.tensorrt}'s ONNX parser: "
                         + ", ".join(parts))  # fmt: skip
        lines.extend(self.problems)
        return "; ".join(lines)


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


@functools.cache
def _load_file(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def oldest_supported_tensorrt(path: Path = TENSORRT_OPS_FILE) -> str:
    """Return the oldest TensorRT release the package supports (the export check's target)."""
    return str(_load_file(path)["oldest_supported"])


@functools.cache
def load_supported_ops(
    tensorrt_version: str | None = None, path: Path = TENSORRT_OPS_FILE
) -> SupportedOps:
    """Return the newest table at or below ``tensorrt_version`` (default: the oldest)."""
    data = _load_file(path)
    wanted = _release(tensorrt_version or str(data["oldest_supported"]))
    tables = data["tables"]
    eligible = [name for name in tables if _release(name) <= wanted]
    if not eligible:
        raise ValueError(
            f"tensorrt: version {tensorrt_version} is older than any operator table "
            f"({', '.join(tables)}); supported TensorRT starts at {data['oldest_supported']}"
        )
    name = max(eligible, key=_release)
    chain, current = [], name
    while current is not None:  # a table lists only what it adds to the one it extends
        chain.append(tables[current])
        current = tables[current].get("extends")
    operators: dict[str, frozenset[str]] = {}
    for table in reversed(chain):
        operators.update({op: frozenset(types) for op, types in table["operators"].items()})
    low, high = tables[name]["opset_range"]
    return SupportedOps(operators, (int(low), int(high)), tables[name]["source"], name,
                        frozenset(data["uint8_casts"]))  # fmt: skip


def _iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _iter_nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _iter_nodes(subgraph)


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor name shape inference can type (inputs, values, outputs)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # an untypeable graph is reported by name checks alone
        inferred = model
    graph = inferred.graph
    types = {init.name: init.data_type for init in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                types[node.output[0]] = value.data_type
    return types


def check_tensorrt_ops(
    model: onnx.ModelProto | str | Path,
    supported: SupportedOps | None = None,
    tensorrt_version: str | None = None,
) -> OpSupportReport:
    """Walk the graph (model-local functions inlined) and report what TensorRT cannot parse.

    Checks names and the opset against the table for ``tensorrt_version`` (default: the oldest
    supported release), the data type of each node's first input against the operator's types,
    and TensorRT's Cast rule for UINT8 (only from and to FP32/FP16).
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    supported = supported or load_supported_ops(tensorrt_version)
    if model.functions:
        # The dynamo exporter may wrap modules in local functions; TensorRT sees their bodies.
        model = onnx.inliner.inline_local_functions(model)
    report = OpSupportReport(tensorrt=supported.tensorrt)
    for opset in model.opset_import:
        if opset.domain in _DEFAULT_DOMAINS:
            low, high = supported.opset_range
            if not low <= opset.version <= high:
                report.problems.append(
                    f"opset {opset.version} is outside TensorRT {supported.tensorrt}'s range "
                    f"{low}..{high}; export with --opset {min(max(opset.version, low), high)}"
                )
    types = _element_types(model)
    for node in _iter_nodes(model.graph):
        default_domain = node.domain in _DEFAULT_DOMAINS
        name = node.op_type if default_domain else f"{node.domain}::{node.op_type}"
        report.op_counts[name] += 1
        if not default_domain or node.op_type not in supported.operators:
            report.unsupported[name] += 1
            continue
        source = _TYPE_NAMES.get(types.get(node.input[0], 0)) if node.input else None
        allowed = supported.operators[node.op_type]
        if source is not None and allowed and source not in allowed:
            report.problems.append(
                f"{node.op_type} node {node.name!r} takes {source}; TensorRT "
                f"{supported.tensorrt} runs it on {', '.join(sorted(allowed))} only"
            )
        if node.op_type == "Cast":
            _check_cast(node, source, supported, report)
        elif node.op_type == "Resize":
            mode = next((a.s for a in node.attribute if a.name == "mode"), b"nearest")
            if mode not in _RESIZE_MODES:
                report.problems.append(
                    f"Resize node {node.name!r} uses mode {mode.decode()!r}; TensorRT supports "
                    "only nearest and linear (use bilinear interpolation in the model)"
                )
    return report


def _check_cast(
    node: onnx.NodeProto, source: str | None, supported: SupportedOps, report: OpSupportReport
) -> None:
    """TensorRT casts to or from UINT8 only from or to FP32/FP16."""
    target = _TYPE_NAMES.get(next((a.i for a in node.attribute if a.name == "to"), 0))
    if source is None or target is None or "UINT8" not in (source, target) or source == target:
        return
    other = source if target == "UINT8" else target
    if other not in supported.uint8_casts:
        report.problems.append(
            f"Cast node {node.name!r} converts {source} to {target}; TensorRT converts to and "
            f"from UINT8 only from and to {'/'.join(sorted(supported.uint8_casts))} (cast "
            "through FP32 first)"
        )
