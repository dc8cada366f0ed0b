"""TensorRT operator and type check on small handmade ONNX graphs (no torch, no GPU)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from mlesam_ros.engine.op_support import (
    check_tensorrt_ops,
    load_supported_ops,
    oldest_supported_tensorrt,
)


def _model(nodes, opset=17, inputs=("x",), outputs=("y",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_operator_table_is_loaded_from_data_with_its_source() -> None:
    table = load_supported_ops()  # the oldest supported TensorRT's: what exports must satisfy
    assert oldest_supported_tensorrt() == "10.3" and table.tensorrt == "10.0"
    expected = {"Conv", "MatMul", "Softmax", "LayerNormalization", "Einsum", "Resize"}
    assert expected <= set(table.operators)
    # Sequence ops and Unique are documented as unsupported by onnx-tensorrt.
    assert not {"Unique", "SequenceConstruct", "StringNormalizer"} & set(table.operators)
    assert table.opset_range == (9, 20)
    assert table.operators["MatMul"] == {"FP32", "FP16", "BF16"}
    assert "onnx-tensorrt" in table.source


def test_tables_per_release_add_operators_and_opsets() -> None:
    assert load_supported_ops("10.3.0").tensorrt == "10.0"
    newer = load_supported_ops("10.16.1")
    assert newer.tensorrt == "10.15" and newer.opset_range == (9, 24)
    assert "RMSNormalization" in newer.operators and "Conv" in newer.operators
    assert "RMSNormalization" not in load_supported_ops().operators
    assert load_supported_ops("11.4.0").tensorrt == "11.0"
    attention = _model([helper.make_node("RMSNormalization", ["x", "x"], ["y"])], opset=23)
    assert not check_tensorrt_ops(attention).ok  # TensorRT 10.3 cannot load it
    assert check_tensorrt_ops(attention, tensorrt_version="10.16.1").ok


def test_cast_to_uint8_only_from_float() -> None:
    """TensorRT casts to UINT8 only from FP32/FP16: ArgMax's INT64 must go through FP32."""
    argmax = helper.make_node("ArgMax", ["x"], ["index"], axis=0, keepdims=0)
    direct = _model([argmax, helper.make_node("Cast", ["index"], ["y"], to=TensorProto.UINT8)])
    report = check_tensorrt_ops(direct)
    assert not report.ok and not report.unsupported
    assert "converts INT64 to UINT8" in report.summary()
    assert "cast through FP32 first" in report.summary()
    through_float = _model([
        argmax,
        helper.make_node("Cast", ["index"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["f"], ["y"], to=TensorProto.UINT8),
    ])
    assert check_tensorrt_ops(through_float).ok, check_tensorrt_ops(through_float).summary()


def test_input_types_are_checked_per_operator() -> None:
    ints = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT32),
            helper.make_node("MatMul", ["i", "i"], ["y"])]
    report = check_tensorrt_ops(_model(ints))
    assert "MatMul node '' takes INT32" in report.summary()
    assert "FP16, FP32" in report.summary()


def test_supported_graph_passes() -> None:
    model = _model([
        helper.make_node("Relu", ["x"], ["h"]),
        helper.make_node("Softmax", ["h"], ["y"]),
    ])
    report = check_tensorrt_ops(model)
    assert report.ok, report.summary()
    assert report.op_counts == {"Relu": 1, "Softmax": 1}


def test_unsupported_operator_fails_and_is_named() -> None:
    model = _model([
        helper.make_node("Relu", ["x"], ["h"]),
        helper.make_node("Unique", ["h"], ["y"]),
    ])
    report = check_tensorrt_ops(model)
    assert not report.ok
    assert dict(report.unsupported) == {"Unique": 1}
    assert "Unique x1" in report.summary()


def test_custom_domain_operator_fails() -> None:
    node = helper.make_node("FusedGelu", ["x"], ["y"], domain="com.microsoft")
    model = _model([node])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    report = check_tensorrt_ops(model)
    assert dict(report.unsupported) == {"com.microsoft::FusedGelu": 1}


def test_unsupported_operator_inside_if_branch_is_found() -> None:
    then_graph = helper.make_graph(
        [helper.make_node("Unique", ["x"], ["t"])], "then", [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])], "else", [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    model = _model(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph)],
        inputs=("x", "c"),
    )
    report = check_tensorrt_ops(model)
    assert dict(report.unsupported) == {"Unique": 1}
    assert report.op_counts["If"] == 1


def test_cubic_resize_and_out_of_range_opset_are_problems() -> None:
    scales = helper.make_tensor("s", TensorProto.FLOAT, [1], [2.0])
    nodes = [helper.make_node("Constant", [], ["scales"], value=scales),
             helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic")]
    report = check_tensorrt_ops(_model(nodes))
    assert not report.ok and not report.unsupported
    assert "cubic" in report.summary()

    linear = [nodes[0], helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")]
    assert check_tensorrt_ops(_model(linear)).ok

    old = check_tensorrt_ops(_model([helper.make_node("Relu", ["x"], ["y"])], opset=8))
    assert not old.ok and "opset 8" in old.summary()
