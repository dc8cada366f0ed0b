"""The DDS transport live over loopback: player → `mlesam node --transport dds` → listener.

One run per module (a node subprocess on a private random domain, cyclonedds bound to
127.0.0.1 with multicast off, so nothing leaves the loopback interface and parallel runs do
not meet): the synthetic drive is played at its recorded pace with the thermal camera dead,
and the tests below check what the listener saw. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from mlesam_ros.dds.domain import localhost_config, open_participant, private_domain_id
from mlesam_ros.dds.endpoints import (
    DISCOVERY_TOPIC,
    PARTICIPANT_INFO,
    delete_participant,
    gid,
)
from mlesam_ros.dds.player import BagPlayer, TopicRecorder, warm_up
from mlesam_ros.msgs import header_stamp_ns, image_to_numpy
from mlesam_ros.pipeline import messages as m

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 8
FRAME_PERIOD_NS = 400_000_000  # the drive's recorded pace: 2.5 Hz keeps a loaded CPU ahead
SIZE = (96, 128)  # camera (H, W)
DIAGNOSTICS_PERIOD_S = 0.5
RGB, THERMAL = "/camera/image_raw", "/thermal/image_raw"


@dataclass
class LiveRun:
    """What one live run produced."""

    rgb_stamps: list[int]
    labels: list = field(default_factory=list)
    label_info: list = field(default_factory=list)
    diagnostics: list = field(default_factory=list)
    diagnostics_arrivals_ns: list[int] = field(default_factory=list)
    discovery: list = field(default_factory=list)
    labels_writer_guids: list[bytes] = field(default_factory=list)
    warm_labels: int = 0
    matched_after_exit: int = -1
    returncode: int | None = None
    shutdown_s: float = 0.0
    stdout: str = ""
    stderr: str = ""


def record_drive(bag: Path) -> None:
    from mlesam_ros.data.export import BagRecorder
    from mlesam_ros.data.synth import SyntheticDrive, default_rig

    rig = default_rig(width=SIZE[1], height=SIZE[0], lidar_beams=16, lidar_azimuth_steps=256)
    drive = SyntheticDrive(seed=5, rig=rig, frame_period_ns=FRAME_PERIOD_NS)
    with BagRecorder(bag) as recorder:
        for frame in drive.frames(FRAMES):
            recorder.write(frame)


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> LiveRun:
    folder = tmp_path_factory.mktemp("dds")
    bag = folder / "drive"
    record_drive(bag)
    config = folder / "cyclonedds.xml"
    config.write_text(localhost_config())
    domain = private_domain_id()  # private: parallel runs do not meet
    env = dict(os.environ)
    env.update(
        CYCLONEDDS_URI=config.as_uri(),
        ROS_DOMAIN_ID=str(domain),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.pop("ROS_DISTRO", None)  # the default graph layout (Jazzy's)
    out, err = (folder / "node.out").open("w+"), (folder / "node.err").open("w+")
    node = subprocess.Popen(
        [sys.executable, "-m", "mlesam_ros", "node", "--transport", "dds",
         "--params", str(ROOT / "config" / "mlesam.yaml"),
         "-p", f"diagnostics.period_s:={DIAGNOSTICS_PERIOD_S}"],
        cwd=ROOT, env=env, stdout=out, stderr=err,
    )  # fmt: skip
    participant = open_participant(domain, localhost_config())
    run = LiveRun(rgb_stamps=[])
    try:
        labels = TopicRecorder(participant, m.LABELS_TOPIC, m.IMAGE, depth=50)
        diagnostics = TopicRecorder(participant, m.DIAGNOSTICS_TOPIC, m.DIAGNOSTIC_ARRAY, depth=50)
        discovery = TopicRecorder(  # the node's default layout: Jazzy's (no ROS_DISTRO here)
            participant, DISCOVERY_TOPIC, PARTICIPANT_INFO, latched=True, dds_name=DISCOVERY_TOPIC,
            layout="jazzy",
        )  # fmt: skip
        player = BagPlayer(participant, bag, exclude=[THERMAL])  # the thermal camera is dead
        player.wait_for_subscribers([RGB, "/lidar/points", "/depth/image_raw"], timeout_s=90)
        # Warm-up frame (stamped well before the drive): the first inference allocates.
        warm_stamp = warm_up(player, labels, RGB, "/camera/camera_info")
        assert warm_stamp is not None, "no label for the warm-up frame within 60 s"
        played = player.play()
        run.rgb_stamps = played.stamps(RGB)
        wait_until(lambda: len(labels.messages()) >= len(run.rgb_stamps) + 1, 15)
        # Late joiner: LabelInfo was published once at start-up, long before this reader.
        label_info = TopicRecorder(participant, m.LABEL_INFO_TOPIC, m.LABEL_INFO, latched=True)
        label_info.wait_for(1, 10)
        # Two more periods, so the last report was built after the last frame.
        diagnostics.wait_for(max(4, len(diagnostics.messages()) + 2), 10)
        run.labels = [msg for msg in labels.messages() if header_stamp_ns(msg) != warm_stamp]
        run.warm_labels = len(labels.messages()) - len(run.labels)
        run.label_info = label_info.messages()
        run.diagnostics = diagnostics.messages()
        run.diagnostics_arrivals_ns = [item.arrival_ns for item in diagnostics.received]
        run.discovery = discovery.messages()
        handles = labels.reader.reader.get_matched_publications()
        run.labels_writer_guids = [
            labels.reader.reader.get_matched_publication_data(h).key.bytes for h in handles
        ]
        started = time.monotonic()
        node.send_signal(signal.SIGINT)
        run.returncode = node.wait(timeout=30)
        run.shutdown_s = time.monotonic() - started
        wait_until(lambda: labels.reader.publishers() == 0, 5)
        run.matched_after_exit = labels.reader.publishers()
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(timeout=10)
        out.seek(0), err.seek(0)
        run.stdout, run.stderr = out.read(), err.read()
        out.close(), err.close()
        delete_participant(participant)
    return run


def test_one_label_per_rgb_frame_with_matching_stamps(live):
    assert len(live.rgb_stamps) == FRAMES
    stamps = [header_stamp_ns(msg) for msg in live.labels]
    assert sorted(stamps) == sorted(live.rgb_stamps), live.stderr[-2000:]
    for msg in live.labels:
        labels = np.asarray(image_to_numpy(msg, m.LABELS_TOPIC))
        assert labels.shape == SIZE  # output at the RGB camera's resolution
        assert labels.max() < len(live.label_info[0].class_map)


def test_late_joining_label_info_subscriber_gets_the_latched_message(live):
    assert len(live.label_info) == 1
    classes = live.label_info[0].class_map
    assert [c.class_id for c in classes] == list(range(len(classes)))
    assert all(c.class_name for c in classes)


def test_diagnostics_arrive_at_their_period(live):
    gaps_s = np.diff(live.diagnostics_arrivals_ns) / 1e9
    assert len(gaps_s) >= 3
    assert 0.6 * DIAGNOSTICS_PERIOD_S < np.median(gaps_s) < 1.6 * DIAGNOSTICS_PERIOD_S


def test_dead_sensor_is_reported_while_labels_keep_flowing(live):
    last = {status.name: status for status in live.diagnostics[-1].status}
    assert last["/mlesam: thermal"].level == m.STALE
    assert last["/mlesam: thermal"].message == "no message received"
    assert last["/mlesam: rgb"].level == m.OK
    # LiDAR fused: its extrinsics came over DDS from the latched /tf_static into the tf buffer.
    assert last["/mlesam: points"].level == m.OK, last["/mlesam: points"].message
    values = {kv.key: kv.value for kv in last["/mlesam: pipeline"].values}
    # the drive and the warm-up frame (repeated until labelled)
    assert int(values["frames_published"]) == FRAMES + live.warm_labels
    assert len(live.labels) == FRAMES


def test_node_announces_itself_on_ros_discovery_info(live):
    assert live.discovery, "nothing on ros_discovery_info"
    info = live.discovery[-1]
    (node,) = info.node_entities_info_seq
    assert (node.node_namespace, node.node_name) == ("/", "mlesam")
    writer_gids = {bytes(g.data) for g in node.writer_gid_seq}
    # The writer our labels reader matched is one of the node's announced writers.
    assert live.labels_writer_guids
    assert set(live.labels_writer_guids) <= writer_gids  # Jazzy's GIDs: the 16-byte GUID
    assert len(node.reader_gid_seq) >= 5  # rgb, depth, thermal, points, infos, tf


def test_clean_shutdown(live):
    assert live.returncode == 0, live.stderr[-2000:]
    assert "Traceback" not in live.stderr
    assert f"{FRAMES + live.warm_labels} frames published" in live.stdout
    # Every RGB message the node received is labelled or counted as dropped, by reason.
    assert "RGB messages received" in live.stdout and "unaccounted" not in live.stdout
    assert live.shutdown_s < 15
    assert live.matched_after_exit == 0  # the node's writers left the graph


def test_gid_is_the_guid_padded_to_24_bytes_on_humble_only():
    participant = open_participant(private_domain_id(), localhost_config())
    try:
        value = gid(participant)
        assert len(value) == 24 and value[16:] == bytes(8)
        assert value[:16] == participant.guid.bytes
        assert gid(participant, "jazzy") == participant.guid.bytes
    finally:
        delete_participant(participant)


@pytest.mark.parametrize("distro", ["humble", "jazzy", "iron", "rolling"])
def test_graph_entry_is_seen_only_in_its_distributions_layout(distro):
    """Humble's ros_discovery_info (24-byte GIDs) and Iron's and later (16) are different
    types: a reader of the other layout never matches, so `ros2 node list` would miss us."""
    from mlesam_ros.dds.endpoints import GraphAnnouncer
    from mlesam_ros.dds.types import graph_layout

    layout = graph_layout(distro)
    assert layout == ("humble" if distro == "humble" else "jazzy")
    other = "jazzy" if layout == "humble" else "humble"
    domain = private_domain_id()
    node = open_participant(domain, localhost_config())
    peers = [open_participant(domain, localhost_config()) for _ in range(2)]  # one type each
    try:
        announcer = GraphAnnouncer(node, "seg", "/robot1", ros_distro=distro)
        same, different = (
            TopicRecorder(peer, DISCOVERY_TOPIC, PARTICIPANT_INFO, latched=True,
                          dds_name=DISCOVERY_TOPIC, layout=kind)
            for peer, kind in zip(peers, (layout, other), strict=True)
        )  # fmt: skip
        announcer.writers.append(announcer._writer.writer)
        announcer.announce()
        assert same.wait_for(1, timeout_s=10)
        info = same.messages()[-1]
        (entry,) = info.node_entities_info_seq
        assert (entry.node_namespace, entry.node_name) == ("/robot1", "seg")
        size = 24 if layout == "humble" else 16
        assert bytes(info.gid.data) == gid(node, layout) and len(gid(node, layout)) == size
        assert [bytes(g.data) for g in entry.writer_gid_seq] == [gid(announcer._writer.writer,
                                                                     layout)]  # fmt: skip
        time.sleep(0.5)
        assert different.messages() == [] and different.reader.publishers() == 0
    finally:
        for participant in (*peers, node):
            delete_participant(participant)
