"""Engine cache keys, sidecars, stale detection, build plans and rebuilds, with a fake builder."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from mlesam_ros.engine.engine_cache import (
    BuildOptions,
    BuildPlan,
    EngineError,
    EngineTarget,
    engine_cache_dir,
    ensure_engine,
    fp16_graph_path,
    plan_build,
    read_sidecar,
    sidecar_path,
)
from mlesam_ros.engine.spec import ModelSpec

H100_TRT10 = EngineTarget("10.3.0", (9, 0), "NVIDIA H100")
H100_TRT11 = EngineTarget("11.4.0", (9, 0), "NVIDIA H100")
SPEC = ModelSpec(modalities=("rgb", "depth"), input_size=(8, 12), class_names=("a", "b", "c"))


class FakeBuilder:
    """Stands in for TensorRT: engines are bytes tagged with the target; counts builds."""

    def __init__(self, target: EngineTarget = H100_TRT10) -> None:
        self.current = target
        self.builds = 0
        self.reject = False
        self.plans: list[tuple[Path, BuildPlan]] = []

    def target(self) -> EngineTarget:
        return self.current

    def build(self, onnx_path: Path, plan: BuildPlan, options: BuildOptions) -> bytes:
        self.builds += 1
        self.plans.append((onnx_path, plan))
        size = len(onnx_path.read_bytes())
        return f"engine:{self.current.sm}:{options.precision}:{size}".encode()

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


def test_engines_live_in_the_per_user_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLESAM_ENGINE_CACHE", raising=False)
    monkeypatch.delenv("ROS_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert engine_cache_dir() == tmp_path / "xdg" / "mlesam_ros" / "engines"
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros"))
    assert engine_cache_dir() == tmp_path / "ros" / "mlesam_ros" / "engines"
    monkeypatch.setenv("MLESAM_ENGINE_CACHE", str(tmp_path / "mine"))
    assert engine_cache_dir() == tmp_path / "mine"

    models = tmp_path / "share"
    models.mkdir()
    onnx_path = _write_onnx(models / "m.onnx")
    loaded = ensure_engine(FakeBuilder(), onnx_path)
    assert loaded.path.parent == tmp_path / "mine"
    assert loaded.path.name.startswith("m.sm90.trt10.3.0.fp16.")
    assert loaded.path.suffix == ".engine"
    assert sorted(p.name for p in models.iterdir()) == ["m.onnx"]  # nothing beside the model


def test_build_writes_engine_and_sidecar_then_reuses_it(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    builder = FakeBuilder()
    first = ensure_engine(builder, onnx_path, options=BuildOptions("fp16"), cache_dir=tmp_path)
    assert first.rebuilt and builder.builds == 1
    assert "does not exist" in first.reasons[0]
    record = read_sidecar(first.path)
    assert record["key"] == {
        "tensorrt_version": "10.3.0", "gpu_name": "NVIDIA H100", "compute_capability": [9, 0],
        "precision": "fp16", "typing": "weak", "workspace_mb": 4096,
        "onnx_sha256": record["key"]["onnx_sha256"]}  # fmt: skip
    assert len(record["key"]["onnx_sha256"]) == 64
    assert record["plan"] == {"graph_precision": "fp32", "strongly_typed": False,
                              "fp16_flag": True, "tf32": True}  # fmt: skip
    assert ModelSpec.from_dict(record["model"]) == SPEC
    assert first.spec == SPEC

    second = ensure_engine(builder, onnx_path, options=BuildOptions("fp16"), cache_dir=tmp_path)
    assert not second.rebuilt and builder.builds == 1
    assert second.engine == first.engine and second.path == first.path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("tensorrt", "built with TensorRT 10.3.0, this machine has 10.8.0"),
        ("capability", "built for compute capability 9.0, this GPU is 8.7"),
        ("gpu", "built for GPU 'NVIDIA H100', this GPU is 'NVIDIA H20'"),
        ("onnx", "changed since the engine was built"),
        ("precision", "built as fp16, fp32 requested"),
        ("typing", "built weakly typed, strongly typed requested"),
        ("workspace", "built with a 4096 MB workspace, 1024 MB requested"),
        ("sidecar", "missing, unreadable or of an older format"),
    ],
)
def test_every_key_field_makes_an_explicit_engine_stale(
    tmp_path: Path, change: str, expected: str
) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "m.engine"
    builder = FakeBuilder()
    ensure_engine(builder, onnx_path, engine_path, BuildOptions("fp16"))
    options = BuildOptions("fp16")
    if change == "tensorrt":
        builder.current = EngineTarget("10.8.0", (9, 0), "NVIDIA H100")
    elif change == "capability":
        builder.current = EngineTarget("10.3.0", (8, 7), "NVIDIA H100")
    elif change == "gpu":
        builder.current = EngineTarget("10.3.0", (9, 0), "NVIDIA H20")
    elif change == "onnx":
        _write_onnx(onnx_path, doc="v2")
    elif change == "precision":
        options = BuildOptions("fp32")
    elif change == "typing":
        options = BuildOptions("fp16", typing="strong")
    elif change == "workspace":
        options = BuildOptions("fp16", workspace_mb=1024)
    else:
        sidecar_path(engine_path).unlink()
    loaded = ensure_engine(builder, onnx_path, engine_path, options)
    assert loaded.rebuilt and builder.builds == 2
    assert len(loaded.reasons) == 1 and expected in loaded.reasons[0], loaded.reasons
    again = ensure_engine(builder, onnx_path, engine_path, options)
    assert not again.rebuilt and builder.builds == 2


def test_cache_names_differ_for_every_key_so_nothing_is_overwritten(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    builder = FakeBuilder()
    paths = {ensure_engine(builder, onnx_path, options=options, cache_dir=tmp_path).path
             for options in (BuildOptions("fp16"), BuildOptions("fp32"),
                             BuildOptions("fp16", typing="strong"),
                             BuildOptions("fp16", workspace_mb=512))}  # fmt: skip
    assert len(paths) == 4 and builder.builds == 4


def test_deserialization_failure_triggers_rebuild(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "m.engine"
    builder = FakeBuilder()
    ensure_engine(builder, onnx_path, engine_path)
    engine_path.write_bytes(b"garbage from a different TensorRT")  # sidecar still says fresh
    loaded = ensure_engine(builder, onnx_path, engine_path)
    assert loaded.rebuilt and "deserialization failed" in loaded.reasons[0]
    assert loaded.engine.startswith("engine:sm90")
    builder.reject = True  # even the fresh build cannot be loaded: one clear error
    engine_path.write_bytes(b"garbage again")
    with pytest.raises(EngineError, match="cannot load the engine it just built"):
        ensure_engine(builder, onnx_path, engine_path)


def test_engine_alone_uses_onnx_and_options_recorded_in_sidecar(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "m.engine"
    builder = FakeBuilder()
    ensure_engine(builder, onnx_path, engine_path, BuildOptions("fp32", workspace_mb=512))
    assert not ensure_engine(builder, engine_path=engine_path).rebuilt  # default fp16 ignored
    builder.current = EngineTarget("10.8.0", (9, 0), "NVIDIA H100")
    loaded = ensure_engine(builder, engine_path=engine_path)
    assert loaded.rebuilt and builder.builds == 2
    assert read_sidecar(engine_path)["key"]["precision"] == "fp32"  # rebuilt as it was
    assert read_sidecar(engine_path)["key"]["workspace_mb"] == 512

    onnx_path.unlink()
    builder.current = EngineTarget("10.9.0", (9, 0), "NVIDIA H100")
    with pytest.raises(FileNotFoundError, match="mlesam build-engine --onnx"):
        ensure_engine(builder, engine_path=engine_path)


def test_rebuild_disabled_reports_the_command(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    builder = FakeBuilder()
    with pytest.raises(EngineError, match=r"mlesam build-engine --onnx .*m\.onnx"):
        ensure_engine(builder, onnx_path, rebuild=False, cache_dir=tmp_path)
    assert builder.builds == 0


def test_missing_onnx_names_export_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mlesam export --out"):
        ensure_engine(FakeBuilder(), tmp_path / "absent.onnx")


def test_bad_build_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="precision: 'int8' is not a TensorRT engine precision"):
        BuildOptions("int8")
    with pytest.raises(ValueError, match="workspace_mb"):
        BuildOptions("fp16", workspace_mb=0)
    with pytest.raises(ValueError, match="typing: 'loose' is not one of auto, strong, weak"):
        BuildOptions("fp16", typing="loose")


@pytest.mark.parametrize(
    ("version", "options", "graph", "plan"),
    [
        ("10.3.0", BuildOptions("fp16"), "fp32", BuildPlan("fp32", False, True, True)),
        ("10.16.1", BuildOptions("fp16", typing="strong"), "fp32",
         BuildPlan("fp16", True, False, True)),
        ("10.16.1", BuildOptions("fp32"), "fp32", BuildPlan("fp32", False, False, False)),
        ("11.4.0", BuildOptions("fp16"), "fp32", BuildPlan("fp16", True, False, True)),
        ("11.4.0", BuildOptions("fp16"), "fp16", BuildPlan("fp16", True, False, True)),
        ("11.4.0", BuildOptions("fp32"), "fp32", BuildPlan("fp32", True, False, False)),
        ("10.16.1", BuildOptions("fp16"), "fp16", BuildPlan("fp16", False, True, True)),
    ],
)  # fmt: skip
def test_build_plan_per_tensorrt_release(version, options, graph, plan) -> None:
    assert plan_build(EngineTarget(version, (8, 7), "Orin"), options, graph) == plan


def test_build_plan_refusals_name_the_fix() -> None:
    with pytest.raises(EngineError, match=r"strongly typed networks only.*typing strong or auto"):
        plan_build(H100_TRT11, BuildOptions("fp16", typing="weak"), "fp32")
    with pytest.raises(EngineError, match=r"fp16 graph.*export without --precision fp16"):
        plan_build(H100_TRT10, BuildOptions("fp32"), "fp16")
    for version in ("8.6.1", "10.2.0", "12.0.0"):
        with pytest.raises(EngineError, match=r"not supported \(supported: >=10\.3,<12\)"):
            plan_build(EngineTarget(version, (9, 0)), BuildOptions(), "fp32")


def test_strongly_typed_fp16_builds_from_a_cached_fp16_graph(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    builder = FakeBuilder(H100_TRT11)
    loaded = ensure_engine(builder, onnx_path, cache_dir=tmp_path / "cache")
    (parsed, plan), = builder.plans
    assert plan == BuildPlan("fp16", True, False, True)
    assert parsed == fp16_graph_path(onnx_path, read_sidecar(loaded.path)["key"]["onnx_sha256"],
                                     tmp_path / "cache")  # fmt: skip
    graph = onnx.load(str(parsed))
    assert graph.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # I/O unchanged
    props = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(props["mlesam.precision"]) == "fp16"
    assert loaded.spec.precision == "fp32"  # the engine's spec is the source model's


def test_unwritable_cache_is_one_clear_error(tmp_path: Path) -> None:
    onnx_path = _write_onnx(tmp_path / "m.onnx")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(EngineError, match=r"cannot write .*set MLESAM_ENGINE_CACHE"):
        ensure_engine(FakeBuilder(), onnx_path, cache_dir=blocker / "engines")
