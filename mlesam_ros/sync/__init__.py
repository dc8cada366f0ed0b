"""Time synchronisation of the sensor streams (no threads, caller-supplied clock)."""

from mlesam_ros.sync.synchronizer import (
    MemberConfig,
    SensorHealth,
    SyncConfig,
    SyncedFrame,
    SyncStats,
    TimeoutSynchronizer,
)

__all__ = [
    "MemberConfig",
    "SensorHealth",
    "SyncConfig",
    "SyncStats",
    "SyncedFrame",
    "TimeoutSynchronizer",
]
