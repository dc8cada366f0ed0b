"""The ROS side of a camera rig, without ROS: descriptors, rviz view, DDS accounting."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlesam_ros.node.descriptors import descriptor_fields
from mlesam_ros.node.rviz_config import instance_topics, render_rviz_config
from mlesam_ros.pipeline.config import parameter_names

RVIZ = Path(__file__).resolve().parents[1] / "config" / "mlesam.rviz"


def test_every_camera_parameter_has_a_descriptor_and_the_list_takes_text_or_a_list() -> None:
    names = parameter_names({"cameras.names": "front,rear"})
    for name in names:
        assert descriptor_fields(name)["type"].startswith("PARAMETER_")
    listing = descriptor_fields("cameras.names")
    assert listing["type"] == "PARAMETER_STRING" and listing["dynamic_typing"] is True
    offset = descriptor_fields("cameras.rear.offset_points_s")
    assert offset["floating_point_range"] == (-10.0, 10.0)
    assert "[set live]" in offset["description"]
    assert descriptor_fields("cameras.rear.rgb")["dynamic_typing"] is False
    assert "static" in descriptor_fields("cameras.rear.rgb")["description"]


def test_rviz_shows_one_overlay_per_camera_and_the_fused_cloud() -> None:
    topics = instance_topics("/front/image_raw", "car", cameras=("front", "left", "rear"))
    config = yaml.safe_load(render_rviz_config(RVIZ, "base_link", topics))
    shown = {d["Name"]: d["Topic"]["Value"]
             for d in config["Visualization Manager"]["Displays"] if "Topic" in d}  # fmt: skip
    assert shown == {
        "Labelled points": "/car/mlesam/labeled_points",
        "Segmentation overlay": "/car/mlesam/front/labels_color",
        "Segmentation overlay (left)": "/car/mlesam/left/labels_color",
        "Segmentation overlay (rear)": "/car/mlesam/rear/labels_color",
        "Camera (raw)": "/front/image_raw",
    }


def test_the_dds_node_counts_every_cameras_rgb_messages(monkeypatch) -> None:
    import logging
    import threading

    from mlesam_ros.dds import transport as dds

    class Transport:
        def __init__(self, parameters, **kwargs) -> None:
            self.received = {"/front/image_raw": 4, "/left/image_raw": 3, "/lidar/points": 2}
            self.on_issue = None
            self.participant = type("Participant", (), {"domain_id": 0})()
            self.fully_qualified_name = "/mlesam"
            self.logger = logging.getLogger("test.cameras")

        def stop_inputs(self) -> None:
            pass

        def close(self) -> None:
            pass

    class Core:
        def __init__(self, transport, threaded, segmenter) -> None:
            from mlesam_ros.pipeline.config import NodeConfig
            from mlesam_ros.pipeline.diagnostics import PipelineStats

            self.config = NodeConfig.from_parameters({"cameras.names": "front,left"})
            self.stats = PipelineStats(published=6)

        def report_issue(self, *args) -> None:
            pass

        def configure(self) -> None:
            pass

        def cleanup(self) -> None:
            pass

        def dropped_frames(self) -> dict:
            return {"worker_busy": 1}

    monkeypatch.setattr(dds, "DdsTransport", Transport)
    monkeypatch.setattr(dds, "SegmentationCore", Core)
    stop = threading.Event()
    stop.set()
    report = dds.run_node({}, stop=stop)
    assert report.rgb_received == 7 and report.unaccounted == 0


def test_the_users_page_lists_every_per_camera_parameter() -> None:
    from mlesam_ros.pipeline.parameters import CAMERA_PARAMETERS

    page = (Path(__file__).resolve().parents[1] / "docs" / "cameras.md").read_text()
    for key in CAMERA_PARAMETERS:
        assert f"`{key}`" in page, key
    assert "`cameras.names`" in page and "`cameras.batch_window_s`" in page
