"""The node core on DDS without ROS (cyclonedds-python), wire-compatible with ROS 2.

``mlesam node --transport dds`` runs :class:`~mlesam_ros.pipeline.core.SegmentationCore` on
:class:`~mlesam_ros.dds.transport.DdsTransport`; ROS 2 nodes on the same domain see its
topics and the node. Modules: :mod:`~mlesam_ros.dds.types` (ROS types as DDS types),
:mod:`~mlesam_ros.dds.domain` (domain id, localhost-only, QoS), :mod:`~mlesam_ros.dds.endpoints`
(readers, writers, ``ros_discovery_info``), :mod:`~mlesam_ros.dds.transport` (``NodeIO``),
:mod:`~mlesam_ros.dds.player` (bag → DDS player, topic recorder) and
:mod:`~mlesam_ros.dds.commands` (CLI). Needs the ``[dds]`` extra (``pip install -e
'.[dds]'``); nothing here is imported with ``import mlesam_ros``.
"""

INSTALL_HINT = "the DDS transport needs cyclonedds: pip install -e '.[dds]' (in the checkout)"


def require_cyclonedds() -> None:
    """Raise ``ModuleNotFoundError`` with the install command when cyclonedds is missing."""
    try:
        import cyclonedds  # noqa: F401
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(INSTALL_HINT) from error
