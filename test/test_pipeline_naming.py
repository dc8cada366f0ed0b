"""The node's name where users see it: distinct /diagnostics per instance, named once in logs."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from conftest import FakeSegmenter

from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.naming import NamedLogger, fully_qualified_name, logger_name


def test_names_follow_ros() -> None:
    assert fully_qualified_name() == "/mlesam"
    assert fully_qualified_name("mlesam", "/front/") == "/front/mlesam"
    assert fully_qualified_name("seg", "robot/front") == "/robot/front/seg"
    assert logger_name("/robot/front/seg") == "robot.front.seg"  # rcl's logger name


def test_named_logger_names_the_node_once(caplog) -> None:
    logger = NamedLogger(logging.getLogger("mlesam.test"), "front.mlesam")
    with caplog.at_level(logging.INFO, logger="mlesam.test"):
        logger.info("active")
        logger.warning("[depth /d] truncated")
    assert caplog.messages == ["front.mlesam: active", "front.mlesam: [depth /d] truncated"]


def test_two_namespaced_dds_nodes_publish_distinct_diagnostics(caplog) -> None:
    """Two instances on one /diagnostics: statuses and hardware_id carry each one's FQN."""
    pytest.importorskip("cyclonedds")
    from mlesam_ros.dds.domain import localhost_config, open_participant, private_domain_id
    from mlesam_ros.dds.endpoints import delete_participant
    from mlesam_ros.dds.player import TopicRecorder
    from mlesam_ros.dds.transport import run_node

    domain = private_domain_id()
    stop, reports, threads = threading.Event(), [], []
    parameters = {"diagnostics.period_s": 0.2, "topics.depth": "", "topics.thermal": "",
                  "topics.points": ""}  # fmt: skip
    peer = open_participant(domain, localhost_config())
    diagnostics = TopicRecorder(peer, m.DIAGNOSTICS_TOPIC, m.DIAGNOSTIC_ARRAY, depth=50)
    logger = logging.getLogger("mlesam.dds.naming-test")
    with caplog.at_level(logging.INFO, logger=logger.name):
        for namespace in ("front", "rear"):
            threads.append(threading.Thread(target=lambda namespace=namespace: reports.append(
                run_node(parameters, stop=stop, namespace=namespace, domain_id=domain,
                         config=localhost_config(), segmenter=FakeSegmenter(), logger=logger))))
            threads[-1].start()
        try:
            deadline = time.monotonic() + 60
            names: dict[str, str] = {}
            while time.monotonic() < deadline and len(names) < 4:
                for array in diagnostics.messages():
                    names.update({status.name: status.hardware_id for status in array.status})
                time.sleep(0.1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            delete_participant(peer)
    assert names == {
        "/front/mlesam: pipeline": "/front/mlesam", "/front/mlesam: rgb": "/front/mlesam",
        "/rear/mlesam: pipeline": "/rear/mlesam", "/rear/mlesam: rgb": "/rear/mlesam",
    }  # fmt: skip
    lines = caplog.messages
    assert any(line.startswith("front.mlesam: fake on cpu") for line in lines), lines
    assert any(line.startswith("rear.mlesam: node /rear/mlesam on DDS domain") for line in lines)
    assert not [line for line in lines if line.count("mlesam:") != 1]
