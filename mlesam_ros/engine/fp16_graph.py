"""Turn an fp32 ONNX graph into the fp16 graph TensorRT's strongly typed builds need.

TensorRT 11 (and TensorRT 10 with a strongly typed network) runs every layer at the type the
graph gives it; there is no builder flag that lowers precision. So fp16 engines are built from
an fp16 graph: weights and activations in fp16, with the numerically sensitive parts kept in
fp32 (normalisation statistics, softmax, the Fourier position encoding, the output head) and
the graph's inputs and outputs unchanged, so every runtime feeds and reads it as before.

The conversion is onnxruntime's ``float16`` converter, then its topological sort (both ship in
the onnxruntime wheel the package already depends on): it casts at every fp32/fp16 boundary,
which a strongly typed network requires. NVIDIA's ModelOpt AutoCast does the same job but pulls
a large dependency tree for one function.
"""

from __future__ import annotations

import warnings

import onnx

# Kept in fp32: normalisation (LayerNormalization, and the ReduceMean/Pow/Sqrt of SAM's
# LayerNorm2d), softmax and the argmax/max head, and Sin/Cos of the random Fourier position
# encoding (arguments of tens of radians lose their phase in fp16). ORT's default block list
# (Range, CumSum, TopK, ...) is added on top.
FP32_OPS = ("LayerNormalization", "ReduceMean", "Pow", "Sqrt", "Softmax", "ReduceMax",
            "ArgMax", "Sin", "Cos")  # fmt: skip


def convert_to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Return an fp16 copy of ``proto`` (same inputs, outputs and metadata)."""
    from onnxruntime.transformers import float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)  # the converter rewrites the graph in place
    with warnings.catch_warnings():
        # The converter warns for every fp32 constant it clamps into fp16's range.
        warnings.filterwarnings("ignore", category=UserWarning)
        converted = float16.convert_float_to_float16(
            copy, keep_io_types=True,
            op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *FP32_OPS],
        )  # fmt: skip
    # The converter appends its input casts after the nodes that read them; ONNX (and
    # TensorRT's parser) want the nodes in topological order.
    OnnxModel(converted).topological_sort()
    return converted
