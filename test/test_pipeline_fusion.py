"""The fused labelled cloud: which camera labels a point two cameras see, and with what label."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FakeSegmenter

from mlesam_ros.bench.frame import synthetic_job
from mlesam_ros.msgs import array_to_pointcloud2, pointcloud2_to_array
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.frame import FramePath
from mlesam_ros.pipeline.fusion import (
    CAMERA_FIELD,
    CameraPoints,
    camera_points,
    fuse_points,
    fused_cloud_dtype,
)
from mlesam_ros.pipeline.outputs import paint_points


def view(camera, index, label, confidence, centrality) -> CameraPoints:
    return CameraPoints(camera, np.asarray(index, np.int64), np.asarray(label, np.uint32),
                        np.asarray(confidence, np.float32),
                        np.asarray(centrality, np.float32))  # fmt: skip


XYZ = np.arange(18, dtype=np.float32).reshape(6, 3)


def test_the_surest_camera_labels_a_shared_point_then_the_nearest_centre_then_the_first():
    front = view(0, [0, 1, 2, 3], [10, 11, 12, 13], [0.9, 0.5, 0.7, 0.7], [0.9, 0.1, 0.5, 0.5])
    left = view(1, [1, 2, 3, 4], [21, 22, 23, 24], [0.6, 0.7, 0.7, 0.8], [0.9, 0.2, 0.5, 0.3])
    for order in ([front, left], [left, front]):  # the order views arrive in does not matter
        cloud = fuse_points(order, XYZ, np.arange(6, dtype=np.float32))
        assert cloud["x"].tolist() == XYZ[:5, 0].tolist()  # point 5: no camera sees it
        # 0: front only; 1: left surer; 2: same confidence, left nearer its centre;
        # 3: a full tie goes to the first camera of cameras.names; 4: left only.
        assert cloud["label"].tolist() == [10, 21, 22, 13, 24]
        assert cloud[CAMERA_FIELD].tolist() == [0, 1, 1, 0, 1]
        assert cloud["intensity"].tolist() == [0, 1, 2, 3, 4]


def test_fused_cloud_is_a_pointcloud2_with_the_camera_field() -> None:
    dtype = fused_cloud_dtype(with_intensity=True, with_rgb=True)
    assert dtype.itemsize % 4 == 0 and dtype.fields[CAMERA_FIELD][0] == np.uint8
    packed = np.arange(30, dtype=np.uint32) * 1000
    cloud = fuse_points([view(2, [0, 3], [7, 9], [0.5, 0.5], [0.0, 0.0])], XYZ, None, packed)
    back = pointcloud2_to_array(array_to_pointcloud2(cloud, 5, "lidar"))
    assert back[CAMERA_FIELD].tolist() == [2, 2] and back["label"].tolist() == [7, 9]
    assert back["rgb"].view(np.uint32).tolist() == [7000, 9000]
    assert "intensity" not in back.dtype.names


@pytest.mark.parametrize("model_size", [(30, 40), (60, 80)], ids=["shrunk", "same-size"])
def test_a_camera_labels_the_points_it_paints_with_the_published_labels(model_size) -> None:
    """camera_points gives each point what the one-camera cloud gives it (and its index)."""
    job, tf = synthetic_job((60, 80), points=8192)
    segmenter = FakeSegmenter()
    segmenter.input_size = model_size
    path = FramePath(segmenter, NodeConfig.from_parameters())
    prepared = path.prepare(job, tf.lookup)
    labels = (np.arange(np.prod(model_size)) % 25).reshape(model_size).astype(np.int32)
    confidence = np.linspace(0.1, 1.0, labels.size, dtype=np.float32).reshape(model_size)
    full = path.outputs.labels(labels, prepared.size, np.uint8)
    painted, pixels = paint_points(prepared.cloud, full)
    points = camera_points(prepared.cloud, labels, confidence, prepared.size, camera=3)
    assert points.camera == 3 and points.index.size == painted.size
    np.testing.assert_array_equal(points.label, painted["label"])
    sweep = np.asarray(prepared.cloud.xyz)
    np.testing.assert_array_equal(sweep[points.index], np.stack([painted[k] for k in "xyz"], 1))
    rows, cols = pixels[:, 0], pixels[:, 1]
    big_confidence = path.outputs.confidence(confidence, prepared.size)
    # Each point takes the model pixel its camera pixel repeats (not the bilinear image).
    assert np.all((points.confidence > 0.09) & (points.confidence <= 1.0))
    assert np.corrcoef(points.confidence, big_confidence[rows, cols])[0, 1] > 0.99
    centre = np.hypot((cols + 0.5) / 80 - 0.5, (rows + 0.5) / 60 - 0.5) / np.hypot(0.5, 0.5)
    np.testing.assert_allclose(points.centrality, centre, atol=1e-6)
