"""The live frame path feeds the model what training feeds it; the core's worker semantics."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FakeSegmenter

from mlesam_ros.bench.frame import MemoryTransport, synthetic_job
from mlesam_ros.data.synthetic_dataset import frame_to_images
from mlesam_ros.data.transforms import resize
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.core import SegmentationCore
from mlesam_ros.pipeline.frame import FramePath

MODALITIES = ("rgb", "depth", "thermal", "lidar")


@pytest.fixture(scope="module")
def job_and_tf():
    return synthetic_job((60, 80), seed=4)


def test_prepared_images_match_the_training_encoding(job_and_tf) -> None:
    from mlesam_ros.data.synth import SyntheticDrive, default_rig

    job, tf = job_and_tf
    path = FramePath(FakeSegmenter(num_classes=300), NodeConfig.from_parameters())
    prepared = path.prepare(job, tf.lookup)
    assert prepared.issues == []
    assert prepared.size == (60, 80)
    frame = SyntheticDrive(seed=4, rig=default_rig(width=80, height=60)).frame(0)
    expected, present = frame_to_images(frame, MODALITIES)
    assert present.all()
    # The 60x80 camera is 2x the model input, so the node encodes on the camera's own grid
    # and shrinks exactly as training does: dense modalities by area, LiDAR by nearest valid
    # return, depth by the mean of its valid pixels (one resampler, data.transforms).
    shrunk = resize({"images": expected}, (30, 40), MODALITIES)["images"]
    for slot, modality in enumerate(MODALITIES):
        got = prepared.images[modality]
        assert got.shape == (30, 40, 3) and got.dtype == np.uint8
        if modality == "thermal":
            # Same warp and contrast; float rounding of the warp may move a count by one step.
            assert np.abs(got.astype(int) - shrunk[slot].astype(int)).max() <= 1
        else:
            np.testing.assert_array_equal(got, shrunk[slot], err_msg=modality)
    images, present = path.model_input(prepared)
    assert images.shape == (1, 4, 3, 30, 40) and images.dtype == np.uint8
    assert present.tolist() == [[True] * 4]


def test_labels_upsample_by_nearest_neighbour_and_mono16_beyond_255_classes(job_and_tf) -> None:
    job, tf = job_and_tf
    segmenter = FakeSegmenter(num_classes=300)
    path = FramePath(segmenter, NodeConfig.from_parameters({"model.modalities": "rgb,lidar"}))
    assert path.label_encoding == "mono16" and path.used == ("rgb", "lidar")
    prepared = path.prepare(job, tf.lookup)
    assert set(prepared.images) == {"rgb", "lidar"}
    images, present = path.model_input(prepared)
    assert present.tolist() == [[True, False, False, True]]
    assert not images[0, 1:3].any()  # absent modalities are zero
    result = segmenter.segment(images, present)
    out = path.postprocess(prepared, result.labels, result.confidence, present,
                           want_confidence=True, want_overlay=True, want_points=True)
    assert out.labels.dtype == np.uint16 and out.labels.shape == (60, 80)
    # 40 model columns -> 80 camera columns: each id is repeated twice, never blended.
    np.testing.assert_array_equal(out.labels[0, ::2], result.labels[0])
    np.testing.assert_array_equal(out.labels[0, 1::2], result.labels[0])
    assert out.confidence.shape == (60, 80) and np.allclose(out.confidence, 0.5)
    rgb = prepared.rgb.astype(float)
    colours = out.palette[out.labels].astype(float)
    np.testing.assert_allclose(out.overlay, np.rint(0.5 * colours + 0.5 * rgb), atol=1)
    assert out.points is not None and out.points["label"].max() < 300


def test_threaded_worker_drops_old_frames_instead_of_queueing(job_and_tf) -> None:
    job, tf = job_and_tf
    transport = MemoryTransport({"output.labeled_points": False}, now_ns=job.stamp_ns)
    transport.tf = tf
    published = []
    segmenter = FakeSegmenter(num_classes=300, delay_s=0.2)
    core = SegmentationCore(transport, threaded=True, segmenter=segmenter)
    core.configure()
    done = threading.Event()

    def listener(result, record):
        published.append(record.stamp_ns)
        if record.stamp_ns == job.stamp_ns + 5:
            done.set()

    core.listeners.append(listener)
    try:
        for offset in range(6):  # six frames while the first one is still being inferred
            frame = SimpleNamespace(stamp_ns=job.stamp_ns + offset, messages=job.messages)
            core._submit([frame], job.stamp_ns)
            time.sleep(0.01)
        assert done.wait(5.0)
    finally:
        core.cleanup()
    assert published[0] == job.stamp_ns and published[-1] == job.stamp_ns + 5
    assert len(published) < 6 and core._slot.dropped == 6 - len(published)
    diagnostics = {s.name: {kv.key: kv.value for kv in s.values}
                   for s in core.diagnostics().status}
    assert int(diagnostics["/mlesam: pipeline"]["dropped_by_worker"]) == 6 - len(published)


def test_callback_errors_never_escape(job_and_tf) -> None:
    job, _ = job_and_tf
    transport = MemoryTransport(now_ns=job.stamp_ns)
    core = SegmentationCore(transport, threaded=False, segmenter=FakeSegmenter(num_classes=300))
    core.configure()
    guarded = core._guard(core.on_sensor, "rgb")
    guarded(object())  # no header at all
    guarded(SimpleNamespace(header=SimpleNamespace(stamp=None)))
    assert core.stats.issues["rgb"] + core.stats.callback_errors == 2
