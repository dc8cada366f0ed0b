"""The shipped Cyclone DDS profiles: found, valid for Cyclone, combined, and the kernel advice."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from mlesam_ros.dds.profiles import (
    DDS_PROFILES,
    PROFILE_RECEIVE_BUFFER,
    interface_snippet,
    profile_path,
    profile_uri,
    receive_buffer_advice,
)

NS = {"c": "https://cdds.io/config"}


@pytest.mark.parametrize("profile", sorted(DDS_PROFILES))
def test_profiles_ask_for_a_large_buffer_without_refusing_to_start(profile) -> None:
    root = ElementTree.parse(profile_path(profile)).getroot()
    (buffer,) = root.findall("c:Domain/c:Internal/c:SocketReceiveBufferSize", NS)
    # Cyclone refuses to start when it cannot get "min": only "max" asks for 64 MB.
    assert buffer.get("min") == "default" and buffer.get("max") == "64MB"
    assert PROFILE_RECEIVE_BUFFER == 64 * 1024 * 1024
    loopback = root.findall("c:Domain/c:General/c:Interfaces/c:NetworkInterface", NS)
    assert [n.get("address") for n in loopback] == (["127.0.0.1"] if profile == "loopback" else [])


def test_profile_names_paths_and_errors(tmp_path) -> None:
    mine = tmp_path / "mine.xml"
    mine.write_text("<CycloneDDS/>")
    assert profile_path(str(mine)) == mine
    with pytest.raises(FileNotFoundError, match=r"'fast' is neither a shipped profile "
                                                r"\(images, loopback\) nor an existing XML"):
        profile_path("fast")
    uri = profile_uri("images", None, interface_snippet("eth0"))
    first, second = uri.split(",", 1)
    assert first.startswith("file://") and first.endswith("/config/cyclonedds.xml")
    assert '<NetworkInterface name="eth0"/>' in second
    assert 'address="10.0.0.2"' in interface_snippet("10.0.0.2")


@pytest.mark.parametrize(
    ("content", "advised"),
    [("212992\n", True), ("67108864\n", False), ("2147483647\n", False), ("", False)],
    ids=["ubuntu-default", "enough", "ros-docs-value", "unreadable"],
)
def test_receive_buffer_advice_names_the_sysctl(tmp_path, content, advised) -> None:
    rmem_max = tmp_path / "rmem_max"
    rmem_max.write_text(content)
    advice = receive_buffer_advice(rmem_max=rmem_max)
    assert (advice is not None) == advised
    if advised:
        assert "net.core.rmem_max is 212992 bytes" in advice
        assert "sudo sysctl -w net.core.rmem_max=67108864" in advice
    assert receive_buffer_advice(rmem_max=tmp_path / "absent") is None


def test_cyclone_takes_a_profile_with_localhost_and_an_interface(monkeypatch) -> None:
    """The comma-separated list the launch file and `mlesam node --dds-profile` hand Cyclone."""
    pytest.importorskip("cyclonedds")
    from mlesam_ros.dds.commands import dds_config
    from mlesam_ros.dds.domain import open_participant, private_domain_id
    from mlesam_ros.dds.endpoints import delete_participant

    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    for profile, interface, parts in (("images", None, 2), ("images", "127.0.0.1", 2),
                                      ("loopback", None, 1)):  # fmt: skip
        config = dds_config(profile, interface)
        assert config.count(",") == parts - 1, config
        delete_participant(open_participant(private_domain_id(), config))  # Cyclone takes it
    assert dds_config(None, None) is None
