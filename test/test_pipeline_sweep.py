"""One sweep for several cameras: decoded once, and a sector cull that never changes a result."""

from __future__ import annotations

import numpy as np
import pytest

from mlesam_ros.data.synth.surround import SurroundDrive, surround_rig
from mlesam_ros.geometry import CameraModel, make_transform, project_lidar
from mlesam_ros.msgs import array_to_pointcloud2
from mlesam_ros.pipeline.sweep import SweepCache, camera_sector


@pytest.fixture(scope="module")
def surround_sweep():
    rig = surround_rig(4, 160, 120, lidar_beams=16, lidar_azimuth_steps=512)
    frame = SurroundDrive(seed=7, rig=rig).frame(2)
    return rig, array_to_pointcloud2(frame.lidar, frame.stamps_ns["lidar"], "lidar")


def test_a_sweep_is_decoded_once_for_every_camera(surround_sweep) -> None:
    _, message = surround_sweep
    cache = SweepCache(size=2)
    first = cache.decode(message, "/lidar/points")
    assert cache.decode(message, "/lidar/points") is first and cache.get(message) is first
    others = [array_to_pointcloud2(np.zeros(3, first.cloud.dtype), 1, "lidar") for _ in range(2)]
    for other in others:
        cache.decode(other, "/lidar/points")
    assert cache.get(message) is None  # only the newest sweeps are kept


@pytest.mark.parametrize("grid", [(80, 60), (160, 120)], ids=["working-grid", "camera-size"])
def test_the_sector_cull_keeps_every_point_each_camera_projects(surround_sweep, grid) -> None:
    rig, message = surround_sweep
    cache = SweepCache()
    sweep = cache.decode(message, "/lidar/points")
    kept_total = 0
    for name, spec in rig.cameras.items():
        camera = spec.camera.scaled(*grid)
        T = rig.camera_from_lidar(name)
        kept = sweep.in_view(T, camera, cache.sectors)
        assert kept is not None
        whole = project_lidar(sweep.xyz, T, camera, min_depth=0.1)
        culled = project_lidar(sweep.xyz[kept], T, camera, min_depth=0.1)
        np.testing.assert_array_equal(np.sort(whole.point_index),
                                      np.sort(kept[culled.point_index]))  # fmt: skip
        np.testing.assert_array_equal(whole.depth_image(), culled.depth_image())
        kept_total += kept.size
    # Four cameras of ~110° each: together well under two full sweeps.
    assert kept_total < 2 * sweep.xyz.shape[0]


def test_a_camera_that_cannot_be_bounded_gets_the_whole_sweep() -> None:
    facing_forward = make_transform(np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]]), (0, 0, 0))
    pinhole = CameraModel(64, 48, np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]]))
    looking_up = make_transform(np.eye(3), (0, 0, 0))  # optical axis = LiDAR z
    assert camera_sector(looking_up, pinhole) is None
    sector = camera_sector(facing_forward, pinhole)
    half = np.arctan(32 / 40)  # half the horizontal field of view
    assert sector is not None
    assert -half - 0.1 < sector.low < -half < half < sector.high < half + 0.1
