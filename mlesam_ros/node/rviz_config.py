"""Make rviz show what the launch file set up: topics and fixed frame (no ROS imports).

The shipped ``config/mlesam.rviz`` names the default topics; the launch file renders a copy
with the topics of *this* instance (namespace, node name, ``rgb_topic``) and the chosen
``fixed_frame``, so rviz never shows an empty display or "Fixed Frame [base_link] does not
exist" because the launch arguments moved something. rviz configs are YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlesam_ros.pipeline import messages as m

# rviz display name in config/mlesam.rviz → what it shows.
DISPLAY_TOPICS = {
    "Labelled points": "labeled_points",
    "Segmentation overlay": "labels_color",
    "Camera (raw)": "rgb",
}


def instance_topics(rgb_topic: str, namespace: str = "", node_name: str = m.NODE_NAME) -> dict:
    """Fully qualified topics of one node instance (outputs are node-relative ``~/...``)."""
    return {
        "labeled_points": m.resolve_topic(m.LABELED_POINTS_OUT, node_name, namespace or "/"),
        "labels_color": m.resolve_topic(m.LABELS_COLOR_OUT, node_name, namespace or "/"),
        "labels": m.resolve_topic(m.LABELS_OUT, node_name, namespace or "/"),
        "rgb": m.resolve_topic(rgb_topic, node_name, namespace or "/"),
    }


def render_rviz_config(template: str | Path, fixed_frame: str, topics: dict[str, str]) -> str:
    """Return the rviz config ``template`` with ``fixed_frame`` and the displays' topics set."""
    import yaml

    config: dict[str, Any] = yaml.safe_load(Path(template).read_text())
    manager = config["Visualization Manager"]
    manager["Global Options"]["Fixed Frame"] = fixed_frame
    for display in manager["Displays"]:
        key = DISPLAY_TOPICS.get(display.get("Name", ""))
        if key is not None:
            display["Topic"]["Value"] = topics[key]
    return yaml.safe_dump(config, sort_keys=False)
