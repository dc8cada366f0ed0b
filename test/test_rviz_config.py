"""The rviz view: settings rviz2 Humble and Jazzy both know, the labelled cloud in the
overlay's colours, a saved window layout, readable TF names, an upright view of optical
frames and one rendered config per namespace. No ROS needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from mlesam_ros.msgs import labelled_points_dtype
from mlesam_ros.node.rviz_config import (
    DISPLAY_TOPICS,
    instance_topics,
    is_optical_frame,
    render_rviz_config,
    rendered_config_path,
    upright_view,
    write_rviz_config,
)

ROOT = Path(__file__).resolve().parents[1]
RVIZ = ROOT / "config" / "mlesam.rviz"

# Property names each display saves in rviz2's humble and jazzy branches (rviz_default_plugins
# displays/*, rviz_common QosProfileProperty and MessageFilterDisplay): the intersection, so
# a name outside it is ignored by one of the two (as "Queue Size" on PointCloud2 in Humble).
COMMON = {"Class", "Name", "Enabled", "Value"}
QOS = {"Value", "Depth", "History Policy", "Reliability Policy", "Durability Policy"}
KNOWN = {
    "rviz_default_plugins/Grid": {"Reference Frame", "Plane Cell Count", "Normal Cell Count",
                                  "Cell Size", "Line Style", "Color", "Alpha", "Plane",
                                  "Offset"},
    "rviz_default_plugins/TF": {"Show Names", "Show Axes", "Show Arrows", "Marker Scale",
                                "Update Interval", "Frame Timeout", "Frames", "Tree"},
    "rviz_default_plugins/PointCloud2": {"Topic", "Selectable", "Style", "Size (m)",
                                         "Size (Pixels)", "Alpha", "Decay Time",
                                         "Position Transformer", "Color Transformer"},
    "rviz_default_plugins/Image": {"Topic", "Normalize Range", "Min Value", "Max Value",
                                   "Median window"},
}  # fmt: skip
TOPIC_KEYS = {
    "rviz_default_plugins/PointCloud2": QOS | {"Filter size"},  # a MessageFilterDisplay
    "rviz_default_plugins/Image": QOS,
}
DOCKS = ("Displays", "Segmentation overlay", "Camera (raw)")


def shipped() -> dict:
    return yaml.safe_load(RVIZ.read_text())


def test_every_display_setting_is_one_humble_and_jazzy_rviz2_read() -> None:
    displays = shipped()["Visualization Manager"]["Displays"]
    assert {display["Class"] for display in displays} <= set(KNOWN)
    for display in displays:
        unknown = set(display) - COMMON - KNOWN[display["Class"]]
        assert not unknown, f"{display['Name']}: {unknown}"
        if "Topic" in display:
            unknown = set(display["Topic"]) - TOPIC_KEYS[display["Class"]]
            assert not unknown, f"{display['Name']} Topic: {unknown}"


def test_labelled_cloud_is_coloured_by_its_rgb_field() -> None:
    (cloud,) = [d for d in shipped()["Visualization Manager"]["Displays"]
                if d["Name"] == "Labelled points"]  # fmt: skip
    # RGB8 reads the "rgb" field the node publishes: the overlay's palette, not a rainbow.
    assert cloud["Color Transformer"] == "RGB8" and cloud["Position Transformer"] == "XYZ"
    assert "rgb" in labelled_points_dtype(True, True).names
    assert DISPLAY_TOPICS[cloud["Name"]] == "labeled_points"


def test_tf_names_are_readable_at_the_view_distance() -> None:
    manager = shipped()["Visualization Manager"]
    (tf,) = [d for d in manager["Displays"] if d["Class"] == "rviz_default_plugins/TF"]
    # rviz draws names 0.1 m high times Marker Scale; keep them >= 1/60 of the view distance.
    assert tf["Show Names"] is True
    text_height = 0.1 * tf["Marker Scale"]
    assert text_height >= manager["Views"]["Current"]["Distance"] / 60


def test_window_layout_is_saved_with_every_dock() -> None:
    geometry = shipped()["Window Geometry"]
    # rviz reads these two into an uninitialised bool when absent: docks hide at random.
    assert geometry["Hide Left Dock"] is False and geometry["Hide Right Dock"] is False
    state = bytes.fromhex(geometry["QMainWindow State"])
    assert state[:4] == bytes.fromhex("000000ff")  # QMainWindow::saveState's version marker
    for name in (*DOCKS, "Tools"):  # rviz restores docks and its toolbar by object name
        assert name.encode("utf-16-be") in state, name
        if name != "Tools":
            assert geometry[name] == {"collapsed": False}
    panel_names = [panel["Name"] for panel in shipped()["Panels"]]
    display_names = [d["Name"] for d in shipped()["Visualization Manager"]["Displays"]
                     if d["Class"] == "rviz_default_plugins/Image"]  # fmt: skip
    assert set(panel_names + display_names) == set(DOCKS)


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def test_optical_fixed_frames_get_an_upright_view() -> None:
    assert upright_view("base_link") == ("base_link", None)
    assert upright_view("front_camera_link") == ("front_camera_link", None)
    assert is_optical_frame("camera_color_optical_frame") and is_optical_frame("cam_optical")
    frame, arguments = upright_view("front_camera_optical")
    assert frame == "front_camera_optical_upright"
    options = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert options["--frame-id"] == "front_camera_optical"
    assert options["--child-frame-id"] == frame
    rotation = quaternion_matrix(*(float(options[f"--q{axis}"]) for axis in "xyzw"))
    # Columns: the upright frame's axes in the optical frame (x right, y down, z forward).
    np.testing.assert_allclose(rotation[:, 0], [0, 0, 1], atol=1e-12)  # forward = optical z
    np.testing.assert_allclose(rotation[:, 1], [-1, 0, 0], atol=1e-12)  # left = -optical x
    np.testing.assert_allclose(rotation[:, 2], [0, -1, 0], atol=1e-12)  # up = -optical y


def test_rendered_config_has_one_fixed_path_per_namespace(tmp_path) -> None:
    default = rendered_config_path("", tmp_path)
    front = rendered_config_path("/front/", tmp_path)
    assert default == tmp_path / "mlesam" / "rviz_default.rviz"
    assert front == tmp_path / "mlesam" / "rviz_front.rviz"
    assert rendered_config_path("a/b", tmp_path).name == "rviz_a_b.rviz"
    for fixed_frame in ("base_link", "front_camera_optical_upright"):
        text = render_rviz_config(RVIZ, fixed_frame, instance_topics("image_raw", "front"))
        write_rviz_config(text, front)
    # Launched twice: one file, the latest config, nothing else left behind.
    assert sorted(p.name for p in (tmp_path / "mlesam").iterdir()) == ["rviz_front.rviz"]
    rendered = yaml.safe_load(front.read_text())
    assert rendered["Visualization Manager"]["Global Options"]["Fixed Frame"] == (
        "front_camera_optical_upright")
    assert rendered["Window Geometry"] == shipped()["Window Geometry"]


def test_ros_home_decides_where_the_config_goes(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    assert rendered_config_path("front") == tmp_path / "mlesam" / "rviz_front.rviz"
    monkeypatch.delenv("ROS_HOME")
    assert rendered_config_path("front") == Path.home() / ".ros" / "mlesam" / "rviz_front.rviz"
