"""Type hashes (REP 2011): computed as rosidl does, announced in user data as Jazzy does.

The expected values were read off real ROS 2 Jazzy systems: ``ros2 topic info -v`` prints
"Topic type hash: RIHS01_..." for each endpoint (Image, PointCloud2), and rcl's own test
(rcl/test/rcl/test_type_hash.cpp) embeds PointCloud2's hash "copied directly from generated
code"; Header, CameraInfo and DiagnosticArray are the values sensor_msgs/std_msgs/
diagnostic_msgs generate in Jazzy; the rest are the type descriptions a Jazzy build generates
(share/<package>/msg/<Name>.json), every type the node and the player send.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("cyclonedds")

from cyclonedds.qos import Policy

from mlesam_ros.dds.domain import localhost_config, open_participant, private_domain_id
from mlesam_ros.dds.endpoints import RosReader, RosWriter, delete_participant
from mlesam_ros.dds.types import type_hash, type_hash_user_data

JAZZY = {
    "sensor_msgs/msg/Image":
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    "sensor_msgs/msg/PointCloud2":
        "RIHS01_9198cabf7da3796ae6fe19c4cb3bdd3525492988c70522628af5daa124bae2b5",
    "sensor_msgs/msg/CameraInfo":
        "RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
    "std_msgs/msg/Header":
        "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    "diagnostic_msgs/msg/DiagnosticArray":
        "RIHS01_5a8a36efb05fb25070fa0fb3810290c0e6cd4862b54a8fb975a1ee8dc55a333e",
    "sensor_msgs/msg/CompressedImage":
        "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
    "vision_msgs/msg/LabelInfo":
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "tf2_msgs/msg/TFMessage":
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
    "rosgraph_msgs/msg/Clock":
        "RIHS01_692f7a66e93a3c83e71765d033b60349ba68023a8c689a79e48078bcb5c58564",
}  # fmt: skip
# The ROS graph's own messages (ros_discovery_info), whose layout changed after Humble: Gid
# holds a .msg `char`, which rosidl hashes as uint8. From a Jazzy build's
# share/rmw_dds_common/msg/*.json (the type descriptions rosidl generates).
JAZZY_GRAPH = {
    "rmw_dds_common/msg/Gid":
        "RIHS01_ab6f21cfbb0a6dbb837161e1110c2051a2850ed9f9c53944d7115d9bcebedf71",
    "rmw_dds_common/msg/ParticipantEntitiesInfo":
        "RIHS01_91a0593bacdcc50ea9bdcf849a938b128412cc1ea821245c663bcd26f83c295e",
}  # fmt: skip


@pytest.mark.parametrize("msgtype", sorted(JAZZY))
def test_type_hashes_equal_what_jazzy_announces(msgtype: str) -> None:
    assert type_hash(msgtype) == JAZZY[msgtype]


@pytest.mark.parametrize("msgtype", sorted(JAZZY_GRAPH))
def test_graph_type_hashes_equal_jazzys_with_char_as_uint8(msgtype: str) -> None:
    assert type_hash(msgtype, "jazzy") == JAZZY_GRAPH[msgtype]
    # Humble's layout (24-byte GIDs) is another type, so another hash.
    assert type_hash(msgtype) != JAZZY_GRAPH[msgtype]


def test_user_data_is_rmw_dds_common_format_and_unknown_types_announce_nothing() -> None:
    assert type_hash_user_data("sensor_msgs/msg/Image") == (
        b"typehash=" + JAZZY["sensor_msgs/msg/Image"].encode() + b";"
    )
    assert type_hash_user_data("no_msgs/msg/Nothing") == b""
    with pytest.raises(ValueError, match="type hash: unknown message type 'no_msgs/msg/Nothing'"):
        type_hash("no_msgs/msg/Nothing")


def test_a_writer_announces_its_type_hash_in_discovery() -> None:
    """A subscription sees the hash in the matched writer's discovery data (user data)."""
    participant = open_participant(private_domain_id(), localhost_config())
    writer = RosWriter(participant, "/mlesam/labels", "sensor_msgs/msg/Image")
    reader = RosReader(participant, "/mlesam/labels", "sensor_msgs/msg/Image",
                       lambda message: None, reliable=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not reader.reader.get_matched_publications() and time.monotonic() < deadline:
            time.sleep(0.05)
        (handle,) = reader.reader.get_matched_publications()
        publication = reader.reader.get_matched_publication_data(handle)
        assert publication.type_name == "sensor_msgs::msg::dds_::Image_"
        assert publication.qos[Policy.Userdata].data == (
            b"typehash=" + JAZZY["sensor_msgs/msg/Image"].encode() + b";"
        )
    finally:
        reader.close()
        del reader, writer
        delete_participant(participant)
