"""``mlesam node --transport dds`` (the live node without ROS) and ``mlesam play`` (bag → DDS)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlesam_ros.dds.clock import DEFAULT_CLOCK_HZ
from mlesam_ros.engine import BACKENDS

TRANSPORTS = ("dds",)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``node`` and ``play`` subcommands."""
    node = subparsers.add_parser(
        "node",
        help="run the live segmentation node on DDS without ROS (ROS 2 nodes see it)",
        description=(
            "Run the segmentation node core live on DDS (cyclonedds, no ROS install): the "
            "same parameters YAML, topics and QoS as the ROS 2 node, ROS_DOMAIN_ID and "
            "ROS_LOCALHOST_ONLY / ROS_AUTOMATIC_DISCOVERY_RANGE honoured, visible in "
            "`ros2 node list` of the distribution --ros-distro names. Stops on Ctrl-C or "
            "SIGTERM. For the rclpy node use `ros2 launch mlesam_ros segment.launch.py`."
        ),
    )
    node.add_argument("--transport", choices=TRANSPORTS, default="dds", help="default: dds")
    node.add_argument("--params", type=Path, help="ROS 2 params YAML (/**: ros__parameters:)")
    node.add_argument("--name", default="mlesam", help="node name (default mlesam)")
    node.add_argument("--namespace", default="/", help="node namespace (default /)")
    node.add_argument("--domain-id", type=int, help="DDS domain (default: ROS_DOMAIN_ID or 0)")
    node.add_argument("--backend", choices=BACKENDS, help="overrides model.backend")
    node.add_argument("--model", type=Path, help="overrides model.path (.onnx/.engine/.pt)")
    node.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="override one parameter, ROS style (YAML value), e.g. -p diagnostics.period_s:=0.5",
    )
    node.add_argument(
        "--use-sim-time",
        action="store_true",
        help="node clock from /clock, as ROS 2's use_sim_time (also -p use_sim_time:=true or "
        "use_sim_time in --params); pair with `mlesam play --clock` for a recorded bag",
    )
    node.add_argument(
        "--ros-distro",
        default=os.environ.get("ROS_DISTRO") or "jazzy",
        help="the robot's ROS 2 distribution, for `ros2 node list` (Humble lists nodes in "
        "another layout than Iron and later); default: $ROS_DISTRO, else jazzy",
    )
    node.add_argument("--duration", type=float, help="stop after this many seconds")
    _dds_arguments(node)
    node.set_defaults(handler=_run_node)

    play = subparsers.add_parser(
        "play",
        help="publish a bag on DDS at its recorded pace (ros2 bag play without ROS)",
        description="Publish a rosbag2's messages on DDS (ROS 2 topic names and types).",
    )
    play.add_argument("--bag", type=Path, required=True, help="input bag folder")
    play.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1)")
    play.add_argument("--domain-id", type=int, help="DDS domain (default: ROS_DOMAIN_ID or 0)")
    play.add_argument("--exclude", action="append", default=[], help="leave out this topic")
    play.add_argument(
        "--wait-for", action="append", default=[], help="wait for a subscriber on this topic"
    )
    play.add_argument(
        "--clock",
        nargs="?",
        type=float,
        const=DEFAULT_CLOCK_HZ,
        metavar="HZ",
        help=f"also publish the bag's time on /clock (default {DEFAULT_CLOCK_HZ:g} Hz), as "
        "`ros2 bag play --clock`, for nodes with use_sim_time",
    )
    _dds_arguments(play)
    play.set_defaults(handler=_run_play)


def _dds_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dds-profile",
        metavar="PROFILE",
        help="Cyclone DDS settings for image-sized messages: images (64 MB socket receive "
        "buffer), loopback (the same on 127.0.0.1 only) or an XML file; overrides "
        "CYCLONEDDS_URI for this process (docs/inputs.md)",
    )
    parser.add_argument(
        "--dds-interface",
        metavar="NAME",
        help="network interface (name or address) to use, e.g. eth0; with or without a profile",
    )


def dds_config(profile: str | None, interface: str | None, logger=None) -> str | None:
    """Return the domain configuration the command line asks for (None: the environment's).

    Localhost only (``ROS_LOCALHOST_ONLY=1``, Jazzy's ``ROS_AUTOMATIC_DISCOVERY_RANGE``) still
    applies under a profile unless an interface is given or
    the profile is ``loopback`` (Cyclone adds up interface lists and refuses one interface
    twice); a warning says when the kernel will not grant the profile's receive buffer.
    """
    from mlesam_ros.dds.domain import localhost_config, localhost_only_from_env
    from mlesam_ros.dds.profiles import interface_snippet, profile_uri, receive_buffer_advice

    snippet = interface_snippet(interface) if interface else None
    if profile is None:
        return snippet
    localhost_only = localhost_only_from_env()
    localhost = (localhost_config() if localhost_only and not interface and profile != "loopback"
                 else None)  # fmt: skip
    advice = receive_buffer_advice()
    if advice and logger is not None:
        logger.warning(f"dds profile {profile}: {advice}")
    return profile_uri(profile, localhost, snippet)


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["a.b:=1", "c:=x"]`` → ``{"a.b": 1, "c": "x"}`` (values parsed as YAML)."""
    import yaml

    from mlesam_ros.text import quote

    overrides: dict[str, object] = {}
    for item in items:
        name, separator, value = item.partition(":=")
        if not separator or not name.strip():
            raise ValueError(f"-p {quote(item)}: write NAME:=VALUE, e.g. -p sync.timeout_s:=0.1")
        overrides[name.strip()] = yaml.safe_load(value)
    return overrides


def _cyclonedds_missing(command: str) -> bool:
    """Print the install command and return True when the ``[dds]`` extra is missing."""
    import sys

    from mlesam_ros.dds import require_cyclonedds

    try:
        require_cyclonedds()
    except ModuleNotFoundError as error:
        print(f"mlesam {command}: error: {error}", file=sys.stderr)
        return True
    return False


def _run_node(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from mlesam_ros.pipeline.config import command_line_parameters
    from mlesam_ros.pipeline.params_file import is_ros_parameter, node_fqn

    if _cyclonedds_missing("node"):
        return 2
    from mlesam_ros.dds.transport import run_node

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    log = logging.getLogger("mlesam.dds")
    config = dds_config(args.dds_profile, args.dds_interface, log)
    # The file's sections for this node (its name and namespace), as ROS reads them.
    parameters = command_line_parameters(args.params, args.backend, args.model,
                                         fqn=node_fqn(args.name, args.namespace),
                                         warn=log.warning)  # fmt: skip
    parameters.update(parse_overrides(args.param))
    # ROS's own parameters (use_sim_time) are not the node core's: the transport takes them.
    ros = {name: parameters.pop(name) for name in list(parameters) if is_ros_parameter(name)}
    use_sim_time = bool(ros.get("use_sim_time", False)) or args.use_sim_time
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    report = run_node(
        parameters,
        stop=stop,
        node_name=args.name,
        namespace=args.namespace,
        domain_id=args.domain_id,
        config=config,
        logger=log,
        use_sim_time=use_sim_time,
        ros_distro=args.ros_distro,
    )
    print(f"mlesam node: stopped; {report.text()}")
    return 0


def _run_play(args: argparse.Namespace) -> int:
    if _cyclonedds_missing("play"):
        return 2
    import logging

    from mlesam_ros.dds.domain import open_participant
    from mlesam_ros.dds.player import BagPlayer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = dds_config(args.dds_profile, args.dds_interface, logging.getLogger("mlesam.play"))
    participant = open_participant(args.domain_id, config)
    player = BagPlayer(
        participant, args.bag, rate=args.rate, exclude=args.exclude, clock_hz=args.clock
    )
    if args.wait_for:
        player.wait_for_subscribers(args.wait_for, timeout_s=60.0)
    result = player.play()
    clock = f", /clock at {args.clock:g} Hz" if args.clock else ""
    print(f"mlesam play: {len(result.messages)} messages from {args.bag}{clock}")
    if result.skipped:
        print(f"mlesam play: {sum(result.skipped.values())} malformed messages skipped: "
              f"{result.skipped_text()}")  # fmt: skip
    return 0
