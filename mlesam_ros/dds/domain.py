"""Joining the ROS 2 DDS domain: domain id, localhost-only, QoS profiles, topic names.

ROS 2 conventions honoured here (what rmw_cyclonedds_cpp does, so ROS nodes see us):
``ROS_DOMAIN_ID`` picks the DDS domain (default 0); ``ROS_LOCALHOST_ONLY=1`` binds discovery
and data to 127.0.0.1 without multicast; a user's ``CYCLONEDDS_URI`` always wins (cyclonedds
reads it itself); ROS topic ``/a/b`` is DDS topic ``rt/a/b``; samples are XCDR1.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

DEFAULT_DOMAIN_ID = 0
INPUT_DEPTH = 5  # history depth of sensor subscriptions (the rclpy node's choice)

# Discovery and data on the loopback interface only: unicast SPDP to the local participant
# ports (participant index auto), no multicast. Used for ROS_LOCALHOST_ONLY=1 and the tests.
LOCALHOST_CONFIG = """\
<CycloneDDS><Domain Id="any">
  <General>
    <Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>
    <AllowMulticast>false</AllowMulticast>
  </General>
  <Discovery>
    <ParticipantIndex>auto</ParticipantIndex>
    <MaxAutoParticipantIndex>{max_participants}</MaxAutoParticipantIndex>
    <Peers><Peer address="127.0.0.1"/></Peers>
  </Discovery>
</Domain></CycloneDDS>
"""

_DOMAINS: dict[int, Any] = {}
_DOMAINS_LOCK = threading.Lock()


def domain_id_from_env(environ: dict[str, str] | None = None) -> int:
    """``ROS_DOMAIN_ID`` as an int (0 when unset); a clear error when it is not a number."""
    environ = os.environ if environ is None else environ
    text = environ.get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return DEFAULT_DOMAIN_ID
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"ROS_DOMAIN_ID: expected an integer 0-232, got {text!r}") from None
    if not 0 <= value <= 232:
        raise ValueError(f"ROS_DOMAIN_ID: expected an integer 0-232, got {value}")
    return value


def private_domain_id() -> int:
    """Pick a random domain id for a test or benchmark run, so parallel runs do not meet.

    Drawn from 1-101 (ROS 2's recommended range: its ports stay below Linux's ephemeral port
    range), never 0 (the ROS default) nor 42 (the local ROS 2 verification install's default).
    """
    import random

    return random.SystemRandom().choice([i for i in range(1, 102) if i != 42])


def localhost_config(max_participants: int = 32) -> str:
    """Return the loopback-only cyclonedds XML (see :data:`LOCALHOST_CONFIG`)."""
    return LOCALHOST_CONFIG.format(max_participants=int(max_participants))


def localhost_only_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ROS asks for discovery on this host only, in either distribution's words.

    Humble: ``ROS_LOCALHOST_ONLY=1``. Jazzy deprecates it for
    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (``OFF`` also keeps discovery off the network;
    ``SUBNET`` and ``SYSTEM_DEFAULT`` do not), and still honours the old variable.
    """
    environ = os.environ if environ is None else environ
    if environ.get("ROS_LOCALHOST_ONLY", "").strip() == "1":
        return True
    return environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper() in ("LOCALHOST", "OFF")


def config_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the XML to configure the domain with, or None to leave cyclonedds' own defaults.

    ``CYCLONEDDS_URI`` set: None (cyclonedds applies it). Localhost only
    (:func:`localhost_only_from_env`): loopback.
    """
    environ = os.environ if environ is None else environ
    if environ.get("CYCLONEDDS_URI"):
        return None
    if localhost_only_from_env(environ):
        return localhost_config()
    return None


def open_participant(domain_id: int | None = None, config: str | None = None) -> Any:
    """Create a ``DomainParticipant`` on ``domain_id`` (default: ``ROS_DOMAIN_ID``).

    ``config`` (XML or a file URI) configures the domain the first time this process uses
    it; without it :func:`config_from_env` decides. One process keeps one domain object per
    id, as cyclonedds allows only one configuration per domain and process.
    """
    from cyclonedds.domain import Domain, DomainParticipant

    domain_id = domain_id_from_env() if domain_id is None else int(domain_id)
    config = config if config is not None else config_from_env()
    with _DOMAINS_LOCK:
        if domain_id not in _DOMAINS and config is not None:
            _DOMAINS[domain_id] = Domain(domain_id, config)
    return DomainParticipant(domain_id)


def endpoint_qos(
    *, reliable: bool, latched: bool = False, depth: int = 1, msgtype: str | None = None,
    layout: str = "humble",
) -> Any:  # fmt: skip
    """QoS of a ROS 2 publisher or subscription, as rmw_cyclonedds sets it.

    Keep-last ``depth``, XCDR1, reliable or best effort (``sensor_data``), transient local
    when ``latched``; with ``msgtype``, the endpoint's user data carries its type hash
    (``typehash=RIHS01_...;``, from the definitions of ``layout``) as Jazzy and later
    announce it (Humble peers ignore it).
    """
    from cyclonedds.qos import Policy, Qos

    policies = [
        Policy.Reliability.Reliable(max_blocking_time=100_000_000)
        if reliable
        else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if latched else Policy.Durability.Volatile,
        Policy.History.KeepLast(depth),
        Policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    if msgtype is not None:
        from mlesam_ros.dds.types import type_hash_user_data

        policies.append(Policy.Userdata(data=type_hash_user_data(msgtype, layout)))
    return Qos(*policies)


def writer_qos(*, reliable: bool = True, latched: bool = False, depth: int = 1,
               msgtype: str | None = None, layout: str = "humble") -> Any:  # fmt: skip
    """QoS of a ROS 2 publisher (see :func:`endpoint_qos`)."""
    return endpoint_qos(reliable=reliable, latched=latched, depth=depth, msgtype=msgtype,
                        layout=layout)  # fmt: skip


def reader_qos(*, reliable: bool, latched: bool = False, depth: int = INPUT_DEPTH,
               msgtype: str | None = None, layout: str = "humble") -> Any:  # fmt: skip
    """QoS of a ROS 2 subscription (``sensor_data`` = best effort; ``latched`` late-joins)."""
    return endpoint_qos(reliable=reliable, latched=latched, depth=depth, msgtype=msgtype,
                        layout=layout)  # fmt: skip


__all__ = [
    "LOCALHOST_CONFIG",
    "config_from_env",
    "domain_id_from_env",
    "localhost_config",
    "open_participant",
    "private_domain_id",
    "reader_qos",
    "writer_qos",
]
