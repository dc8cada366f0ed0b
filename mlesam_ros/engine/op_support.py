"""Check an ONNX graph against the operators TensorRT's ONNX parser can import.

An unsupported node only shows up when ``build-engine`` runs on the robot, minutes into a
build; checking the exported graph against ``tensorrt_ops.yaml`` at export time (and in the
tests) moves that failure to the developer's machine. The list is data, kept beside this
module; onnx has no such table, so the walk over the graph is written here.
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


@dataclass(frozen=True)
class SupportedOps:
    """The operator table read from ``tensorrt_ops.yaml``."""

    operators: frozenset[str]
    opset_range: tuple[int, int]
    source: str


@dataclass
class OpSupportReport:
    """What the walk found: unsupported operators (with counts) and other blocking issues."""

    op_counts: Counter[str] = field(default_factory=Counter)
    unsupported: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when TensorRT's parser should accept every node of the graph."""
        return not self.unsupported and not self.problems

    def summary(self) -> str:
        """One readable paragraph for logs and error messages."""
        if self.ok:
            return f"all {sum(self.op_counts.values())} nodes use TensorRT-supported operators"
        parts = [f"{op} x{count}" for op, count in sorted(self.unsupported.items())]
        lines = []
        if parts:
            lines.append("unsupported by TensorRT's ONNX parser: " + ", ".join(parts))
        lines.extend(self.problems)
        return "; ".join(lines)


@functools.cache
def load_supported_ops(path: Path = TENSORRT_OPS_FILE) -> SupportedOps:
    """Read the operator table (cached: it is consulted once per export)."""
    data = yaml.safe_load(Path(path).read_text())
    low, high = data["opset_range"]
    return SupportedOps(frozenset(data["operators"]), (int(low), int(high)), data["source"])


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


def check_tensorrt_ops(
    model: onnx.ModelProto | str | Path, supported: SupportedOps | None = None
) -> OpSupportReport:
    """Walk the graph (model-local functions inlined) and report what TensorRT cannot parse."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    supported = supported or load_supported_ops()
    if model.functions:
        # The dynamo exporter may wrap modules in local functions; TensorRT sees their bodies.
        model = onnx.inliner.inline_local_functions(model)
    report = OpSupportReport()
    for opset in model.opset_import:
        if opset.domain in _DEFAULT_DOMAINS:
            low, high = supported.opset_range
            if not low <= opset.version <= high:
                report.problems.append(
                    f"opset {opset.version} is outside TensorRT's range {low}..{high}"
                )
    for node in _iter_nodes(model.graph):
        default_domain = node.domain in _DEFAULT_DOMAINS
        name = node.op_type if default_domain else f"{node.domain}::{node.op_type}"
        report.op_counts[name] += 1
        if not default_domain or node.op_type not in supported.operators:
            report.unsupported[name] += 1
        elif node.op_type == "Resize":
            mode = next((a.s for a in node.attribute if a.name == "mode"), b"nearest")
            if mode not in _RESIZE_MODES:
                report.problems.append(
                    f"Resize node {node.name!r} uses mode {mode.decode()!r}; TensorRT supports "
                    "only nearest and linear (use bilinear interpolation in the model)"
                )
    return report
