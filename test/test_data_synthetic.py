"""The synthetic world: determinism, exact labels, sensor geometry, conditions, failures."""

import numpy as np
import pytest

from mlesam_ros.data.classes import DELIVER_CLASSES
from mlesam_ros.data.synth import LIDAR_DTYPE, SyntheticDrive, default_rig
from mlesam_ros.data.synth.scene import BOX, C
from mlesam_ros.geometry import invert_transform, transform_points
from mlesam_ros.geometry.projection import project_lidar

SMALL = dict(width=160, height=120, lidar_beams=32, lidar_azimuth_steps=512)


@pytest.fixture(scope="module")
def ideal_frames():
    rig = default_rig(320, 240, lidar_beams=32, lidar_azimuth_steps=1024, noise=False)
    drive = SyntheticDrive(seed=3, rig=rig)
    return [drive.frame(i) for i in (0, 10)]


def test_frame_shapes_types_and_determinism():
    rig = default_rig(**SMALL)
    a = SyntheticDrive(seed=5, rig=rig).frame(2)
    b = SyntheticDrive(seed=5, rig=default_rig(**SMALL)).frame(2)
    c = SyntheticDrive(seed=6, rig=rig).frame(2)
    assert a.rgb.shape == (120, 160, 3) and a.rgb.dtype == np.uint8
    assert a.depth.shape == (120, 160) and a.depth.dtype == np.float32
    assert a.thermal.shape == (64, 80) and a.thermal.dtype == np.uint16
    assert a.lidar.dtype == LIDAR_DTYPE and a.lidar_labels.shape == a.lidar.shape
    assert a.labels.shape == (120, 160) and a.labels.max() < len(DELIVER_CLASSES)
    assert set(np.unique(a.lidar["ring"])) <= set(range(32))
    for name in ("rgb", "depth", "thermal", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.lidar, b.lidar)
    assert a.stamps_ns == b.stamps_ns
    assert not np.array_equal(a.rgb, c.rgb)


def test_every_deliver_class_appears_in_a_few_frames():
    drive = SyntheticDrive(seed=0, rig=default_rig(**SMALL))
    seen = set()
    for index in range(0, 40, 8):
        seen |= set(np.unique(drive.frame(index).labels).tolist())
    missing = [DELIVER_CLASSES[i] for i in range(len(DELIVER_CLASSES)) if i not in seen]
    assert not missing


def test_lidar_agrees_with_depth_camera(ideal_frames):
    errors = []
    for frame in ideal_frames:
        xyz = np.stack([frame.lidar[k] for k in "xyz"], axis=1)
        projection = project_lidar(xyz, frame.camera_from_lidar, frame.rig.rgb.camera)
        depth_at = frame.depth.reshape(-1)[projection.pixel_index]
        lidar_depth = projection.depth[projection.point_index]
        ok = depth_at > 0
        assert ok.sum() > 1000  # plenty of LiDAR points land on the camera image
        errors.append(np.abs(lidar_depth[ok] - depth_at[ok]) / depth_at[ok])
    errors = np.concatenate(errors)
    assert np.median(errors) < 0.01
    # A wrong extrinsic (10 cm, 1°) must be visibly worse: the check can fail.
    wrong = ideal_frames[0]
    shift = np.eye(4)
    shift[:3, 3] = (0.0, 0.1, 0.0)
    c, s = np.cos(np.deg2rad(1.0)), np.sin(np.deg2rad(1.0))
    shift[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    xyz = np.stack([wrong.lidar[k] for k in "xyz"], axis=1)
    projection = project_lidar(xyz, shift @ wrong.camera_from_lidar, wrong.rig.rgb.camera)
    depth_at = wrong.depth.reshape(-1)[projection.pixel_index]
    ok = depth_at > 0
    bad = np.abs(projection.depth[projection.point_index][ok] - depth_at[ok]) / depth_at[ok]
    assert np.median(bad) > 2 * np.median(errors)


def test_lidar_labels_match_camera_labels(ideal_frames):
    frame = ideal_frames[0]
    xyz = np.stack([frame.lidar[k] for k in "xyz"], axis=1)
    projection = project_lidar(xyz, frame.camera_from_lidar, frame.rig.rgb.camera)
    camera_labels = frame.labels.reshape(-1)[projection.pixel_index]
    point_labels = frame.lidar_labels[projection.point_index]
    assert np.mean(camera_labels == point_labels) > 0.9


def test_car_labels_sit_inside_projected_car_boxes(ideal_frames):
    frame = ideal_frames[0]
    drive = SyntheticDrive(seed=3, rig=frame.rig)
    scene = drive.scene_for(frame.world_from_base[0, 3])
    centers = scene.centers_at(frame.time_s)
    camera_from_world = invert_transform(frame.world_from_base @ frame.rig.rgb.T_base_from_sensor)
    camera = frame.rig.rgb.camera
    mask = np.zeros(frame.labels.shape, dtype=bool)
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    boxes = 0
    for k in np.flatnonzero((scene.class_id == C["Cars"]) & (scene.kind == BOX)):
        c, s = np.cos(scene.yaw[k]), np.sin(scene.yaw[k])
        local = signs * scene.half_size[k]
        corners = np.stack([c * local[:, 0] - s * local[:, 1],
                            s * local[:, 0] + c * local[:, 1], local[:, 2]], 1) + centers[k]
        in_camera = transform_points(camera_from_world, corners)
        if (in_camera[:, 2] < 1.0).any():
            continue
        uv = camera.project(in_camera)
        u0, v0 = np.floor(uv.min(0)).astype(int) - 1
        u1, v1 = np.ceil(uv.max(0)).astype(int) + 1
        mask[max(v0, 0) : max(v1 + 1, 0), max(u0, 0) : max(u1 + 1, 0)] = True
        boxes += 1
    car_pixels = frame.labels == C["Cars"]
    assert boxes >= 2 and car_pixels.sum() > 50
    assert mask[car_pixels].all()  # every car pixel lies inside some projected car box


def test_conditions_change_sensors_the_way_real_ones_degrade():
    rig = default_rig(**SMALL)
    sun = SyntheticDrive(seed=1, condition="sun", rig=rig).frame(0)
    night = SyntheticDrive(seed=1, condition="night", rig=rig).frame(0)
    fog = SyntheticDrive(seed=1, condition="fog", rig=rig).frame(0)
    np.testing.assert_array_equal(sun.labels, night.labels)
    assert night.rgb.mean() < 0.5 * sun.rgb.mean()
    assert fog.rgb.astype(float).std() < sun.rgb.astype(float).std()
    ranges = lambda f: np.linalg.norm(np.stack([f.lidar[k] for k in "xyz"], 1), axis=1)  # noqa: E731
    assert ranges(fog).max() <= 45.0 < ranges(sun).max()
    # Thermal: pedestrians warmer than the sky, in any light.
    for frame in (sun, night):
        kelvin = frame.thermal.astype(float) / 100
        assert np.percentile(kelvin, 99.9) > 300 and kelvin.min() < 275


def test_failures_and_stamps():
    rig = default_rig(**SMALL)
    drive = SyntheticDrive(seed=2, rig=rig, failure_rate=1.0, failures=("missing",))
    frame = drive.frame(1)
    assert frame.rgb is None and frame.depth is None and frame.lidar is None
    assert frame.labels.shape == (120, 160)  # ground truth survives a dead camera
    black = SyntheticDrive(seed=2, rig=rig, failure_rate=1.0, failures=("black",)).frame(1)
    assert black.rgb.max() == 0 and black.failures["rgb"] == "black"
    assert "lidar" not in black.failures and len(black.lidar) > 0  # LiDARs never go black
    frozen = SyntheticDrive(seed=2, rig=rig, failure_rate=1.0, failures=("frozen",))
    healthy = SyntheticDrive(seed=2, rig=rig)
    np.testing.assert_array_equal(frozen.frame(3).thermal, healthy.frame(0).thermal)
    stamps = [healthy.frame(i).stamps_ns for i in range(3)]
    for sensor in ("rgb", "depth", "thermal", "lidar"):
        steps = np.diff([s[sensor] for s in stamps])
        assert np.all(np.abs(steps - 100_000_000) < 10_000_000)
    assert stamps[0]["lidar"] < stamps[0]["rgb"] < stamps[0]["thermal"]


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="condition: unknown 'snow'"):
        SyntheticDrive(condition="snow")
    with pytest.raises(ValueError, match="failures: unknown"):
        SyntheticDrive(failures=("explode",))
    with pytest.raises(ValueError, match="width"):
        default_rig(width=2)
