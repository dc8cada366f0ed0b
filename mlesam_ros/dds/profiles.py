"""The shipped Cyclone DDS profiles (``config/cyclonedds*.xml``) and the kernel limit they meet.

Image-sized best-effort messages need a large socket receive buffer or whole frames are lost
(docs/inputs.md). ``images`` asks for 64 MB on every socket, ``loopback`` also keeps the
traffic on 127.0.0.1. The launch file applies a profile to the rclpy node through
``CYCLONEDDS_URI``; ``mlesam node``/``mlesam play --dds-profile`` apply it to their own
participant. Cyclone takes a comma-separated list of files and XML snippets, later ones
overriding earlier ones, so a profile combines with ``ROS_LOCALHOST_ONLY`` or an interface.

Pure Python (no cyclonedds import): the launch file uses it too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DDS_PROFILES = {"images": "cyclonedds.xml", "loopback": "cyclonedds_loopback.xml"}
PROFILE_RECEIVE_BUFFER = 64 * 1024 * 1024
"""What the profiles ask for (``SocketReceiveBufferSize max``): the kernel caps it."""
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")
_SOURCE_CONFIG = Path(__file__).resolve().parents[2] / "config"


def _config_folders() -> list[Path]:
    """Return the source tree's ``config/``, then installed ``share/mlesam_ros/config``."""
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    return [_SOURCE_CONFIG] + [Path(p) / "share" / "mlesam_ros" / "config" for p in prefixes if p]


def profile_path(profile: str) -> Path:
    """Return the XML file of a shipped profile (``images``, ``loopback``) or of a path."""
    if profile not in DDS_PROFILES:
        path = Path(profile).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"dds profile: {profile!r} is neither a shipped profile "
                f"({', '.join(DDS_PROFILES)}) nor an existing XML file"
            )
        return path.resolve()
    candidates = [folder / DDS_PROFILES[profile] for folder in _config_folders()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"dds profile {profile}: {DDS_PROFILES[profile]} is not in this install (looked in "
        + ", ".join(str(c.parent) for c in candidates) + ")"
    )


def interface_snippet(interface: str) -> str:
    """Cyclone XML choosing one network interface by name (``eth0``) or address."""
    key = "address" if interface.replace(".", "").isdigit() else "name"
    return (f'<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface {key}='
            f'"{interface}"/></Interfaces></General></Domain></CycloneDDS>')  # fmt: skip


def profile_uri(profile: str, *extra: str | None) -> str:
    """``CYCLONEDDS_URI`` value: the profile's file, then ``extra`` snippets (None skipped)."""
    return ",".join([profile_path(profile).as_uri(), *(item for item in extra if item)])


def receive_buffer_advice(
    wanted: int = PROFILE_RECEIVE_BUFFER, rmem_max: Path = RMEM_MAX
) -> str | None:
    """Why the receive buffer stays below ``wanted`` and the fix; None when it is fine.

    Linux grants a socket at most ``net.core.rmem_max`` (it reports twice that, its own
    bookkeeping included); other systems and unreadable values give None.
    """
    try:
        limit = int(rmem_max.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if limit >= wanted:
        return None
    return (
        f"net.core.rmem_max is {limit} bytes, so the DDS receive buffer stays below the "
        f"{wanted >> 20} MB the profile asks for and image-sized messages can be lost; raise it: "
        f"sudo sysctl -w net.core.rmem_max={wanted} (persist it in /etc/sysctl.d/, see "
        "docs/inputs.md)"
    )


__all__ = ["DDS_PROFILES", "PROFILE_RECEIVE_BUFFER", "interface_snippet", "profile_path",
           "profile_uri", "receive_buffer_advice"]  # fmt: skip
