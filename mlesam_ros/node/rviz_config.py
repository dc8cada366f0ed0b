"""Make rviz show what the launch file set up: topics, an upright view, one config file.

The shipped ``config/mlesam.rviz`` names the default topics; the launch file renders a copy
with the topics of *this* instance (namespace, node name, ``rgb_topic``) and the chosen
``fixed_frame``, so rviz never shows an empty display or "Fixed Frame [base_link] does not
exist" because the launch arguments moved something. rviz configs are YAML.

rviz's views keep the fixed frame's z axis up. A camera's optical frame (REP 103: z forward,
x right, y down) would show the scene on its side, so an optical fixed frame is replaced by
an upright frame at the same place (x forward, y left, z up) that the launch file publishes
as a static transform. The rendered config goes to one file per namespace under
``$ROS_HOME/mlesam`` (default ``~/.ros``), overwritten at every launch: nothing piles up.
No ROS imports here, so all of it is tested without ROS.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlesam_ros.pipeline import messages as m

# rviz display name in config/mlesam.rviz → what it shows.
DISPLAY_TOPICS = {
    "Labelled points": "labeled_points",
    "Segmentation overlay": "labels_color",
    "Camera (raw)": "rgb",
}
OPTICAL_SUFFIXES = ("_optical_frame", "_optical")  # REP 103 names of z-forward camera frames
UPRIGHT_SUFFIX = "_upright"
# Rotation of the upright frame (x forward, y left, z up) in the optical frame (x right, y
# down, z forward), as a quaternion (x, y, z, w): the inverse of the usual body → optical
# rotation (-0.5, 0.5, -0.5, 0.5) that camera drivers publish.
UPRIGHT_IN_OPTICAL = (0.5, -0.5, 0.5, 0.5)


def instance_topics(rgb_topic: str, namespace: str = "", node_name: str = m.NODE_NAME,
                    cameras: Sequence[str] = ()) -> dict:  # fmt: skip
    """Fully qualified topics of one node instance (outputs are node-relative ``~/...``).

    With ``cameras`` (a rig, ``cameras.names``) the overlay and labels are the first
    camera's, and ``cameras`` maps each camera to its overlay topic; ``rgb_topic`` is then
    the first camera's image.
    """
    namespace = namespace or "/"
    first = f"~/{cameras[0]}/" if cameras else "~/"
    return {
        "labeled_points": m.resolve_topic(m.LABELED_POINTS_OUT, node_name, namespace),
        "labels_color": m.resolve_topic(f"{first}labels_color", node_name, namespace),
        "labels": m.resolve_topic(f"{first}labels", node_name, namespace),
        "rgb": m.resolve_topic(rgb_topic, node_name, namespace),
        **({"cameras": {camera: m.resolve_topic(f"~/{camera}/labels_color", node_name,
                                                namespace) for camera in cameras}}
           if cameras else {}),
    }  # fmt: skip


def is_optical_frame(frame: str) -> bool:
    """Whether ``frame`` is named as a z-forward camera optical frame (REP 103)."""
    return frame.endswith(OPTICAL_SUFFIXES)


def upright_view(fixed_frame: str) -> tuple[str, list[str] | None]:
    """Return rviz's fixed frame for ``fixed_frame`` and the static transform it needs.

    An optical frame becomes ``<frame>_upright`` and the list is the argument list of
    ``tf2_ros static_transform_publisher`` (Humble and later) that publishes it; any other
    frame is kept, with ``None``.
    """
    if not is_optical_frame(fixed_frame):
        return fixed_frame, None
    upright = fixed_frame + UPRIGHT_SUFFIX
    qx, qy, qz, qw = UPRIGHT_IN_OPTICAL
    arguments = ["--frame-id", fixed_frame, "--child-frame-id", upright,
                 "--qx", str(qx), "--qy", str(qy), "--qz", str(qz), "--qw", str(qw)]  # fmt: skip
    return upright, arguments


def rendered_config_path(namespace: str = "", ros_home: str | Path | None = None) -> Path:
    """Where the launch file writes this instance's rviz config (overwritten each launch)."""
    home = Path(ros_home or os.environ.get("ROS_HOME") or Path.home() / ".ros")
    name = namespace.strip("/").replace("/", "_") or "default"
    return home / "mlesam" / f"rviz_{name}.rviz"


def render_rviz_config(template: str | Path, fixed_frame: str, topics: dict[str, str]) -> str:
    """Return the rviz config ``template`` with ``fixed_frame`` and the displays' topics set."""
    import yaml

    config: dict[str, Any] = yaml.safe_load(Path(template).read_text())
    manager = config["Visualization Manager"]
    manager["Global Options"]["Fixed Frame"] = fixed_frame
    displays = []
    for display in manager["Displays"]:
        key = DISPLAY_TOPICS.get(display.get("Name", ""))
        if key is not None:
            display["Topic"]["Value"] = topics[key]
        displays.append(display)
        if key == "labels_color":  # a rig: one overlay per camera after the first
            for camera, topic in list(topics.get("cameras", {}).items())[1:]:
                copy = yaml.safe_load(yaml.safe_dump(display))
                copy["Name"] = f"{display['Name']} ({camera})"
                copy["Topic"]["Value"] = topic
                displays.append(copy)
    manager["Displays"] = displays
    return yaml.safe_dump(config, sort_keys=False)


def write_rviz_config(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically (a running rviz never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".rviz.partial")
    partial.write_text(text)
    partial.replace(path)
    return path
