"""The TensorRT builder and backend against stand-ins of TensorRT 10.3, 10.16 and 11's Python API.

No GPU and no TensorRT here: ``tensorrt_standins`` exposes each release's names (present and
absent) and return values, and runs engines with ONNX Runtime, so these tests pin the calls
the builder and backend make, the precision path each release takes, the engine cache's
decisions and the buffer/stream plumbing. The real TensorRT run is ``mlesam gpu-check``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from tensorrt_standins import VERSIONS, make_cudart, make_tensorrt

from mlesam_ros import cli
from mlesam_ros.engine import resolve_default_checkpoint
from mlesam_ros.engine.engine_cache import EngineError, read_sidecar
from mlesam_ros.engine.segmenter import Segmenter

SHIPPED_ONNX = resolve_default_checkpoint().with_suffix(".onnx")
_TENSORRT_MODULES = ("mlesam_ros.engine.tensorrt_build",
                     "mlesam_ros.engine.backends.tensorrt_backend")  # fmt: skip


def _install(monkeypatch, version: str, **gpu) -> tuple[object, object]:
    from mlesam_ros.engine import cuda_runtime

    cudart = make_cudart(**gpu)
    trt = make_tensorrt(version, cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for name in _TENSORRT_MODULES:  # re-import them against this stand-in
        sys.modules.pop(name, None)
    monkeypatch.setattr(cuda_runtime, "cudart", lambda: cudart)
    return trt, cudart


@pytest.fixture(params=VERSIONS)
def standin(request, monkeypatch, tmp_path):
    """(tensorrt, cudart) stand-ins of one release; engines cached under tmp_path."""
    monkeypatch.setenv("MLESAM_ENGINE_CACHE", str(tmp_path / "cache"))
    yield _install(monkeypatch, request.param)
    for name in _TENSORRT_MODULES:
        sys.modules.pop(name, None)


def _built(trt) -> list[dict]:
    return [json.loads(line[len("built "):]) for line in trt.log if line.startswith("built ")]


def _frame(segmenter: Segmenter, seed: int = 0, present=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (1, len(segmenter.modalities), 3, *segmenter.input_size),
                          dtype=np.uint8)  # fmt: skip
    mask = np.array([present or [True] * len(segmenter.modalities)])
    return images, mask


def test_default_fp16_engine_takes_each_releases_precision_path(standin) -> None:
    trt, _ = standin
    with Segmenter(SHIPPED_ONNX, "tensorrt") as engine, \
            Segmenter(SHIPPED_ONNX, "onnxruntime", device="cpu") as reference:  # fmt: skip
        assert engine.backend == "tensorrt" and engine.device == "cuda"
        for present in ([True] * 4, [True, False, False, False]):
            images, mask = _frame(engine, present=present)
            got, want = engine.segment(images, mask), reference.segment(images, mask)
            assert (got.labels == want.labels).mean() >= 0.99
            assert np.abs(got.confidence - want.confidence).max() < 2e-2
    (header,) = _built(trt)
    if trt.__version__.startswith("11."):  # strongly typed only: built from an fp16 graph
        assert header["strongly_typed"] and header["fp16_graph"] and not header["fp16_flag"]
    else:  # TensorRT 10 default: the fp16 builder flag on the fp32 graph
        assert header["fp16_flag"] and not header["strongly_typed"] and not header["fp16_graph"]


def test_strong_typing_on_tensorrt_10_and_weak_refused_on_11(standin) -> None:
    trt, _ = standin
    if trt.__version__.startswith("11."):
        with pytest.raises(EngineError, match="builds strongly typed networks only"):
            Segmenter(SHIPPED_ONNX, "tensorrt", typing="weak")
        return
    with Segmenter(SHIPPED_ONNX, "tensorrt", typing="strong") as engine:
        engine.segment(*_frame(engine))
    (header,) = _built(trt)
    assert header["strongly_typed"] and header["fp16_graph"] and not header["fp16_flag"]


def test_fp32_engine_turns_tf32_off_and_matches_onnxruntime(standin) -> None:
    trt, _ = standin
    with Segmenter(SHIPPED_ONNX, "tensorrt", precision="fp32") as engine, \
            Segmenter(SHIPPED_ONNX, "onnxruntime", device="cpu") as reference:  # fmt: skip
        images, mask = _frame(engine, 3)
        got, want = engine.segment(images, mask), reference.segment(images, mask)
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-6)
    (header,) = _built(trt)
    assert not header["tf32"] and not header["fp16_flag"] and not header["fp16_graph"]
    with pytest.raises(ValueError, match="precision: 'bf16' is not a TensorRT engine precision"):
        Segmenter(SHIPPED_ONNX, "tensorrt", precision="bf16")


def test_engine_is_reloaded_from_the_cache_and_rebuilt_when_corrupted(standin, tmp_path) -> None:
    trt, _ = standin
    with Segmenter(SHIPPED_ONNX, "tensorrt") as first:
        path = first._backend.engine_path
        assert first._backend.rebuilt
    assert path.parent == tmp_path / "cache" and path.suffix == ".engine"
    assert not (SHIPPED_ONNX.parent / path.name).exists()  # never beside the model
    record = read_sidecar(path)["key"]
    assert record["gpu_name"] == "NVIDIA H200" and record["tensorrt_version"] == trt.__version__
    with Segmenter(SHIPPED_ONNX, "tensorrt") as second:
        assert not second._backend.rebuilt and second._backend.engine_path == path
    path.write_bytes(b"half-written engine")
    with Segmenter(SHIPPED_ONNX, "tensorrt") as third:
        assert third._backend.rebuilt
        assert "deserialization failed" in third._backend.rebuild_reasons[0]
        third.segment(*_frame(third))
    assert len(_built(trt)) == 2


def test_another_gpu_model_gets_its_own_engine(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("MLESAM_ENGINE_CACHE", str(tmp_path))
    _install(monkeypatch, "10.16.1", gpu_name="NVIDIA L4", capability=(8, 9))
    with Segmenter(SHIPPED_ONNX, "tensorrt") as l4:
        l4_engine = l4._backend.engine_path
    # Same compute capability and TensorRT, another GPU model: not the same engine.
    _install(monkeypatch, "10.16.1", gpu_name="NVIDIA RTX 4090", capability=(8, 9))
    with Segmenter(SHIPPED_ONNX, "tensorrt") as rtx:
        assert rtx._backend.engine_path != l4_engine and rtx._backend.rebuilt
    # An engine named explicitly is checked against this GPU too, and rebuilt for it.
    code = cli.main(["build-engine", "--onnx", str(SHIPPED_ONNX), "--out", str(l4_engine)])
    assert code == 0
    assert "built for GPU 'NVIDIA L4', this GPU is 'NVIDIA RTX 4090'" in capsys.readouterr().out
    assert read_sidecar(l4_engine)["key"]["gpu_name"] == "NVIDIA RTX 4090"
    for name in _TENSORRT_MODULES:
        sys.modules.pop(name, None)


def test_foreign_timing_cache_is_replaced_not_fatal(standin, tmp_path, capsys) -> None:
    trt, _ = standin
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"STANDIN-TIMING\n" + b"9.9.9|another GPU")  # set_timing_cache -> False
    code = cli.main(["build-engine", "--onnx", str(SHIPPED_ONNX), "--timing-cache", str(cache)])
    assert code == 0, capsys.readouterr().err
    assert "rebuilt (engine" in capsys.readouterr().out
    assert cache.read_bytes().endswith(f"{trt.__version__}|NVIDIA H200".encode())


def test_build_failures_are_one_clear_error(standin, tmp_path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(SHIPPED_ONNX.read_bytes())
    with pytest.raises(EngineError, match=r"rebuild it with `mlesam build-engine"):
        Segmenter(bad, "tensorrt", rebuild_engine=False)
    unwritable = tmp_path / "not-a-folder"
    unwritable.write_text("a file where the cache folder should be")
    with pytest.raises(EngineError, match=r"cannot write .*set MLESAM_ENGINE_CACHE"):
        Segmenter(bad, "tensorrt", engine_cache=unwritable / "engines")


def test_unsupported_tensorrt_is_refused_and_skipped_by_auto(monkeypatch, tmp_path) -> None:
    from mlesam_ros.engine.segmenter import resolve_backend

    monkeypatch.setenv("MLESAM_ENGINE_CACHE", str(tmp_path))
    trt, _ = _install(monkeypatch, "10.3.0")
    monkeypatch.setattr(trt, "__version__", "9.3.0")
    with pytest.raises(EngineError, match=r"version 9\.3\.0 is not supported \(supported: "
                                          r">=10\.3,<12\)"):  # fmt: skip
        Segmenter(SHIPPED_ONNX, "tensorrt")
    assert resolve_backend("onnx", "auto")[0] != "tensorrt"
    for name in _TENSORRT_MODULES:
        sys.modules.pop(name, None)


def test_no_gpu_is_a_clear_error(monkeypatch, tmp_path) -> None:
    from mlesam_ros.engine.segmenter import resolve_backend

    monkeypatch.setenv("MLESAM_ENGINE_CACHE", str(tmp_path))
    _install(monkeypatch, "11.1.0", devices=0)
    assert resolve_backend("onnx", "auto")[0] != "tensorrt"
    with pytest.raises(ValueError, match="CUDA"):
        Segmenter(SHIPPED_ONNX, "tensorrt")
    for name in _TENSORRT_MODULES:
        sys.modules.pop(name, None)


def test_buffers_are_zeroed_and_copied_on_the_backend_stream(standin) -> None:
    _, cudart = standin
    with Segmenter(SHIPPED_ONNX, "tensorrt", precision="fp32") as engine:
        handle = engine._backend._stream.handle
        engine.segment(*_frame(engine))
    queued = cudart.queue.log
    assert queued and all(entry.endswith(f"@{handle}") for entry in queued)
    first_copy = queued.index(f"memcpy1@{handle}")
    assert set(queued[:first_copy]) == {f"memset@{handle}"}  # zeroing precedes every frame
    # Inputs in (images, present), the engine, every output back (labels, confidence, routing).
    outputs = len(onnx.load(SHIPPED_ONNX, load_external_data=False).graph.output)
    assert outputs == 3
    assert queued[first_copy:] == [f"memcpy1@{handle}"] * 2 + [f"execute@{handle}"] + \
        [f"memcpy2@{handle}"] * outputs  # fmt: skip
    assert not cudart.queue.pending  # every queued call ran before segment() returned


def test_backend_runs_without_torch(tmp_path) -> None:
    """The TensorRT path imports no torch: a robot may have TensorRT and no CUDA torch."""
    script = f"""
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
from test_engine_tensorrt_api import _install, _frame, SHIPPED_ONNX
import pytest
monkeypatch = pytest.MonkeyPatch()
_install(monkeypatch, "11.1.0")
from mlesam_ros.engine.segmenter import Segmenter
with Segmenter(SHIPPED_ONNX, "tensorrt", engine_cache={str(tmp_path)!r}) as engine:
    result = engine.segment(*_frame(engine))
print("labels", result.labels.shape, "torch" in sys.modules and sys.modules["torch"] is not None)
"""
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(root), str(root / "test"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=root, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "labels (96, 128) False" in done.stdout


def _real_tensorrt_reason() -> str | None:
    try:
        import tensorrt  # noqa: F401

        from mlesam_ros.engine import cuda_runtime
        from mlesam_ros.engine.tensorrt_build import tensorrt_available
    except ImportError as error:
        return f"TensorRT or cuda-python is not installed ({error})"
    if not tensorrt_available():
        return "no CUDA GPU visible (or an unsupported TensorRT)"
    return None if cuda_runtime.device_count() else "no CUDA GPU visible"


@pytest.mark.skipif(_real_tensorrt_reason() is not None,
                    reason=f"real TensorRT skipped: {_real_tensorrt_reason()}")  # fmt: skip
def test_real_tensorrt_fp16_and_fp32_match_the_cpu_reference(tmp_path) -> None:
    """On a GPU with TensorRT: both precisions, every presence pattern, cache reload."""
    import torch

    from mlesam_ros.engine.agreement import compare, top2_margin
    from mlesam_ros.engine.onnx_export import presence_patterns
    from mlesam_ros.engine.torch_model import load_model

    model, _ = load_model(resolve_default_checkpoint())
    for precision, confident_min, confidence_max in (("fp32", 0.999, 2e-3),
                                                     ("fp16", 0.995, 3e-2)):  # fmt: skip
        with Segmenter(SHIPPED_ONNX, "tensorrt", precision=precision,
                       engine_cache=tmp_path) as engine:  # fmt: skip
            for index, present in enumerate(presence_patterns(len(engine.modalities))):
                images, mask = _frame(engine, index, list(present))
                with torch.no_grad():
                    logits = model(torch.from_numpy(images).float(),
                                   torch.from_numpy(mask))["logits"][0]  # fmt: skip
                probabilities = logits.softmax(0)
                got = engine.segment(images, mask)
                best = probabilities.max(0)
                measured = compare(best.indices.numpy(), best.values.numpy(), got.labels,
                                   got.confidence, top2_margin(logits.numpy()))  # fmt: skip
                assert measured.confident_agreement >= confident_min, (precision, measured)
                assert measured.confidence_max_abs < confidence_max, (precision, measured)
        with Segmenter(SHIPPED_ONNX, "tensorrt", precision=precision,
                       engine_cache=tmp_path) as again:  # fmt: skip
            assert not again._backend.rebuilt
