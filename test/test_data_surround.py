"""The synthetic surround rig: cameras all around one LiDAR, overlapping, with exact labels."""

from __future__ import annotations

import numpy as np
import pytest

from mlesam_ros import cli
from mlesam_ros.data.synth.surround import CAMERA_NAMES, SurroundDrive, surround_rig
from mlesam_ros.geometry import project_lidar
from mlesam_ros.pipeline.config import NodeConfig, load_params_file


def test_cameras_look_all_around_and_neighbours_overlap() -> None:
    rig = surround_rig(4, 64, 48, lidar_beams=8, lidar_azimuth_steps=360, noise=False)
    assert list(rig.cameras) == list(CAMERA_NAMES[:4]) == ["front", "left", "rear", "right"]
    directions = [spec.T_base_from_sensor[:3, 2] for spec in rig.cameras.values()]  # optical z
    yaws = np.degrees([np.arctan2(d[1], d[0]) for d in directions])
    np.testing.assert_allclose(yaws, [0, 90, 180, -90], atol=1e-6)
    # A ring of points around the car: every one is seen, some by two cameras.
    angle = np.radians(np.arange(0, 360, 0.5))
    ring = np.stack([10 * np.cos(angle), 10 * np.sin(angle), np.full_like(angle, -0.5)], 1)
    seen = np.zeros(angle.size, int)
    for name, spec in rig.cameras.items():
        projection = project_lidar(ring, rig.camera_from_lidar(name), spec.camera)
        seen[np.asarray(projection.valid)] += 1  # every point landing in the image
    assert seen.min() >= 1 and (seen == 2).mean() > 0.1
    with pytest.raises(ValueError, match=r"cameras: choose 1\.\.8"):
        surround_rig(9)


def test_frames_are_deterministic_and_a_dead_camera_goes_silent() -> None:
    rig = surround_rig(2, 48, 32, lidar_beams=8, lidar_azimuth_steps=128)
    first = SurroundDrive(seed=3, rig=rig, dead={"left": 1}).frame(1)
    again = SurroundDrive(seed=3, rig=rig).frame(1)
    np.testing.assert_array_equal(first.rgb["front"], again.rgb["front"])
    np.testing.assert_array_equal(first.labels["left"], again.labels["left"])
    assert first.rgb["left"] is None and first.depth["left"] is None  # dead from frame 1
    assert first.labels["left"].shape == (32, 48) and len(np.unique(first.labels["left"])) > 1
    assert first.lidar is not None and first.lidar_labels.shape == first.lidar.shape
    assert first.stamps_ns["front"] != first.stamps_ns["left"]  # each camera its own jitter
    with pytest.raises(ValueError, match="unknown camera"):
        SurroundDrive(rig=rig, dead={"rear": 1})


def test_synth_cameras_writes_a_bag_and_the_node_parameters(tmp_path, capsys) -> None:
    from conftest import read_bag

    out = tmp_path / "surround"
    cli.main(["synth", "--cameras", "2", "--frames", "2", "--width", "48", "--height", "32",
              "--lidar-beams", "8", "--lidar-azimuth-steps", "128", "--out", str(out),
              "--dead-camera", "left@1"])  # fmt: skip
    assert "--params" in capsys.readouterr().out
    parameters = load_params_file(out / "cameras.yaml")
    config = NodeConfig.from_parameters(parameters)
    assert [camera.name for camera in config.cameras] == ["front", "left"]
    messages = read_bag(out / "bag")
    for camera in ("front", "left"):
        view = config.camera_view(config.cameras[["front", "left"].index(camera)])
        for key in ("rgb", "depth"):
            assert view.topics[key] in messages and view.info_topics[key] in messages
        assert f"/mlesam/{camera}/gt_labels" in messages
    assert len(messages["/front/image_raw"]) == 2 and len(messages["/left/image_raw"]) == 1
    assert len(messages["/lidar/points"]) == 2 and len(messages["/tf_static"]) == 1
    assert cli.main(["synth", "--cameras", "2", "--frames", "1", "--out", str(tmp_path / "x"),
                     "--dead-camera", "rear@1"]) != 0  # fmt: skip
    assert "--dead-camera: expected CAMERA@FRAME" in capsys.readouterr().err
