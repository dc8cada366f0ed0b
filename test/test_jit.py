"""Every compiled loop (``mlesam_ros.jit``) against the numpy code it accelerates.

Each test builds inputs with the awkward values a sensor sends (0, NaN, inf, values on the
encoding's range limits, depth ties) and compares the compiled result with the numpy
functions it replaces, which are also the fallback when numba is not installed; then the
warm-up and numba's disk cache.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("numba")

from mlesam_ros.bench.frame import synthetic_job
from mlesam_ros.data.encode import encode_depth, encode_thermal
from mlesam_ros.data.resample import area_resize, resize_image
from mlesam_ros.geometry import ParallaxMap, project_lidar
from mlesam_ros.geometry.camera import CameraModel
from mlesam_ros.geometry.projection import EMPTY_KEY
from mlesam_ros.msgs import typestore
from mlesam_ros.pipeline import depth as depth_step
from mlesam_ros.pipeline import lidar as lidar_step
from mlesam_ros.pipeline import outputs
from mlesam_ros.pipeline import thermal as thermal_step
from mlesam_ros.pipeline.config import NodeConfig
from mlesam_ros.pipeline.frame import FramePath

lidar_image = importlib.import_module("mlesam_ros.geometry.lidar_image")
lidar_dilation = importlib.import_module("mlesam_ros.geometry.lidar_dilation")
projection = importlib.import_module("mlesam_ros.geometry.projection")
registration = importlib.import_module("mlesam_ros.geometry.registration")

# (fy, fx) shrink factors: the working grid's 2, odd, mixed, none, and a bigger one.
FACTORS = [(2, 2), (3, 3), (2, 3), (1, 1), (4, 4)]


def _depth_image(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    depth = rng.uniform(0.01, 120.0, shape).astype(np.float32)
    for value, share in ((np.nan, 0.3), (0.0, 0.1), (np.inf, 0.05), (0.3, 0.05), (80.0, 0.05)):
        depth[rng.random(shape) < share] = value
    return depth


@pytest.mark.parametrize("factors", FACTORS)
def test_depth_model_image_equals_encode_then_hole_aware_resize(factors) -> None:
    rng = np.random.default_rng(sum(factors))
    for _ in range(5):
        out_h, out_w = (int(v) for v in rng.integers(3, 20, 2))
        shape = (out_h * factors[0], out_w * factors[1])
        depth = _depth_image(rng, shape)
        grid, count = depth_step.sample_depth(depth, shape)
        valid = np.isfinite(depth) & (depth > 0)
        np.testing.assert_array_equal(grid, np.where(valid, depth, np.nan))
        assert count == np.count_nonzero(valid)
        got = depth_step.depth_model_image(grid, (out_h, out_w))
        want = resize_image(encode_depth(grid), (out_h, out_w), "depth")
        np.testing.assert_array_equal(got, want)


def test_sample_depth_takes_pixel_centres_and_other_sizes_fall_back() -> None:
    rng = np.random.default_rng(3)
    depth = _depth_image(rng, (48, 64))
    grid, _ = depth_step.sample_depth(depth, (24, 32))
    np.testing.assert_array_equal(grid[np.isfinite(grid)], depth[1::2, 1::2][np.isfinite(grid)])
    # No whole factor (24x32 → 10x15, 2.5x as a 320x240 camera for a 96x128 model; and an
    # enlargement): the compiled codes go through OpenCV's area weights, still equal.
    for size in ((10, 15), (96, 128)):
        want = resize_image(encode_depth(grid), size, "depth")
        np.testing.assert_array_equal(depth_step.depth_model_image(grid, size), want)


def _lidar_keys(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    keys = np.full(shape, EMPTY_KEY, dtype=np.int64)
    hits = rng.random(shape) < 0.15
    depth = rng.uniform(0.5, 50.0, hits.sum()).astype(np.float32)
    depth[::5] = 7.0  # exact depth ties: the first shift in row-major order must win
    codes = rng.integers(1, 256, (hits.sum(), 3))
    packed = codes[:, 0] | codes[:, 1] << 8 | codes[:, 2] << 16
    keys[hits] = (depth.view(np.int32).astype(np.int64) << 32) | packed
    return keys


@pytest.mark.parametrize("factors", FACTORS)
@pytest.mark.parametrize("radius", [0, 1, 2])
def test_lidar_model_image_equals_dilate_then_sparse_resize(factors, radius) -> None:
    rng = np.random.default_rng(10 * radius + factors[0])
    for _ in range(4):
        out_h, out_w = (int(v) for v in rng.integers(3, 20, 2))
        keys = _lidar_keys(rng, (out_h * factors[0], out_w * factors[1]))
        keys[: keys.shape[0] // 3] = EMPTY_KEY  # a sky: whole blocks with nothing in reach
        got = lidar_step.lidar_model_image(keys, radius, (out_h, out_w))
        want = resize_image(lidar_image.dilate_keys(keys, radius), (out_h, out_w), "lidar")
        np.testing.assert_array_equal(got, want)
        assert got.any()


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_lidar_model_image_any_size_equals_the_window_scan(radius) -> None:
    # Not whole factors: a 320x240 camera for a 96x128 model (2.5x), odd sizes, enlarging.
    rng = np.random.default_rng(30 + radius)
    for shape, size in (((240, 320), (96, 128)), ((25, 33), (10, 13)), ((7, 9), (10, 13))):
        keys = _lidar_keys(rng, shape)
        keys[: shape[0] // 3] = EMPTY_KEY
        got = lidar_step.lidar_model_image(keys, radius, size)
        want = resize_image(lidar_image.dilate_keys(keys, radius), size, "lidar")
        np.testing.assert_array_equal(got, want)
        assert got.any()


def test_lidar_model_image_refuses_a_radius_the_keys_cannot_rank() -> None:
    with pytest.raises(ValueError, match="dilation radius 8: at most 7"):
        lidar_step.lidar_model_image(np.zeros((4, 4), np.int64), 8, (2, 2))


@pytest.mark.parametrize("factors", FACTORS)
def test_thermal_model_image_equals_three_channel_encode_mask_resize(factors) -> None:
    rng = np.random.default_rng(20 + factors[1])
    out_h, out_w = 11, 13
    shape = (out_h * factors[0], out_w * factors[1])
    thermal = rng.uniform(-5.0, 9000.0, shape).astype(np.float32)
    thermal[rng.random(shape) < 0.2] = 0.0
    thermal[0, 0] = np.nan
    low, high = np.percentile(thermal[thermal > 0], (1, 99))
    for value_range in ((float(low), float(high)), (5.0, 5.0)):  # and a flat frame
        got = thermal_step.thermal_model_image(thermal, value_range, (out_h, out_w))
        image = encode_thermal(np.nan_to_num(thermal), value_range)
        image *= (thermal > 0)[:, :, None]
        np.testing.assert_array_equal(got, area_resize(image, (out_h, out_w)))


def test_positive_percentiles_equal_numpy_percentile() -> None:
    rng = np.random.default_rng(4)
    for trial in range(400):
        count = int(rng.integers(1, 3000)) if trial % 3 else int(rng.integers(1, 8))
        values = [
            rng.uniform(-100, 9000, count),
            rng.integers(-3, 20, count).astype(float),  # many ties
            np.exp(rng.normal(0, 8, count)),  # values across many exponents
            rng.normal(7500, 300, count),  # a thermal camera's counts
        ][trial % 4].astype(np.float32)
        image = values.reshape(4, -1) if count % 4 == 0 else values[None]
        positive = image[image > 0]
        want = np.percentile(np.sort(positive), (1, 99)) if positive.size else None
        got = thermal_step.positive_percentiles(image)
        if want is None:
            assert got is None
        else:
            assert got == (float(want[0]), float(want[1])), (trial, count)


def test_projection_keys_compiled_equal_numpy(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    camera = CameraModel(80, 60, [[50, 0, 40], [0, 50, 30], [0, 0, 1]], [0.0] * 5)
    points = rng.normal(0, 10, (5000, 3)).astype(np.float32)
    points[:, 2] = np.abs(points[:, 2])
    points[::13, 2] = np.nan
    intensity = rng.uniform(-10, 300, 5000).astype(np.float32)
    intensity[::7], intensity[::11] = np.nan, np.inf  # out of range and not a number
    projection = project_lidar(points, np.eye(4), camera)
    # float64 intensities a hair either side of a code boundary (254 * v / 255 = k + 0.5):
    # a float32 cast would put both sides on one float, so they must be encoded as given.
    halves = rng.integers(0, 254, 5000) + 0.5
    wide = halves * 255 / 254 + np.where(np.arange(5000) % 2, 1e-9, -1e-9)
    for values in (intensity, wide, None):
        got = lidar_image.projection_keys(projection, points, values, intensity_max=255.0)
        with monkeypatch.context() as patch:
            patch.setattr(lidar_image, "_pack_kernel", lambda: None)
            want = lidar_image.projection_keys(projection, points, values, intensity_max=255.0)
        np.testing.assert_array_equal(got, want)
        assert (got != EMPTY_KEY).sum() > 100
    with pytest.raises(ValueError, match="encode range: high"):
        lidar_image.projection_keys(projection, points, None, height_range=(5.0, -3.0))


def test_parallax_maps_compiled_equal_numpy(monkeypatch) -> None:
    rng = np.random.default_rng(6)
    thermal = CameraModel(64, 48, [[40, 0.5, 31], [0, 41, 25], [0, 0, 1]], [0.0] * 5)
    rgb = CameraModel(80, 60, [[50, 0, 40], [0, 50, 30], [0, 0, 1]], [0.0] * 5)
    T = np.eye(4)
    T[:3, 3] = [0.1, -0.05, 0.02]
    parallax = ParallaxMap(thermal, rgb, T)
    depth = rng.uniform(0.05, 50, (60, 80)).astype(np.float32)
    depth[::3, ::5], depth[::7], depth[1, 1], depth[2, 2] = np.nan, 0.0, np.inf, 1e-4
    got = parallax.maps(depth)
    with monkeypatch.context() as patch:
        patch.setattr(registration, "_parallax_kernel", lambda: None)
        want = parallax.maps(depth)
    for got_map, want_map in zip(got, want, strict=True):
        np.testing.assert_array_equal(got_map, want_map)
    assert (got[0] == -1).any()  # 1e-4 m puts a point behind the thermal camera


def _signatures() -> dict[str, list]:
    kernels = {"paint": outputs._paint_kernel(), "pack": lidar_image._pack_kernel(),
               "parallax": registration._parallax_kernel(),
               "thermal": thermal_step._thermal_kernel()}  # fmt: skip
    for group, functions in (("project", projection._projection_kernels()),
                             ("lidar", lidar_dilation.dilation_kernels()),
                             ("depth", depth_step._depth_kernels()),
                             ("percentiles", thermal_step._percentile_kernels())):  # fmt: skip
        kernels.update({f"{group}{index}": f for index, f in enumerate(functions)})
    return {name: list(function.signatures) for name, function in kernels.items()}


@pytest.mark.parametrize("size", [(480, 640), (240, 320)])  # block and window-scan paths
def test_warm_up_compiles_every_type_a_frame_uses(size) -> None:
    """After FramePath's warm-up, a frame of CDR-decoded messages compiles nothing more.

    Decoded messages are read-only views with strided clouds; a type the warm-up missed
    would be compiled on the robot's first frame (seconds), not at start-up.
    """
    from types import SimpleNamespace


    segmenter = SimpleNamespace(modalities=("rgb", "depth", "thermal", "lidar"),
                                input_size=(96, 128),
                                class_names=tuple(f"c{i}" for i in range(25)))  # fmt: skip
    path = FramePath(segmenter, NodeConfig.from_parameters())  # warms up
    job, tf = synthetic_job(size, points=4096)
    store = typestore()
    for key, message in job.messages.items():
        msgtype = {"points": "sensor_msgs/msg/PointCloud2"}.get(key, "sensor_msgs/msg/Image")
        job.messages[key] = store.deserialize_cdr(store.serialize_cdr(message, msgtype), msgtype)
    for key, info in job.infos.items():
        msgtype = "sensor_msgs/msg/CameraInfo"
        job.infos[key] = store.deserialize_cdr(store.serialize_cdr(info, msgtype), msgtype)
    before = _signatures()
    prepared = path.prepare(job, tf.lookup)
    assert not prepared.issues and set(prepared.images) == set(segmenter.modalities)
    labels = np.zeros((96, 128), np.uint8)
    result = path.postprocess(prepared, labels, None, np.ones((1, 4), bool),
                              want_confidence=False, want_overlay=True, want_points=True)
    assert result.points is not None and len(result.points) > 0
    assert _signatures() == before


def test_compiled_loops_load_from_the_disk_cache_on_the_next_start(tmp_path) -> None:
    """A second process compiles nothing and adds no cache files.

    A jitted helper captured in a kernel's closure makes numba's cache miss on every start
    (its key pickles the helper's per-process identity): the node would recompile at every
    launch and its cache folder would grow without bound.
    """
    import os
    import subprocess
    import sys

    script = "import mlesam_ros.pipeline.frame; from mlesam_ros import jit; jit.warm_up()"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    counts = []
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
        counts.append(sorted(path.name for path in tmp_path.rglob("*.nbc")))
    assert counts[0] and counts[1] == counts[0]
