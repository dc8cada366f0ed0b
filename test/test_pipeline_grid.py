"""The node's model-grid frame path: same encodings as camera-grid-then-resize, calibration
caches that rebuild exactly when the calibration changes, and per-sensor isolation."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from mlesam_ros.bench.frame import frame_job
from mlesam_ros.data.resample import nearest_resize, resize_image
from mlesam_ros.data.synth import SyntheticDrive, default_rig
from mlesam_ros.data.synthetic_dataset import frame_to_images
from mlesam_ros.geometry import ParallaxMap, projection, registration_map
from mlesam_ros.geometry.lidar_dilation import dilate_nearest, dilation_targets
from mlesam_ros.msgs import array_to_pointcloud2, camera_to_camera_info, numpy_to_image
from mlesam_ros.pipeline import outputs
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.frame import FramePath
from mlesam_ros.pipeline.grid import working_size
from mlesam_ros.pipeline.outputs import paint_points

MODALITIES = ("rgb", "depth", "thermal", "lidar")


def _segmenter(input_size=(96, 128)):
    return SimpleNamespace(modalities=MODALITIES, input_size=input_size,
                           class_names=tuple(f"c{i}" for i in range(25)))  # fmt: skip


@pytest.fixture(scope="module")
def vga():
    rig = default_rig(width=640, height=480)
    frame = SyntheticDrive(seed=3, rig=rig).frame(0)
    job, tf = frame_job(frame, rig)
    return rig, frame, job, tf


def _camera_grid_reference(frame, size):
    """Yesterday's path: encode at camera resolution (training's encoders), then shrink."""
    images, present = frame_to_images(frame, MODALITIES)
    assert present.all()
    out = {}
    for slot, modality in enumerate(MODALITIES):
        out[modality] = resize_image(images[slot], size, modality)
    return out


def test_working_grid_is_the_camera_when_small_else_twice_the_model() -> None:
    assert working_size((240, 320), (96, 128)) == (240, 320)  # 2.5x: the camera itself
    assert working_size((480, 640), (96, 128)) == (192, 256)
    assert working_size((1080, 1920), (96, 128)) == (192, 256)
    assert working_size((60, 80), (96, 128)) == (60, 80)  # smaller than the model


def test_model_grid_encodings_match_camera_grid_then_resize(vga) -> None:
    """At 640x480 -> 96x128 the node encodes on a 192x256 grid instead of 480x640.

    Stated tolerance, in uint8 levels of the model input, mean |difference| over all pixels:
    RGB <= 1 (2x2 box steps vs one area resize), depth <= 1.5 (nearest depth samples vs
    averaged encodings), LiDAR <= 2 (z-buffer on the coarser grid), thermal <= 4 (the 1st
    percentile of the contrast stretch, a tail statistic, moves with the sampling density);
    the set of empty pixels differs on <= 2 % of pixels.
    """
    _, frame, job, tf = vga
    path = FramePath(_segmenter(), NodeConfig.from_parameters())
    prepared = path.prepare(job, tf.lookup)
    assert prepared.issues == [] and prepared.grid.size == (192, 256)
    reference = _camera_grid_reference(frame, (96, 128))
    limits = {"rgb": 1.0, "depth": 1.5, "thermal": 4.0, "lidar": 2.0}
    for modality, limit in limits.items():
        got, want = prepared.images[modality], reference[modality]
        assert got.shape == want.shape == (96, 128, 3) and got.dtype == np.uint8
        difference = np.abs(got.astype(int) - want.astype(int))
        assert difference.mean() <= limit, (modality, difference.mean())
        empty_mismatch = ((got.max(2) > 0) != (want.max(2) > 0)).mean()
        assert empty_mismatch <= 0.02, (modality, empty_mismatch)
        # LiDAR keeps one return per model pixel (the one nearest the cell's centre), and the
        # two grids pick different returns at depth edges: a looser correlation bound.
        correlation = 0.9 if modality == "lidar" else 0.95
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > correlation, modality


def test_small_cameras_get_exactly_the_training_encoding() -> None:
    """A camera up to 3x the model input is encoded on its own grid: training's exact images
    (then the dense ones area-shrunk like training, the sparse ones over valid pixels)."""
    rig = default_rig(width=80, height=60)
    frame = SyntheticDrive(seed=4, rig=rig).frame(0)
    job, tf = frame_job(frame, rig)
    path = FramePath(_segmenter((30, 40)), NodeConfig.from_parameters())
    prepared = path.prepare(job, tf.lookup)
    assert prepared.issues == [] and prepared.grid is prepared.camera
    reference = _camera_grid_reference(frame, (30, 40))
    for modality in MODALITIES:
        got, want = prepared.images[modality], reference[modality]
        if modality == "thermal":  # float32 vs float64 remap tables: a count may move one step
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
        else:
            np.testing.assert_array_equal(got, want, err_msg=modality)


def test_calibration_caches_reuse_and_rebuild(vga) -> None:
    rig, _, job, tf = vga
    path = FramePath(_segmenter(), NodeConfig.from_parameters())
    first = path.prepare(job, tf.lookup).images["thermal"]
    again = path.prepare(job, tf.lookup).images["thermal"]
    np.testing.assert_array_equal(first, again)
    assert path.cache.builds == {"grid": 1, "thermal_rays": 1}  # reused on frame 2
    # A new thermal CameraInfo (another focal length) gives new tables.
    thermal = rig.thermal.camera
    K = thermal.K.copy()
    K[0, 0] *= 1.1
    changed = dataclasses.replace(thermal, K=K)
    infos = dict(job.infos, thermal=camera_to_camera_info(changed, 0, rig.thermal.frame_id))
    moved = path.prepare(dataclasses.replace(job, infos=infos), tf.lookup).images["thermal"]
    assert path.cache.builds["thermal_rays"] == 2 and not np.array_equal(moved, first)
    # Back to the old calibration, then a new extrinsic: rebuilt again each time.
    path.prepare(job, tf.lookup)
    assert path.cache.builds["thermal_rays"] == 3
    T = rig.thermal.T_base_from_sensor.copy()
    T[1, 3] += 0.3
    shifted_tf = tf.__class__()
    for spec in (rig.rgb, rig.depth, rig.lidar):
        shifted_tf.add(rig.base_frame, spec.frame_id, spec.T_base_from_sensor, 0, static=True)
    shifted_tf.add(rig.base_frame, rig.thermal.frame_id, T, 0, static=True)
    path.prepare(job, shifted_tf.lookup)
    assert path.cache.builds["thermal_rays"] == 4
    # Without depth the tables are fixed per calibration, in fixed point: built once.
    no_depth = dataclasses.replace(job, messages={k: v for k, v in job.messages.items()
                                                  if k != "depth"})  # fmt: skip
    path.prepare(no_depth, tf.lookup)
    path.prepare(no_depth, tf.lookup)
    assert path.cache.builds["thermal_map"] == 1
    assert path.cache.builds["grid"] == 1  # the RGB calibration never changed


def test_parallax_map_matches_registration_map(vga) -> None:
    rig, frame, _, _ = vga
    grid = rig.rgb.camera.scaled(256, 192)
    T = np.linalg.inv(rig.rgb.T_base_from_sensor) @ rig.thermal.T_base_from_sensor
    depth = nearest_resize(np.where(frame.depth > 0, frame.depth, np.nan), (192, 256))
    fast = ParallaxMap(rig.thermal.camera, grid, T)
    for rgb_depth in (depth, None):
        for got, want in zip(fast.maps(rgb_depth), registration_map(rig.thermal.camera, grid, T,
                                                                    rgb_depth), strict=True):
            assert got.shape == (192, 256) and got.dtype == np.float32
            np.testing.assert_allclose(got, want, atol=1e-3)


def test_dense_dilation_equals_the_sparse_reference() -> None:
    rng = np.random.default_rng(1)
    height, width = 40, 50
    pixels = rng.choice(height * width, 300, replace=False)
    depth = rng.uniform(1, 50, 300).astype(np.float32)
    channels = rng.integers(1, 256, (300, 3)).astype(np.uint8)
    image = np.zeros((height * width, 3), np.uint8)
    image[pixels] = channels
    depth_image = np.zeros(height * width, np.float32)
    depth_image[pixels] = depth
    for radius in (1, 2):
        want = image.copy()
        targets, sources = dilation_targets(pixels, depth, height, width, radius)
        want[targets] = channels[sources]
        got = dilate_nearest(image.reshape(height, width, 3),
                             depth_image.reshape(height, width), radius)  # fmt: skip
        np.testing.assert_array_equal(got.reshape(-1, 3), want)


def _with_image(job, sensor, array, encoding):
    old = job.messages[sensor]
    message = numpy_to_image(array, encoding, old.header)
    return dataclasses.replace(job, messages=dict(job.messages, **{sensor: message}))


def test_a_broken_optional_sensor_only_removes_itself(vga, monkeypatch) -> None:
    _, frame, job, tf = vga
    path = FramePath(_segmenter(), NodeConfig.from_parameters())
    # Depth with no valid pixel counts as absent, named, and thermal falls back to the plane.
    blank = _with_image(job, "depth", np.full(frame.depth.shape, np.nan, np.float32), "32FC1")
    prepared = path.prepare(blank, tf.lookup)
    assert set(prepared.images) == {"rgb", "thermal", "lidar"}
    assert [issue.sensor for issue in prepared.issues] == ["depth"]
    assert "no valid depth pixel" in prepared.issues[0].text
    # A black thermal camera is absent too.
    black = _with_image(job, "thermal", np.zeros(frame.thermal.shape, np.uint16), "mono16")
    prepared = path.prepare(black, tf.lookup)
    assert set(prepared.images) == {"rgb", "depth", "lidar"}
    assert [issue.sensor for issue in prepared.issues] == ["thermal"]
    # Any exception inside one sensor's step becomes that sensor's issue; the frame goes on.
    def explode(self, rgb_depth_m):
        raise RuntimeError("table exploded")

    monkeypatch.setattr(ParallaxMap, "maps", explode)
    prepared = path.prepare(job, tf.lookup)
    assert set(prepared.images) == {"rgb", "depth", "lidar"}
    (issue,) = prepared.issues
    assert issue.sensor == "thermal" and "RuntimeError: table exploded" in issue.text
    assert "left out of this frame" in issue.text


def test_labelled_points_from_the_recorded_z_buffer_equal_the_derived_ones(vga) -> None:
    """paint_points reads each point's pixel depth from the projection's z-buffer record; a
    projection without it (built elsewhere) derives it from the depth image: same points."""

    _, _, job, tf = vga
    path = FramePath(_segmenter(), NodeConfig.from_parameters())
    prepared = path.prepare(job, tf.lookup)
    cloud = prepared.cloud
    labels = np.random.default_rng(1).integers(0, 25, prepared.size).astype(np.uint8)
    points, pixels = paint_points(cloud, labels)
    stripped = dataclasses.replace(cloud, projection=dataclasses.replace(
        cloud.projection, candidates=None, nearest=None))  # fmt: skip
    again, again_pixels = paint_points(stripped, labels)
    assert points.size > 1000
    np.testing.assert_array_equal(points, again)
    np.testing.assert_array_equal(pixels, again_pixels)
    np.testing.assert_array_equal(points["label"], labels[pixels[:, 0], pixels[:, 1]])
    # The compiled loop (when numba is installed) equals the numpy passes, with and without
    # intensity, for mono8 and mono16 labels.
    # The rgb field (rviz's RGB8 transformer) is the overlay's colour of each point's label.
    packed = path.outputs.packed_rgb
    cases = [(c, image, rgb) for c in (cloud, dataclasses.replace(cloud, intensity=None))
             for image in (labels, labels.astype(np.uint16) * 300) for rgb in (None, packed)]
    for cloud_case, label_image, rgb in cases:
        fast = paint_points(cloud_case, label_image, rgb)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(outputs, "_paint_kernel", lambda: None)
            slow = paint_points(cloud_case, label_image, rgb)
        assert fast[0].dtype == slow[0].dtype
        assert ("rgb" in fast[0].dtype.names) == (rgb is not None)
        np.testing.assert_array_equal(fast[0], slow[0])
        np.testing.assert_array_equal(fast[1], slow[1])
        if rgb is not None:
            bits = fast[0]["rgb"].view(np.uint32)
            colours = path.outputs.lut[np.minimum(fast[0]["label"], 255)]
            np.testing.assert_array_equal(bits >> 16, colours[:, 0])
            np.testing.assert_array_equal((bits >> 8) & 0xFF, colours[:, 1])
            np.testing.assert_array_equal(bits & 0xFF, colours[:, 2])


@pytest.mark.parametrize("compiled_loop", [True, False])
def test_an_unusable_sweep_is_named_for_what_is_wrong(vga, compiled_loop, monkeypatch) -> None:
    """All-NaN: "empty point cloud"; finite but none in view: "no LiDAR point lands" (both
    with the compiled projection and with the numpy passes after the view cull)."""

    if not compiled_loop:
        monkeypatch.setattr(projection, "_projection_kernels", lambda: None)
    _, frame, job, tf = vga
    path = FramePath(_segmenter(), NodeConfig.from_parameters())
    header = job.messages["points"].header
    behind = frame.lidar.copy()
    behind["x"] = -np.abs(behind["x"]) - 1.0  # every point behind the (forward) camera
    nan = frame.lidar.copy()
    nan["x"] = np.nan
    for cloud, expected in ((nan, "empty point cloud"), (behind, "no LiDAR point lands")):
        message = array_to_pointcloud2(cloud, header)
        sweep = dataclasses.replace(job, messages=dict(job.messages, points=message))
        prepared = path.prepare(sweep, tf.lookup)
        assert "lidar" not in prepared.images
        assert [issue.sensor for issue in prepared.issues] == ["points"]
        assert expected in prepared.issues[0].text
