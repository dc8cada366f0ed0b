"""Launch the MLE-SAM segmentation node, optionally with rviz.

    ros2 launch mlesam_ros segment.launch.py
    ros2 launch mlesam_ros segment.launch.py rgb_topic:=/front/image_raw points_topic:=/os1/points
    ros2 launch mlesam_ros segment.launch.py onnx_path:=/opt/models/mlesam.onnx \
        engine_path:=/opt/models/mlesam.engine force_engine_update:=true use_rviz:=false

With ``force_engine_update:=true`` and an ``onnx_path``, ``mlesam build-engine --force`` runs
first (a build takes minutes, and engines are tied to the GPU and TensorRT version) and the
node starts when it has finished. Without it the node's loader still rebuilds a missing or
stale engine from the ONNX beside it.

Topic arguments left empty keep the value from ``params_file``; an input is disabled by
setting its topic parameter to an empty string in the params file.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# launch argument → node parameter it overrides when non-empty
TOPIC_ARGUMENTS = {
    "rgb_topic": "topics.rgb",
    "rgb_info_topic": "topics.rgb_info",
    "depth_topic": "topics.depth",
    "depth_info_topic": "topics.depth_info",
    "thermal_topic": "topics.thermal",
    "thermal_info_topic": "topics.thermal_info",
    "points_topic": "topics.points",
}


def _nodes(context, *args, **kwargs):
    """Build the node with only the overrides the user actually gave."""

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {param: value(arg) for arg, param in TOPIC_ARGUMENTS.items() if value(arg)}
    model_path = value("engine_path") or value("onnx_path")
    if model_path:
        overrides["model.path"] = model_path
    overrides["use_sim_time"] = value("use_sim_time").lower() == "true"

    share = Path(get_package_share_directory("mlesam_ros"))
    segment_node = Node(
        package="mlesam_ros",
        executable="segment_node",
        name="mlesam",
        namespace=value("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[value("params_file"), overrides],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="mlesam_rviz",
        arguments=["-d", str(share / "config" / "mlesam.rviz")],
        parameters=[{"use_sim_time": overrides["use_sim_time"]}],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    if value("force_engine_update").lower() == "true" and value("onnx_path"):
        command = ["mlesam", "build-engine", "--onnx", value("onnx_path"), "--fp16", "--force"]
        if value("engine_path"):
            command += ["--out", value("engine_path")]
        build = ExecuteProcess(cmd=command, output="screen", name="mlesam_build_engine")
        start_after_build = RegisterEventHandler(
            OnProcessExit(target_action=build, on_exit=[segment_node])
        )
        return [build, start_after_build, rviz]
    return [segment_node, rviz]


def generate_launch_description() -> LaunchDescription:
    """Declare the public launch arguments and start the node (and rviz)."""
    share = Path(get_package_share_directory("mlesam_ros"))
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=str(share / "config" / "mlesam.yaml"),
            description="YAML with /**: ros__parameters: for the node",
        ),
        DeclareLaunchArgument("use_rviz", default_value="true", description="start rviz2"),
        DeclareLaunchArgument(
            "engine_path",
            default_value="",
            description="TensorRT engine (or .onnx/.pt) to run; empty: params file model.path",
        ),
        DeclareLaunchArgument(
            "onnx_path",
            default_value="",
            description="ONNX the engine is built from (used when engine_path is empty)",
        ),
        DeclareLaunchArgument(
            "force_engine_update",
            default_value="false",
            description="run `mlesam build-engine --force` on onnx_path before the node",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use /clock (bag playback)"
        ),
    ]
    arguments += [
        DeclareLaunchArgument(arg, default_value="", description=f"overrides {param}")
        for arg, param in TOPIC_ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
