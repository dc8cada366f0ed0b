"""One Segmenter over ONNX Runtime and PyTorch: same labels, validated inputs, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_onnx

from mlesam_ros import cli
from mlesam_ros.bench.latency import measure_latency
from mlesam_ros.engine.backends.base import LogitsToLabels
from mlesam_ros.engine.onnx_export import export_onnx
from mlesam_ros.engine.segmenter import Segmenter, resolve_backend
from mlesam_ros.engine.torch_model import build_untrained, spec_for_model
from mlesam_ros.model import save_checkpoint

MODALITIES = ("rgb", "thermal")
SIZE = (32, 32)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("segmenter")
    model = build_untrained("tiny", MODALITIES, SIZE, num_classes=19, seed=1)
    names = [f"c{i}" for i in range(19)]
    checkpoint = save_checkpoint(folder / "tiny.pt", model, class_names=names)
    spec = spec_for_model(model, {"class_names": names}, output="labels")
    onnx_path = export_onnx(model, spec, folder / "tiny.onnx", verify=False).path
    return checkpoint, onnx_path


def _frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(1, 2, 3, *SIZE), dtype=np.uint8)


def test_onnxruntime_and_torch_backends_agree(artefacts) -> None:
    checkpoint, onnx_path = artefacts
    ort_seg, torch_seg = Segmenter(onnx_path, "onnxruntime"), Segmenter(checkpoint, "torch")
    with ort_seg, torch_seg:
        for seg in (ort_seg, torch_seg):
            assert seg.modalities == MODALITIES
            assert seg.input_size == SIZE
            assert seg.num_classes == 19 and seg.class_names[3] == "c3"
            assert seg.device == "cpu"
        assert (ort_seg.backend, torch_seg.backend) == ("onnxruntime", "torch")
        for seed, present in enumerate([[True, True], [True, False], [False, True]]):
            images = _frame(seed)
            mask = np.array([present])
            a = ort_seg.segment(images, mask)
            b = torch_seg.segment(images, mask)
            assert a.labels.shape == b.labels.shape == SIZE
            assert (a.labels == b.labels).mean() >= 0.999
            assert np.abs(a.confidence - b.confidence).max() < 1e-4
            assert a.confidence.min() > 0.0 and a.confidence.max() <= 1.0


def test_uint8_and_float_inputs_give_identical_results(artefacts) -> None:
    _, onnx_path = artefacts
    with Segmenter(onnx_path, "onnxruntime") as seg:
        images = _frame(5)
        present = np.array([[True, False]])
        from_uint8 = seg.segment(images, present)
        from_float = seg.segment(images.astype(np.float32), present)
        np.testing.assert_array_equal(from_uint8.labels, from_float.labels)
        np.testing.assert_array_equal(from_uint8.confidence, from_float.confidence)
        # copy=False returns the backend's buffers: the next frame overwrites them in place.
        view = seg.segment(images, present, copy=False)
        other = seg.segment(_frame(6), np.array([[True, True]]), copy=False)
        assert view.labels is other.labels


def test_bad_inputs_are_rejected_with_the_expected_shape(artefacts) -> None:
    _, onnx_path = artefacts
    seg = Segmenter(onnx_path, "onnxruntime")
    good = _frame(0)
    with pytest.raises(ValueError, match=r"images: expected shape \(1, 2, 3, 32, 32\)"):
        seg.segment(good[:, :1], np.array([[True]]))
    with pytest.raises(ValueError, match="present: expected bool"):
        seg.segment(good, np.array([[1, 0]]))
    with pytest.raises(ValueError, match="at least one modality"):
        seg.segment(good, np.array([[False, False]]))
    with pytest.raises(ValueError, match="dtype"):
        seg.segment(good.astype(np.float64), np.array([[True, True]]))
    seg.close()
    with pytest.raises(ValueError, match="closed"):
        seg.segment(good, np.array([[True, True]]))


def test_missing_artefacts_name_the_command_to_create_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"mlesam export --out .*model\.onnx"):
        Segmenter(tmp_path / "model.onnx")
    with pytest.raises(FileNotFoundError, match="mlesam build-engine --onnx"):
        Segmenter(tmp_path / "model.engine")
    with pytest.raises(ValueError, match="cannot tell"):
        Segmenter(tmp_path / "model.bin")


def test_backend_resolution(artefacts) -> None:
    _checkpoint, onnx_path = artefacts
    expect_cuda = torch.cuda.is_available()
    if not expect_cuda:
        assert resolve_backend("onnx", "auto") == ("onnxruntime", "cpu")
        assert resolve_backend("checkpoint", "auto") == ("torch", "cpu")
    with pytest.raises(ValueError, match="torch cannot run a onnx file"):
        resolve_backend("onnx", "torch")
    with pytest.raises(ValueError, match="a checkpoint runs with torch"):
        resolve_backend("checkpoint", "onnxruntime")
    with pytest.raises(ValueError, match="backend: 'trt'"):
        Segmenter(onnx_path, "trt")


def test_logits_postprocess_matches_softmax() -> None:
    from mlesam_ros.engine.spec import ModelSpec

    spec = ModelSpec(("rgb",), (4, 5), tuple("abc"))
    logits = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32) * 4
    labels = np.zeros((4, 5), np.int32)
    confidence = np.zeros((4, 5), np.float32)
    LogitsToLabels(spec)(logits, labels, confidence)
    probabilities = torch.from_numpy(logits[0]).softmax(0).numpy()
    np.testing.assert_array_equal(labels, probabilities.argmax(0))
    np.testing.assert_allclose(confidence, probabilities.max(0), rtol=1e-5)


def test_measure_latency_counts_and_orders_percentiles() -> None:
    calls = []
    stats = measure_latency("model", lambda: calls.append(1), warmup=3, iterations=20)
    assert len(calls) == 23
    assert stats.iterations == 20
    assert 0 <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms
    assert stats.fps > 0


def test_bench_command_prints_table_and_json(artefacts, tmp_path: Path, capsys) -> None:
    _, onnx_path = artefacts
    out = tmp_path / "bench.json"
    code = cli.main(["bench", "--model", str(onnx_path), "--backend", "onnxruntime",
                     "--warmup", "1", "--iters", "3", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "p50 ms" in printed and "cpu:" in printed
    report = json.loads(out.read_text())
    assert report["setup"]["backend"] == "onnxruntime"
    assert report["setup"]["modalities"] == "rgb,thermal"
    assert report["results"][0]["name"] == "model" and report["results"][0]["iterations"] == 3
    assert report["machine"]["cpu"]


def test_model_graph_is_checked_against_its_metadata_at_load(tmp_path) -> None:

    """refused at load, not on every frame."""
    from mlesam_ros.engine.onnx_export import read_spec

    assert read_spec(tiny_onnx(tmp_path / "good.onnx")).modalities == (
        "rgb", "depth", "thermal", "lidar")
    with pytest.raises(ValueError, match=r"input 'images' has shape \[1, 2, 3, 48, 64\].*"
                                         r"needs \[1, 4, 3, 48, 64\]"):
        read_spec(tiny_onnx(tmp_path / "two.onnx", modalities_in_graph=2))
    with pytest.raises(ValueError, match=r"graph inputs \['image', 'mask'\].*\['images', "):
        read_spec(tiny_onnx(tmp_path / "names.onnx", input_names=("image", "mask")))


def _with_metadata(source: Path, target: Path, **changes: object) -> Path:
    """A copy of the ONNX file ``source`` with some ``mlesam.*`` metadata values replaced."""
    import onnx

    proto = onnx.load(str(source))
    for prop in proto.metadata_props:
        key = prop.key.removeprefix("mlesam.")
        if key in changes:
            prop.value = json.dumps(changes[key])
    onnx.save(proto, str(target))
    return target


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"class_names": [f"c{i}" for i in range(10)]},
         "lists 10 class names but declares num_classes 19"),
        ({"class_names": [f"c{i}" for i in range(10)], "num_classes": 10},
         "computes 19 classes but its metadata names 10"),
        ({"class_names": [f"c{i}" for i in range(25)], "num_classes": 25},
         "computes 19 classes but its metadata names 25"),
        ({"class_names": ["road"] * 19}, "repeated: 'road'"),
        ({"class_names": ["road", "", *[f"c{i}" for i in range(17)]]}, r"ids \[1\] have none"),
    ],
)
def test_class_metadata_that_disagrees_with_the_model_is_one_error_at_load(
    artefacts, tmp_path, changes, error
) -> None:
    """Class names that do not match the classes the graph computes never load."""
    edited = _with_metadata(artefacts[1], tmp_path / "edited.onnx", **changes)
    with pytest.raises(ValueError, match=error):
        Segmenter(edited, "onnxruntime")
    code = cli.main(["replay", "--bag", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--model", str(edited)])
    assert code == 2 and not (tmp_path / "out").exists()
