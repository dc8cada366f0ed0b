"""DDS types generated from the typestore: ROS 2 names, and cyclonedds' own CDR == rosbags' CDR."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from mlesam_ros.dds import domain
from mlesam_ros.dds.types import dds_topic_name, dds_type_name, idl_struct
from mlesam_ros.msgs import (
    array_to_pointcloud2,
    make_header,
    matrices_to_tf_message,
    numpy_to_image,
)
from mlesam_ros.pipeline import messages as m


def to_plain(message, msgtype: str):
    """Build the plain generated IdlStruct for a rosbags message, field by field (slow path)."""
    store = m.ensure_vision_msgs()
    cls = idl_struct(msgtype, carrier=False)
    values = {}
    for name, (kind, detail) in store.fielddefs[msgtype][1]:
        value = getattr(message, name)
        kind = int(kind)
        if kind == 2:
            value = to_plain(value, detail)
        elif kind in (3, 4):
            (element_kind, element), _ = detail
            if int(element_kind) == 2:
                value = [to_plain(item, element) for item in value]
            else:
                value = [item.item() if hasattr(item, "item") else item for item in value]
        values[name] = value
    return cls(**values)


def sample_messages():
    header = make_header(1_700_000_000_123_456_789, "camera")
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    points = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("label", "<u2")])
    points["x"], points["label"] = [1.5, -2.0, 3.25], [1, 7, 24]
    statuses = [m.diagnostic_status("mlesam: rgb", m.WARN, "late", {"rate_hz": 9.5, "ok": True})]
    tf = matrices_to_tf_message({("base_link", "camera"): np.eye(4)}, 1_700_000_000_000_000_001)
    return [
        (m.IMAGE, numpy_to_image(rgb, "rgb8", header)),
        (m.IMAGE, numpy_to_image(np.full((3, 5), 1.5, np.float32), "32FC1", header)),
        (m.POINTCLOUD2, array_to_pointcloud2(points, header)),
        (m.LABEL_INFO, m.label_info(["road", "car", "person"], 42)),
        (m.DIAGNOSTIC_ARRAY, m.diagnostic_array(statuses, 43)),
        (m.TF_MESSAGE, tf),
    ]


@pytest.mark.parametrize("index", range(6))
def test_cyclonedds_serialiser_and_rosbags_cdr_agree(index):
    msgtype, message = sample_messages()[index]
    store = m.ensure_vision_msgs()
    rosbags_cdr = bytes(store.serialize_cdr(message, msgtype))
    native = to_plain(message, msgtype).serialize(use_version_2=False)
    assert native == rosbags_cdr  # same wire bytes: the generated type describes the message
    carrier = idl_struct(msgtype)
    sample = carrier.deserialize(native)
    assert sample.serialize(use_version_2=False) == rosbags_cdr
    decoded = sample.message()
    assert bytes(store.serialize_cdr(decoded, msgtype)) == rosbags_cdr


def test_camera_info_type_round_trips():
    store = m.ensure_vision_msgs()
    info = store.types[m.CAMERA_INFO](
        header=make_header(5, "cam"), height=48, width=64, distortion_model="plumb_bob",
        d=np.array([0.1, -0.2, 0.0, 0.0, 0.01]), k=np.arange(9.0), r=np.eye(3).ravel(),
        p=np.arange(12.0), binning_x=0, binning_y=0,
        roi=store.types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=1, y_offset=2, height=3, width=4, do_rectify=True),
    )  # fmt: skip
    cdr = bytes(store.serialize_cdr(info, m.CAMERA_INFO))
    assert to_plain(info, m.CAMERA_INFO).serialize(use_version_2=False) == cdr
    decoded = idl_struct(m.CAMERA_INFO).from_cdr(cdr).message()
    np.testing.assert_array_equal(decoded.k, info.k)


def test_ros2_dds_names():
    assert dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert idl_struct(m.LABEL_INFO).__idl_typename__ == "vision_msgs::msg::dds_::LabelInfo_"
    assert dds_topic_name("/mlesam/labels") == "rt/mlesam/labels"
    with pytest.raises(ValueError, match="absolute topic names"):
        dds_topic_name("labels")
    with pytest.raises(ValueError, match="package/msg/Name"):
        dds_type_name("Image")
    with pytest.raises(ValueError, match=r"register its \.msg first"):
        idl_struct("nope_msgs/msg/Nothing")


def test_generated_types_are_final_and_unkeyed():
    # ROS 2 peers refuse appendable types and never match keyed ones (probe findings).
    from cyclonedds.idl._support import DataRepresentationFlags

    cls = idl_struct(m.IMAGE)
    annotations = getattr(cls, "__idl_annotations__", {})
    assert annotations.get("extensibility", "final") == "final"
    assert "keylist" not in annotations
    cls.__idl__.populate()
    assert cls.__idl__.keyless
    assert cls.__idl__.supported_versions & DataRepresentationFlags.FLAG_XCDR1


def test_writer_refuses_xcdr2():
    sample = idl_struct(m.IMAGE).from_cdr(b"\x00\x01\x00\x00")
    with pytest.raises(ValueError, match="XCDR1"):
        sample.serialize(use_version_2=True)


def test_invalid_sample_key_decodes_to_none():
    assert idl_struct(m.IMAGE).deserialize_key(b"\x00\x01\x00\x00") is None


def test_domain_id_and_localhost_from_environment():
    assert domain.domain_id_from_env({}) == 0
    assert domain.domain_id_from_env({"ROS_DOMAIN_ID": " 42 "}) == 42
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID: expected an integer 0-232"):
        domain.domain_id_from_env({"ROS_DOMAIN_ID": "lab"})
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID"):
        domain.domain_id_from_env({"ROS_DOMAIN_ID": "300"})
    assert domain.config_from_env({}) is None
    config = domain.config_from_env({"ROS_LOCALHOST_ONLY": "1"})
    assert '<NetworkInterface address="127.0.0.1"/>' in config
    assert "<AllowMulticast>false</AllowMulticast>" in config
    # Jazzy's spelling (ROS_LOCALHOST_ONLY is deprecated there); SUBNET is the network default.
    for discovery_range in ("LOCALHOST", "off"):
        assert domain.config_from_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": discovery_range}) == config
    for discovery_range in ("SUBNET", "SYSTEM_DEFAULT", ""):
        assert domain.config_from_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": discovery_range}) is None
    assert domain.config_from_env({"ROS_LOCALHOST_ONLY": "0"}) is None
    # A user's own cyclonedds configuration wins over ROS_LOCALHOST_ONLY.
    assert domain.config_from_env({"ROS_LOCALHOST_ONLY": "1", "CYCLONEDDS_URI": "x.xml"}) is None


def test_topic_name_resolution_is_the_cores():
    assert m.resolve_topic("~/labels", "mlesam") == "/mlesam/labels"
    assert m.resolve_topic("~/labels", "seg", "/robot1") == "/robot1/seg/labels"
    assert m.resolve_topic("diagnostics", "seg", "robot1") == "/robot1/diagnostics"
    assert m.resolve_topic("/tf", "seg", "/robot1") == "/tf"


def test_qos_matches_the_rclpy_node():
    from cyclonedds.qos import Policy

    latched = domain.writer_qos(latched=True)
    assert latched[Policy.Durability] == Policy.Durability.TransientLocal
    assert latched[Policy.History] == Policy.History.KeepLast(1)
    assert latched[Policy.DataRepresentation].use_cdrv0_representation
    sensor = domain.reader_qos(reliable=False)
    assert sensor[Policy.Reliability] == Policy.Reliability.BestEffort
    assert sensor[Policy.History] == Policy.History.KeepLast(5)
    assert sensor[Policy.Durability] == Policy.Durability.Volatile


def test_node_command_is_registered_and_parses_ros_style_overrides():
    from mlesam_ros.cli import build_parser
    from mlesam_ros.dds.commands import parse_overrides

    args = build_parser().parse_args(
        ["node", "--params", "config/mlesam.yaml", "-p", "diagnostics.period_s:=0.5"]
    )
    assert (args.transport, args.name, args.namespace) == ("dds", "mlesam", "/")
    assert parse_overrides(args.param) == {"diagnostics.period_s": 0.5}
    assert parse_overrides(["topics.rgb:=/front/image", "output.confidence:=false"]) == {
        "topics.rgb": "/front/image",
        "output.confidence": False,
    }
    with pytest.raises(ValueError, match="write NAME:=VALUE"):
        parse_overrides(["sync.timeout_s=0.1"])
