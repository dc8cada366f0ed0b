"""The node's name where users see it: ``/diagnostics`` status names and log lines.

Two instances (``/front/mlesam``, ``/rear/mlesam``) publish on the one global
``/diagnostics``, so each status is named ``<fully qualified node name>: <what>`` and carries
that name as ``hardware_id``, as ``diagnostic_updater`` does with ``use_fqn``; diagnostic
aggregators and rqt_robot_monitor then keep them apart.

Log lines carry the node name once. rclpy's logger already prints it (``[front.mlesam]``),
so the core's messages carry none; the transports without rcl (DDS, replay) wrap their
logger in :class:`NamedLogger`, which puts the same name in front.
"""

from __future__ import annotations

from typing import Any

from mlesam_ros.pipeline.messages import NODE_NAME


def fully_qualified_name(node_name: str = NODE_NAME, namespace: str = "/") -> str:
    """Return ``/front/mlesam`` for node ``mlesam`` in namespace ``front`` (root: ``/mlesam``)."""
    namespace = namespace.strip("/")
    return f"/{namespace}/{node_name}" if namespace else f"/{node_name}"


def logger_name(fully_qualified: str) -> str:
    """Return rcl's logger name of a node: ``/front/mlesam`` → ``front.mlesam``."""
    return fully_qualified.strip("/").replace("/", ".")


def node_of(io: Any) -> str:
    """Return the fully qualified name a transport gives its node (default ``/mlesam``)."""
    return str(getattr(io, "fully_qualified_name", None) or fully_qualified_name())


class NamedLogger:
    """A logger that puts ``<name>: `` in front of each line (transports without rcl)."""

    def __init__(self, logger: Any, name: str) -> None:
        self.logger, self.prefix = logger, f"{name}: "

    def debug(self, message: str) -> None:
        """Log at DEBUG."""
        self.logger.debug(self.prefix + message)

    def info(self, message: str) -> None:
        """Log at INFO."""
        self.logger.info(self.prefix + message)

    def warning(self, message: str) -> None:
        """Log at WARNING."""
        self.logger.warning(self.prefix + message)

    def error(self, message: str) -> None:
        """Log at ERROR."""
        self.logger.error(self.prefix + message)


__all__ = ["NamedLogger", "fully_qualified_name", "logger_name", "node_of"]
