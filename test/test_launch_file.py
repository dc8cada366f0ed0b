"""The launch file: what it hands the node, optional rviz, and an rviz view that follows it.

The parts that need no ROS run everywhere; building the launch description needs ``launch``
and ``launch_ros`` (ROS 2) and is skipped without them.
"""

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from mlesam_ros.node.rviz_config import instance_topics, render_rviz_config
from mlesam_ros.pipeline.config import DEFAULT_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "segment.launch.py"
RVIZ = ROOT / "config" / "mlesam.rviz"
NODE_OWN_PARAMETERS = {"use_sim_time", "autostart"}  # rclpy's and the lifecycle shell's


def _parameter_names_set_by_launch() -> set[str]:
    tree = ast.parse(LAUNCH.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        target = getattr(node, "targets", [None])[0]
        if isinstance(node, ast.Assign) and getattr(target, "id", "") == "TOPIC_ARGUMENTS":
            names.update(ast.literal_eval(node.value).values())
        # overrides["model.path"] = ... style assignments
        if (
            isinstance(node, ast.Subscript)
            and getattr(node.value, "id", "") == "overrides"
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(node.slice.value)
    return names


def test_launch_overrides_only_real_node_parameters() -> None:
    names = _parameter_names_set_by_launch() - NODE_OWN_PARAMETERS
    assert {"topics.rgb", "topics.points", "model.path"} <= names
    assert names <= set(DEFAULT_PARAMETERS), names - set(DEFAULT_PARAMETERS)


def _rviz_view(fixed_frame: str, topics: dict) -> tuple[str, dict]:
    config = yaml.safe_load(render_rviz_config(RVIZ, fixed_frame, topics))
    manager = config["Visualization Manager"]
    shown = {d["Name"]: d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    return manager["Global Options"]["Fixed Frame"], shown


def test_rviz_config_follows_namespace_topics_and_fixed_frame() -> None:
    frame, shown = _rviz_view("base_link", instance_topics("/camera/image_raw"))
    assert frame == "base_link"
    assert shown == {"Labelled points": "/mlesam/labeled_points",
                     "Segmentation overlay": "/mlesam/labels_color",
                     "Camera (raw)": "/camera/image_raw"}
    frame, shown = _rviz_view("front_camera_optical", instance_topics("image_raw", "front"))
    assert frame == "front_camera_optical"
    assert shown == {"Labelled points": "/front/mlesam/labeled_points",
                     "Segmentation overlay": "/front/mlesam/labels_color",
                     "Camera (raw)": "/front/image_raw"}


def test_shipped_rviz_config_matches_the_default_instance() -> None:
    """The file rviz users open by hand shows the default node's topics."""
    config = yaml.safe_load(RVIZ.read_text())
    rendered = yaml.safe_load(render_rviz_config(
        RVIZ, config["Visualization Manager"]["Global Options"]["Fixed Frame"],
        instance_topics(DEFAULT_PARAMETERS["topics.rgb"])))
    assert rendered == config


# -- with ROS 2's launch installed ----------------------------------------------------------


@pytest.fixture
def launch_module(monkeypatch):
    pytest.importorskip("launch", reason="launch is installed only with ROS 2")
    pytest.importorskip("launch_ros", reason="launch_ros is installed only with ROS 2")
    import ament_index_python.packages as packages

    def share(package: str) -> str:
        if package == "mlesam_ros":
            return str(ROOT)  # launch/ and config/ as installed under share/mlesam_ros
        raise packages.PackageNotFoundError(f"package '{package}' not found")  # no rviz2

    spec = importlib.util.spec_from_file_location("segment_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "get_package_share_directory", share)
    return module


def _actions(module, **arguments):
    from launch import LaunchContext

    description = module.generate_launch_description()
    context = LaunchContext()
    for action in description.entities:
        if type(action).__name__ == "DeclareLaunchArgument":
            value = arguments.get(action.name, action.default_value and "".join(
                part.perform(context) for part in action.default_value))
            context.launch_configurations[action.name] = value
    return module._nodes(context)


@pytest.mark.parametrize("use_rviz", ["true", "false"])
def test_node_starts_where_rviz2_is_not_installed(launch_module, use_rviz) -> None:
    from launch.actions import LogInfo
    from launch_ros.actions import Node

    actions = _actions(launch_module, use_rviz=use_rviz, namespace="front")
    nodes = [action for action in actions if isinstance(action, Node)]
    assert [node.node_executable for node in nodes] == ["segment_node"]
    logs = [action for action in actions if isinstance(action, LogInfo)]
    assert len(logs) == (1 if use_rviz == "true" else 0)
