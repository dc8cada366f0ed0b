"""A small tf2-like transform buffer for bag replay (``/tf`` and ``/tf_static``).

Written here because tf2's buffer ships only with a ROS install. It keeps a tree of
parent→child edges: static edges hold one transform for all time, dynamic edges a short
time-sorted history looked up at the stamp (nearest neighbour inside the history, like tf2
without interpolation; exact enough for the slow rigs this is for). A lookup walks both frames
up to their common ancestor and composes the edges.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from mlesam_ros.geometry import invert_transform


class TfBuffer:
    """Transforms from TFMessages; ``lookup(target, source, stamp_ns)`` → ``T_target_from_source``.

    ``max_history`` bounds each dynamic edge; ``max_extrapolation_ns`` is how far outside an
    edge's stored time range a lookup may reach before it fails (tf2 refuses extrapolation;
    a small tolerance absorbs the stamp jitter between sensors).
    """

    def __init__(self, max_history: int = 200, max_extrapolation_ns: int = 200_000_000) -> None:
        self._parent: dict[str, str] = {}
        self._static: dict[str, np.ndarray] = {}
        self._dynamic: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        self.max_history = max_history
        self.max_extrapolation_ns = max_extrapolation_ns

    def add_message(self, msg: Any, static: bool) -> None:
        """Add every transform of a ``tf2_msgs/TFMessage``."""
        from mlesam_ros.msgs import tf_message_to_matrices

        for (parent, child), (stamp_ns, matrix) in tf_message_to_matrices(msg).items():
            self.add(parent, child, matrix, stamp_ns, static)

    def add(
        self,
        parent: str,
        child: str,
        T_parent_from_child: np.ndarray,  # noqa: N803
        stamp_ns: int,
        static: bool,
    ) -> None:
        """Add one edge (re-parenting a frame replaces its edge, as tf2 does)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if self._parent.get(child) != parent:
            self._static.pop(child, None)
            self._dynamic.pop(child, None)
        self._parent[child] = parent
        if static:
            self._static[child] = np.asarray(T_parent_from_child, dtype=np.float64)
            return
        stamps, matrices = self._dynamic.setdefault(child, ([], []))
        index = bisect.bisect(stamps, stamp_ns)
        stamps.insert(index, int(stamp_ns))
        matrices.insert(index, np.asarray(T_parent_from_child, dtype=np.float64))
        if len(stamps) > self.max_history:
            del stamps[0], matrices[0]

    def _edge(self, child: str, stamp_ns: int) -> np.ndarray:
        if child in self._static:
            return self._static[child]
        stamps, matrices = self._dynamic[child]
        index = bisect.bisect(stamps, stamp_ns)
        nearest = min(
            (i for i in (index - 1, index) if 0 <= i < len(stamps)),
            key=lambda i: abs(stamps[i] - stamp_ns),
        )
        if abs(stamps[nearest] - stamp_ns) > self.max_extrapolation_ns and not (
            stamps[0] <= stamp_ns <= stamps[-1]
        ):
            raise LookupError(
                f"tf: {self._parent[child]} -> {child} is known for "
                f"[{stamps[0]}, {stamps[-1]}] ns, not at {stamp_ns} ns (extrapolation)"
            )
        return matrices[nearest]

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent and len(chain) <= len(self._parent) + 1:
            chain.append(self._parent[chain[-1]])
        return chain

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """Return ``T_target_from_source`` at ``stamp_ns``; ``LookupError`` says why not."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((frame for frame in up_source if frame in up_target), None)
        if common is None:
            known = sorted(set(self._parent) | set(self._parent.values()))
            raise LookupError(
                f"tf: no connection between '{target}' and '{source}' (known frames: "
                f"{', '.join(known) or 'none'}); publish the extrinsics on /tf_static or set "
                "extrinsics.source: config"
            )
        T_common_from_source = np.eye(4)
        for frame in up_source[: up_source.index(common)]:
            T_common_from_source = self._edge(frame, stamp_ns) @ T_common_from_source
        T_common_from_target = np.eye(4)
        for frame in up_target[: up_target.index(common)]:
            T_common_from_target = self._edge(frame, stamp_ns) @ T_common_from_target
        return invert_transform(T_common_from_target) @ T_common_from_source
