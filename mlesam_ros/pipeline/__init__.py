"""The runtime frame path and the transport-agnostic node core (shared by ROS and replay).

``interface`` defines what a transport provides (:class:`NodeIO`), ``config`` the public
parameters, ``frame`` the per-frame path (decode → register → encode → model → outputs),
``core`` the node logic (:class:`SegmentationCore`). Importing this package is light (numpy);
the core loads the engine when configured.
"""

from mlesam_ros.pipeline.config import (
    DEFAULT_PARAMETERS,
    PARAMETERS,
    NodeConfig,
    load_params_file,
    parameter_table,
)
from mlesam_ros.pipeline.interface import Logger, NodeIO, Publisher

__all__ = [
    "DEFAULT_PARAMETERS",
    "PARAMETERS",
    "Logger",
    "NodeConfig",
    "NodeIO",
    "Publisher",
    "load_params_file",
    "parameter_table",
]
