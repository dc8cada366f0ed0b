"""The launch file cannot run without ROS 2, so check what it hands the node against the code."""

import ast
from pathlib import Path

from mlesam_ros.pipeline.config import DEFAULT_PARAMETERS

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "segment.launch.py"


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
    names = _parameter_names_set_by_launch() - {"use_sim_time"}  # rclpy's own parameter
    assert {"topics.rgb", "topics.points", "model.path"} <= names
    assert names <= set(DEFAULT_PARAMETERS), names - set(DEFAULT_PARAMETERS)
