"""Batched inference: several frames per call on every backend give each frame's own result."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODALITIES, MODEL_SIZE

from mlesam_ros.engine.spec import ModelSpec

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exports(model_path, tmp_path_factory):
    """The tiny model as ONNX with a static batch of 2 and with a dynamic batch."""
    from mlesam_ros.engine.onnx_export import export_onnx
    from mlesam_ros.engine.torch_model import load_model

    folder = tmp_path_factory.mktemp("batch")
    paths = {}
    for batch in (2, 0):
        model, spec = load_model(model_path, batch=batch)
        report = export_onnx(model, spec, folder / f"tiny_b{batch}.onnx")
        assert all(result.ok for result in report.parity)
        paths[batch] = report.path
    return paths


def frames(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, len(MODALITIES), 3, *MODEL_SIZE), dtype=np.uint8)
    present = np.ones((count, len(MODALITIES)), bool)
    present[1::2, 2] = False  # odd frames without thermal: each row keeps its own presence
    return images, present


def one_by_one(segmenter, images, present):
    return [segmenter.segment(images[i : i + 1], present[i : i + 1]) for i in range(len(images))]


def assert_same(batched, reference, atol=1e-5) -> None:
    assert len(batched) == len(reference)
    for got, want in zip(batched, reference, strict=True):
        assert np.mean(got.labels == want.labels) > 0.999
        np.testing.assert_allclose(got.confidence, want.confidence, atol=atol)
        np.testing.assert_allclose(got.routing_weights, want.routing_weights, atol=atol)


def test_export_writes_the_batch_into_graph_and_metadata(exports) -> None:
    from mlesam_ros.engine.onnx_export import read_spec

    assert read_spec(exports[2]).batch == 2
    dynamic = read_spec(exports[0])
    assert dynamic.batch == 0 and dynamic.dynamic_batch
    assert ModelSpec(MODALITIES, MODEL_SIZE, ("a",), batch=3).images_shape[0] == 3
    with pytest.raises(ValueError, match="batch"):
        ModelSpec(MODALITIES, MODEL_SIZE, ("a",), batch=-1)


def reference(exports, images, present):
    """Each frame alone (batch 1) through ONNX Runtime."""
    from mlesam_ros.engine.segmenter import Segmenter

    with Segmenter(exports[0], "onnxruntime", threads=1, max_batch=1) as single:
        return one_by_one(single, images, present)


@pytest.mark.parametrize(("batch", "max_batch", "calls"), [(0, 1, 5), (2, 1, 3), (0, 2, 3),
                                                            (0, 8, 1)])  # fmt: skip
def test_onnxruntime_batches_equal_single_frames(exports, batch, max_batch, calls) -> None:
    from mlesam_ros.engine.segmenter import Segmenter

    images, present = frames(5)
    expected = reference(exports, images, present)
    with Segmenter(exports[batch], "onnxruntime", threads=1, max_batch=max_batch) as segmenter:
        assert segmenter.max_batch == (batch or max_batch)
        runs = []
        original = segmenter._backend.run
        segmenter._backend.run = lambda rows=1: (runs.append(rows), original(rows))
        assert_same(segmenter.segment_batch(images, present), expected)
        # Five frames in calls of max_batch (a static batch pads its last call).
        assert len(runs) == calls
        assert_same([segmenter.segment(images[:1], present[:1])], expected[:1])


def test_torch_runs_a_batch_in_one_forward(model_path) -> None:
    from mlesam_ros.engine.segmenter import Segmenter

    images, present = frames(3, seed=1)
    with Segmenter(model_path, "torch", max_batch=3) as segmenter:
        reference = one_by_one(segmenter, images, present)
        assert segmenter.spec.dynamic_batch and segmenter.max_batch == 3
        assert_same(segmenter.segment_batch(images, present), reference, atol=1e-4)


def test_a_batch_with_a_frame_without_any_modality_is_refused(exports) -> None:
    from mlesam_ros.engine.segmenter import Segmenter

    images, present = frames(2)
    present[1] = False
    with Segmenter(exports[2], "onnxruntime", threads=1) as segmenter:
        with pytest.raises(ValueError, match="every frame"):
            segmenter.segment_batch(images, present)
        with pytest.raises(ValueError, match=r"images: expected shape \(1, 4"):
            segmenter.segment(images, present)


@pytest.mark.parametrize("batch", [2, 0], ids=["static", "profile"])
def test_tensorrt_static_batch_and_optimisation_profile(exports, batch, monkeypatch,
                                                        tmp_path) -> None:  # fmt: skip
    """On TensorRT 11's stand-in (no GPU): a batch-2 engine, and a profile of 1..3 frames."""
    import sys

    from tensorrt_standins import make_cudart, make_tensorrt

    from mlesam_ros.engine import cuda_runtime
    from mlesam_ros.engine.segmenter import Segmenter

    modules = ("mlesam_ros.engine.tensorrt_build", "mlesam_ros.engine.backends.tensorrt_backend")
    cudart = make_cudart()
    trt = make_tensorrt("11.1.0", cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for name in modules:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(cuda_runtime, "cudart", lambda: cudart)
    images, present = frames(5)
    expected = reference(exports, images, present)
    with Segmenter(exports[batch], "tensorrt", precision="fp32", max_batch=3,
                   engine_cache=tmp_path) as segmenter:  # fmt: skip
        assert segmenter.max_batch == (batch or 3)
        assert_same(segmenter.segment_batch(images, present), expected, atol=1e-4)
        assert_same(segmenter.segment_batch(images[:1], present[:1]), expected[:1], atol=1e-4)
    built = [line for line in trt.log if line.startswith("built ")]
    assert ("profiles" in built[-1]) == (batch == 0)
    for name in modules:
        sys.modules.pop(name, None)
