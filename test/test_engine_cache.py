"""Engine naming, sidecars, stale detection and rebuild decisions, with a fake TensorRT."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from mlesam_ros.engine.engine_cache import (
    BuildOptions,
    EngineTarget,
    default_engine_path,
    ensure_engine,
    read_sidecar,
    sidecar_path,
    stale_reasons,
)
from mlesam_ros.engine.spec import ModelSpec

H100_TRT10 = EngineTarget("10.3.0", (9, 0), "NVIDIA H100")
SPEC = ModelSpec(modalities=("rgb", "depth"), input_size=(8, 12), class_names=("a", "b", "c"))


class FakeBuilder:
    """Stands in for TensorRT: engines are bytes tagged with the target; counts builds."""

    def __init__(self, target: EngineTarget = H100_TRT10) -> None:
        self.current = target
        self.builds = 0
        self.reject = False

    def target(self) -> EngineTarget:
        return self.current

    def build(self, onnx_path: Path, options: BuildOptions) -> bytes:
        self.builds += 1
        return f"engine:{self.current.sm}:{options.precision}:{onnx_path.read_bytes()!r}".encode()

    def deserialize(self, data: bytes) -> str:
        if self.reject or not data.startswith(b"engine:"):
            raise RuntimeError("Serialization assertion magicTagRead == kMAGIC_TAG failed")
        return data.decode()


def _write_onnx(path: Path, doc: str = "v1") -> Path:
    # Inputs and outputs as SPEC promises (read_spec checks the graph against its metadata).
    height, width = SPEC.input_size
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["confidence"], axes=[1, 2], keepdims=0),
         helper.make_node("Cast", ["confidence"], ["labels"], to=TensorProto.INT32)], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(SPEC.images_shape)),
         helper.make_tensor_value_info("present", TensorProto.BOOL, [1, 2])],
        [helper.make_tensor_value_info("labels", TensorProto.INT32, [1, height, width]),
         helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1, height, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.doc_string = doc
    for key, value in SPEC.to_metadata_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_default_name_carries_gpu_tensorrt_and_precision(tmp_path: Path) -> None:
    path = default_engine_path(tmp_path / "mlesam.onnx", H100_TRT10, "fp16")
    assert path == tmp_path / "mlesam.sm90.trt10.3.0.fp16.engine"
    orin = EngineTarget("10.3.0", (8, 7), "Orin")
    assert default_engine_path("m.onnx", orin, "fp32").name == "m.sm87.trt10.3.0.fp32.engine"
    assert sidecar_path(path).name == "mlesam.sm90.trt10.3.0.fp16.engine.json"


def test_build_writes_engine_and_sidecar_then_reuses_it(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    builder = FakeBuilder()
    first = ensure_engine(builder, onnx_path, options=BuildOptions("fp16"))
    assert first.rebuilt and builder.builds == 1
    assert first.path == default_engine_path(onnx_path, H100_TRT10, "fp16")
    assert "does not exist" in first.reasons[0]
    record = read_sidecar(first.path)
    assert record["tensorrt_version"] == "10.3.0"
    assert record["compute_capability"] == [9, 0]
    assert record["precision"] == "fp16"
    assert len(record["onnx_sha256"]) == 64
    assert ModelSpec.from_dict(record["model"]) == SPEC
    assert first.spec == SPEC

    second = ensure_engine(builder, onnx_path, options=BuildOptions("fp16"))
    assert not second.rebuilt and builder.builds == 1
    assert second.engine == first.engine
    assert stale_reasons(first.path, H100_TRT10, onnx_path, "fp16") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("tensorrt", "built with TensorRT 10.3.0, this machine has 10.8.0"),
        ("gpu", "built for compute capability 9.0, this GPU is 8.7"),
        ("onnx", "changed since the engine was built"),
        ("precision", "built as fp16, fp32 requested"),
        ("sidecar", "missing or unreadable"),
    ],
)
def test_stale_engine_is_detected_and_rebuilt(tmp_path: Path, change: str, expected: str) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "m.engine"
    builder = FakeBuilder()
    ensure_engine(builder, onnx_path, engine_path, BuildOptions("fp16"))
    precision = "fp16"
    if change == "tensorrt":
        builder.current = EngineTarget("10.8.0", (9, 0), "NVIDIA H100")
    elif change == "gpu":
        builder.current = EngineTarget("10.3.0", (8, 7), "Orin")
    elif change == "onnx":
        _write_onnx(onnx_path, doc="v2")
    elif change == "precision":
        precision = "fp32"
    else:
        sidecar_path(engine_path).unlink()

    reasons = stale_reasons(engine_path, builder.current, onnx_path, precision)
    assert len(reasons) == 1 and expected in reasons[0]
    loaded = ensure_engine(builder, onnx_path, engine_path, BuildOptions(precision))
    assert loaded.rebuilt and builder.builds == 2
    assert expected in loaded.reasons[0]
    assert stale_reasons(engine_path, builder.current, onnx_path, precision) == []


def test_deserialization_failure_triggers_rebuild(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "m.engine"
    builder = FakeBuilder()
    ensure_engine(builder, onnx_path, engine_path)
    engine_path.write_bytes(b"garbage from a different TensorRT")  # sidecar still says fresh
    sidecar = json.loads(sidecar_path(engine_path).read_text())
    assert stale_reasons(engine_path, builder.current, None) == []  # only bytes are wrong
    loaded = ensure_engine(builder, onnx_path, engine_path)
    assert loaded.rebuilt and "deserialization failed" in loaded.reasons[0]
    assert loaded.engine.startswith("engine:sm90")
    rebuilt_record = json.loads(sidecar_path(engine_path).read_text())
    assert rebuilt_record["onnx_sha256"] == sidecar["onnx_sha256"]


def test_engine_alone_uses_onnx_recorded_in_sidecar(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "m.engine"
    builder = FakeBuilder()
    ensure_engine(builder, onnx_path, engine_path)
    builder.current = EngineTarget("10.8.0", (9, 0), "NVIDIA H100")
    loaded = ensure_engine(builder, engine_path=engine_path)
    assert loaded.rebuilt and builder.builds == 2

    onnx_path.unlink()
    builder.current = EngineTarget("10.9.0", (9, 0), "NVIDIA H100")
    with pytest.raises(FileNotFoundError, match="mlesam build-engine --onnx"):
        ensure_engine(builder, engine_path=engine_path)


def test_rebuild_disabled_reports_the_command(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    builder = FakeBuilder()
    with pytest.raises(ValueError, match=r"mlesam build-engine --onnx .*m\.onnx"):
        ensure_engine(builder, onnx_path, rebuild=False)
    assert builder.builds == 0


def test_missing_onnx_names_export_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mlesam export --out"):
        ensure_engine(FakeBuilder(), tmp_path / "absent.onnx")


def test_bad_build_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="precision"):
        BuildOptions("int4")
    with pytest.raises(ValueError, match="workspace_mb"):
        BuildOptions("fp16", workspace_mb=0)


def _tensorrt_gpu_reason() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install mlesam_ros[trt])"
    import torch

    return None if torch.cuda.is_available() else "no CUDA GPU visible"


@pytest.mark.skipif(_tensorrt_gpu_reason() is not None,
                    reason=f"TensorRT engine build skipped: {_tensorrt_gpu_reason()}")
def test_tensorrt_builds_and_runs_tiny_model(tmp_path: Path) -> None:
    import numpy as np
    import torch

    from mlesam_ros.engine.onnx_export import export_onnx
    from mlesam_ros.engine.segmenter import Segmenter
    from mlesam_ros.engine.torch_model import build_untrained, spec_for_model

    model = build_untrained("tiny", ("rgb", "depth"), (64, 64))
    spec = spec_for_model(model, output="labels")
    onnx_path = export_onnx(model, spec, tmp_path / "tiny.onnx").path
    trt_seg = Segmenter(onnx_path, "tensorrt", precision="fp32")
    ort_seg = Segmenter(onnx_path, "onnxruntime", device="cpu")
    images = np.random.default_rng(0).uniform(0, 255, spec.images_shape).astype(np.float32)
    present = np.array([[True, False]])
    agreement = (trt_seg.segment(images, present).labels
                 == ort_seg.segment(images, present).labels).mean()
    assert agreement >= 0.999
    assert torch.cuda.is_available()
