"""Launch the MLE-SAM segmentation node (a lifecycle node), optionally with rviz.

    ros2 launch mlesam_ros segment.launch.py
    ros2 launch mlesam_ros segment.launch.py rgb_topic:=/front/image_raw points_topic:=/os1/points
    ros2 launch mlesam_ros segment.launch.py namespace:=front fixed_frame:=front_camera_link
    ros2 launch mlesam_ros segment.launch.py autostart:=false   # then: ros2 lifecycle set ...
    ros2 launch mlesam_ros segment.launch.py onnx_path:=/opt/models/mlesam.onnx \
        engine_path:=/opt/models/mlesam.engine force_engine_update:=true use_rviz:=false
    RMW_IMPLEMENTATION=rmw_cyclonedds_cpp ros2 launch mlesam_ros segment.launch.py \
        dds_profile:=images dds_interface:=eth0
    ros2 launch mlesam_ros segment.launch.py cameras:=front,left,rear,right \
        params_file:=/opt/rig/cameras.yaml     # one node, several cameras, one LiDAR

Outputs are node-relative (``~/labels`` = ``/<namespace>/mlesam/labels``), so two instances
in two namespaces never collide; ``/diagnostics`` is global. rviz starts only where the
``rviz2`` package exists (robots running ros-base get one log line instead), with a config
rendered for this instance's topics and ``fixed_frame`` into ``$ROS_HOME/mlesam/`` (one file
per namespace, overwritten at each launch). rviz keeps the fixed frame's z axis up: use a
z-up frame (``base_link``, or a camera-only rig's ``<camera>_link``). Given a camera's optical
frame (``*_optical``, ``*_optical_frame``: z forward), the launch file publishes an upright
frame at the same place (``<frame>_upright``: x forward, z up) and shows rviz in that.

With ``force_engine_update:=true`` and an ``onnx_path``, ``mlesam build-engine --force`` runs
first (a build takes minutes, and engines are tied to the GPU and TensorRT version) and the
node starts when it has finished. Without it the node's loader still rebuilds a missing or
stale engine from the ONNX beside it.

Topic arguments left empty keep the value from ``params_file``; an input is disabled by
setting its topic parameter to an empty string in the params file. ``cameras`` (comma
separated) sets ``cameras.names``: each camera's topics then come from ``cameras.<name>.*``
in the params file (default ``/<name>/image_raw`` and ``/<name>/camera_info``), its outputs
are ``~/<name>/labels`` etc., and rviz shows one overlay per camera and the fused cloud.

``dds_profile:=images`` (a 64 MB socket receive buffer), ``loopback`` (the same on 127.0.0.1
only) or an XML path sets ``CYCLONEDDS_URI`` for the node, and ``dds_interface:=eth0`` picks
its network interface; both need ``RMW_IMPLEMENTATION=rmw_cyclonedds_cpp`` and the kernel's
``net.core.rmem_max`` raised (docs/inputs.md). A log line says when either is missing.
"""

import os
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mlesam_ros.node.rviz_config import (
    instance_topics,
    render_rviz_config,
    rendered_config_path,
    upright_view,
    write_rviz_config,
)
from mlesam_ros.pipeline.config import DEFAULT_PARAMETERS, load_params_file
from mlesam_ros.pipeline.parameters import parse_camera_names

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
NODE_NAME = "mlesam"
DEFAULT_FIXED_FRAME = "base_link"


def _rviz(value, overrides: dict, share: Path) -> list:
    """rviz2 with a config for this instance, or one log line where rviz2 is not installed."""
    if value("use_rviz").lower() != "true":
        return []
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return [LogInfo(msg="mlesam: rviz2 is not installed (ros-base?); starting without rviz")]
    try:
        from_file = load_params_file(value("params_file"))
    except (OSError, ValueError):
        from_file = {}
    parameters = {**from_file, **overrides}
    try:
        cameras = parse_camera_names(parameters.get("cameras.names", ""))
    except ValueError:
        cameras = ()  # the node reports it
    if cameras:
        rgb_topic = parameters.get(f"cameras.{cameras[0]}.rgb", f"/{cameras[0]}/image_raw")
    else:
        rgb_topic = parameters.get("topics.rgb") or DEFAULT_PARAMETERS["topics.rgb"]
    topics = instance_topics(rgb_topic, value("namespace"), cameras=cameras)
    frame, upright_transform = upright_view(value("fixed_frame") or DEFAULT_FIXED_FRAME)
    rendered = render_rviz_config(share / "config" / "mlesam.rviz", frame, topics)
    path = write_rviz_config(rendered, rendered_config_path(value("namespace")))
    actions = []
    if upright_transform is not None:
        actions += [
            LogInfo(msg=f"mlesam: rviz shows {frame}, an upright frame (x forward, z up) at "
                        f"{value('fixed_frame')} (an optical frame, z forward)"),
            Node(
                package="tf2_ros",
                executable="static_transform_publisher",
                name="mlesam_rviz_upright",
                namespace=value("namespace"),
                arguments=upright_transform,
                parameters=[{"use_sim_time": overrides["use_sim_time"]}],
            ),
        ]  # fmt: skip
    return [
        *actions,
        Node(
            package="rviz2",
            executable="rviz2",
            name="mlesam_rviz",
            namespace=value("namespace"),
            arguments=["-d", str(path)],
            parameters=[{"use_sim_time": overrides["use_sim_time"]}],
        ),
    ]


def _dds_environment(value) -> tuple[dict, list]:
    """``CYCLONEDDS_URI`` for the node from ``dds_profile``/``dds_interface``, and log lines."""
    from mlesam_ros.dds.profiles import interface_snippet, profile_uri, receive_buffer_advice

    profile, interface = value("dds_profile"), value("dds_interface")
    if not profile and not interface:
        return {}, []
    snippet = interface_snippet(interface) if interface else None
    uri = profile_uri(profile, snippet) if profile else snippet
    notes = [LogInfo(msg=f"mlesam: CYCLONEDDS_URI={uri} for the node")]
    if os.environ.get("RMW_IMPLEMENTATION") != "rmw_cyclonedds_cpp":
        notes.append(LogInfo(msg="mlesam: dds_profile/dds_interface configure Cyclone DDS; "
                                 "set RMW_IMPLEMENTATION=rmw_cyclonedds_cpp for them to apply"))
    advice = receive_buffer_advice() if profile else None
    if advice:
        notes.append(LogInfo(msg=f"mlesam: {advice}"))
    return {"CYCLONEDDS_URI": uri}, notes


def _nodes(context, *args, **kwargs):
    """Build the node with only the overrides the user actually gave."""

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = {param: value(arg) for arg, param in TOPIC_ARGUMENTS.items() if value(arg)}
    model_path = value("engine_path") or value("onnx_path")
    if model_path:
        overrides["model.path"] = model_path
    if value("cameras"):
        overrides["cameras.names"] = value("cameras")
    overrides["use_sim_time"] = value("use_sim_time").lower() == "true"
    overrides["autostart"] = value("autostart").lower() == "true"

    share = Path(get_package_share_directory("mlesam_ros"))
    dds_environment, dds_notes = _dds_environment(value)
    segment_node = Node(
        package="mlesam_ros",
        executable="segment_node",
        name=NODE_NAME,
        namespace=value("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[value("params_file"), overrides],
        additional_env=dds_environment,
    )
    rviz = _rviz(value, overrides, share)
    if value("force_engine_update").lower() == "true" and value("onnx_path"):
        command = ["mlesam", "build-engine", "--onnx", value("onnx_path"), "--fp16", "--force"]
        if value("engine_path"):
            command += ["--out", value("engine_path")]
        build = ExecuteProcess(cmd=command, output="screen", name="mlesam_build_engine")
        start_after_build = RegisterEventHandler(
            OnProcessExit(target_action=build, on_exit=[segment_node])
        )
        return [*dds_notes, build, start_after_build, *rviz]
    return [*dds_notes, segment_node, *rviz]


def generate_launch_description() -> LaunchDescription:
    """Declare the public launch arguments and start the node (and rviz where installed)."""
    share = Path(get_package_share_directory("mlesam_ros"))
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=str(share / "config" / "mlesam.yaml"),
            description="YAML with /**: ros__parameters: for the node",
        ),
        DeclareLaunchArgument(
            "use_rviz",
            default_value="true",
            description="start rviz2 (only where the rviz2 package is installed)",
        ),
        DeclareLaunchArgument(
            "fixed_frame",
            default_value=DEFAULT_FIXED_FRAME,
            description="rviz fixed frame, z up: base_link, or a camera-only rig's "
            "<camera>_link; a *_optical frame is shown through an upright frame beside it",
        ),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="configure+activate at start (false: managed via ros2 lifecycle)",
        ),
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
        DeclareLaunchArgument(
            "namespace",
            default_value="",
            description="node namespace: outputs move to /<namespace>/mlesam/...",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use /clock (bag playback)"
        ),
        DeclareLaunchArgument(
            "dds_profile",
            default_value="",
            description="Cyclone DDS profile for the node: images, loopback or an XML path "
            "(sets CYCLONEDDS_URI; needs RMW_IMPLEMENTATION=rmw_cyclonedds_cpp)",
        ),
        DeclareLaunchArgument(
            "dds_interface",
            default_value="",
            description="network interface (name or address) for the node's Cyclone DDS",
        ),
        DeclareLaunchArgument(
            "cameras",
            default_value="",
            description="several cameras in one node, e.g. front,left,rear,right (sets "
            "cameras.names; their topics: cameras.<name>.* in params_file)",
        ),
    ]
    arguments += [
        DeclareLaunchArgument(arg, default_value="", description=f"overrides {param}")
        for arg, param in TOPIC_ARGUMENTS.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
