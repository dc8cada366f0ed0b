"""Export of the tiny preset: ONNX Runtime must reproduce PyTorch, absent modalities too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto

from mlesam_ros.engine.onnx_export import (
    example_inputs,
    export_onnx,
    presence_patterns,
    read_spec,
)
from mlesam_ros.engine.op_support import check_tensorrt_ops
from mlesam_ros.engine.torch_model import build_untrained, spec_for_model

MODALITIES = ("rgb", "depth", "lidar")
# Off the tiny preset's native 128x128, so SAM's position embedding is resized (bicubic)
# inside the model: export must turn that into a constant for TensorRT.
SIZE = (32, 48)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    model = build_untrained("tiny", MODALITIES, SIZE, num_classes=25, seed=0)
    # A fresh model has a zero position embedding and zero LoRA B matrices, which hides
    # export bugs in those paths (one did hide: a graph optimizer broke trained models only).
    # Perturb every weight so the export is checked on a model that looks trained.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model


@pytest.fixture(scope="module")
def logits_export(model, tmp_path_factory) -> tuple[Path, object]:
    spec = spec_for_model(model, output="logits")
    report = export_onnx(model, spec, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return report.path, report


def test_export_reports_parity_for_every_presence_pattern(logits_export) -> None:
    _, report = logits_export
    patterns = [r.present for r in report.parity]
    assert patterns == presence_patterns(3)
    assert (True, False, False) in patterns and (False, True, True) in patterns
    for result in report.parity:
        assert result.max_abs_diff < 1e-3
        assert result.argmax_agreement >= 0.999
    assert report.opset == 17
    assert report.ops.ok, report.ops.summary()


def test_onnxruntime_matches_pytorch_logits_with_absent_modalities(model, logits_export) -> None:
    path, _ = logits_export
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = read_spec(path)
    patterns = [(True, True, True), (False, True, False), (True, False, False)]
    for index, pattern in enumerate(patterns):
        images, present = example_inputs(spec, pattern, seed=100 + index)
        (got,) = session.run(None, {"images": images, "present": present})
        with torch.no_grad():
            ref = model(torch.from_numpy(images), torch.from_numpy(present))["logits"].numpy()
        assert got.shape == (1, 25, *SIZE)
        assert np.abs(got - ref).max() < 1e-3
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.999
        # An absent modality's pixels must not matter in the exported graph either.
        scrambled = images.copy()
        scrambled[0, [not p for p in pattern]] = 255.0 - scrambled[0, [not p for p in pattern]]
        if not all(pattern):
            (again,) = session.run(None, {"images": scrambled, "present": present})
            assert np.abs(again - got).max() < 1e-5


def test_graph_is_static_checked_and_carries_metadata(logits_export) -> None:
    path, _ = logits_export
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {"images": [1, 3, 3, *SIZE], "present": [1, 3]}
    assert proto.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.BOOL
    assert check_tensorrt_ops(proto).ok
    assert "Resize" not in {n.op_type for n in proto.graph.node if
                            any(a.s == b"cubic" for a in n.attribute)}
    spec = read_spec(path)
    assert spec.modalities == MODALITIES
    assert spec.input_size == SIZE
    assert spec.num_classes == 25 and spec.class_names[0] == "Building"
    assert spec.preset == "tiny" and spec.output == "logits"


def test_labels_output_uint8_with_float_presence(model, tmp_path: Path) -> None:
    spec = spec_for_model(model, output="labels", label_dtype="uint8", present_dtype="float32")
    # Parity is asserted below directly; skipping the built-in pass keeps the test fast.
    report = export_onnx(model, spec, tmp_path / "labels.onnx", verify=False)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    images, present = example_inputs(spec, (True, False, True), seed=7)
    assert present.dtype == np.float32
    labels, confidence, routing = session.run(None, {"images": images, "present": present})
    assert labels.dtype == np.uint8 and labels.shape == (1, *SIZE)
    assert confidence.dtype == np.float32 and confidence.shape == (1, *SIZE)
    with torch.no_grad():
        outputs = model(torch.from_numpy(images), torch.from_numpy(present > 0.5))
    logits = outputs["logits"]
    probabilities = logits.softmax(1)[0].numpy()
    # The router's weights per level travel with the labels (for sensor health): same values,
    # exactly zero for the absent sensor, summing to one over the present ones.
    assert spec.routing_levels == 4 and routing.shape == (1, 4, len(MODALITIES))
    np.testing.assert_allclose(routing, outputs["routing_weights"].numpy(), atol=1e-5)
    assert (routing[0, :, 1] == 0).all()
    np.testing.assert_allclose(routing[0].sum(axis=1), 1.0, atol=1e-5)
    assert (labels[0] == probabilities.argmax(0)).mean() >= 0.999
    assert np.abs(confidence[0] - probabilities.max(0)).max() < 1e-4
    assert confidence.min() >= 1.0 / 25 - 1e-6
    # TensorRT casts to UINT8 only from float: the label ids reach it through FP32.
    assert report.ops.ok, report.ops.summary()
    proto = onnx.load(str(report.path))
    casts = [n for n in proto.graph.node if n.op_type == "Cast"
             and n.attribute[0].i == TensorProto.UINT8]  # fmt: skip
    assert len(casts) == 1
    producer = next(n for n in proto.graph.node if casts[0].input[0] in n.output)
    assert producer.op_type == "Cast" and producer.attribute[0].i == TensorProto.FLOAT


def test_fp16_export_keeps_io_types_and_fp32_normalisation(model, tmp_path: Path) -> None:
    spec = spec_for_model(model, output="labels", precision="fp16")
    report = export_onnx(model, spec, tmp_path / "half.onnx")
    assert report.ops.ok, report.ops.summary()
    assert [r.present for r in report.parity] == presence_patterns(3)
    for result in report.parity:  # decidable pixels agree; confidence within fp16 rounding
        assert result.ok and result.precision == "fp16"
        assert result.confident_agreement >= 0.999 and result.max_abs_diff < 2e-2
    assert read_spec(report.path).precision == "fp16"
    proto = onnx.load(str(report.path))
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [TensorProto.FLOAT,
                                                                         TensorProto.BOOL]
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [
        TensorProto.INT32, TensorProto.FLOAT, TensorProto.FLOAT]  # labels, confidence, routing
    weights = [init.data_type for init in proto.graph.initializer]
    assert weights.count(TensorProto.FLOAT16) > weights.count(TensorProto.FLOAT)
    typed = {v.name: v.type.tensor_type.elem_type for v in
             onnx.shape_inference.infer_shapes(proto).graph.value_info}  # fmt: skip
    for node in proto.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            assert typed[node.input[0]] == TensorProto.FLOAT, node.name
    fp32_size = export_onnx(model, spec_for_model(model), tmp_path / "full.onnx",
                            verify=False).path.stat().st_size  # fmt: skip
    assert report.path.stat().st_size < 0.7 * fp32_size


def test_failed_check_keeps_no_file_at_out(model, tmp_path: Path, monkeypatch) -> None:
    from mlesam_ros.engine import onnx_export
    from mlesam_ros.engine.op_support import OpSupportReport

    bad = OpSupportReport()
    bad.unsupported["Unique"] = 1
    monkeypatch.setattr(onnx_export, "check_tensorrt_ops", lambda proto: bad)
    out = tmp_path / "bad.onnx"
    with pytest.raises(onnx_export.ExportVerificationError, match="Unique x1"):
        export_onnx(model, spec_for_model(model), out, verify=False)
    assert not out.exists()
    assert (tmp_path / "bad.onnx.failed.onnx").is_file()


def test_missing_onnx_error_names_export_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mlesam export --out"):
        read_spec(tmp_path / "nope.onnx")


def test_export_with_sdpa_attention_matches_stock_sam_attention(model, logits_export) -> None:
    """The graph is exported from the fused (SDPA) attention, lowered to TensorRT-parsable ops,
    and ONNX Runtime reproduces segment-anything's stock attention in PyTorch."""
    import copy

    from mlesam_ros.model.attention import attention_impl, set_attention_impl

    path, report = logits_export
    assert attention_impl(model) == "sdpa"  # what export_onnx exported
    assert report.ops.ok, report.ops.summary()
    assert all(result.ok for result in report.parity)
    proto = onnx.load(str(path))
    op_types = {node.op_type for node in proto.graph.node}
    assert "Softmax" in op_types and "MatMul" in op_types
    assert not any(node.domain not in ("", "ai.onnx") for node in proto.graph.node)
    stock = copy.deepcopy(model)
    set_attention_impl(stock, "stock")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images, present = example_inputs(read_spec(path), (True, True, False), seed=11)
    (got,) = session.run(None, {"images": images, "present": present})
    with torch.no_grad():
        ref = stock(torch.from_numpy(images), torch.from_numpy(present))["logits"].numpy()
    assert np.abs(got - ref).max() < 1e-3
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.999
