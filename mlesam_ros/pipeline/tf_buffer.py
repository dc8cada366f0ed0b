"""A small tf2-like transform buffer fed from ``/tf`` and ``/tf_static`` (bag and DDS transports).

Written here because tf2's buffer ships only with a ROS install. It keeps a tree of
parent→child edges: static edges hold one transform for all time, dynamic edges a short
time-sorted history looked up at the stamp (nearest neighbour inside the history, like tf2
without interpolation; exact enough for the slow rigs this is for). A lookup walks both frames
up to their common ancestor and composes the edges.

Like tf2's ``BufferCore::setTransform`` it refuses, per transform, anything that would corrupt
a lookup: non-finite translation or rotation, a quaternion whose squared norm is off 1 by
more than 0.01 (tf2's test; a zero quaternion is the usual unset one) and an edge that would
close a loop in the tree. A refused transform changes nothing, so frames unrelated to a
lookup never affect it; :meth:`TfBuffer.add_message` returns one line per refused transform.
A transform's stamp follows the project's stamp rule (:mod:`mlesam_ros.msgs.stamps`): a
``nanosec`` of 10^9 or more or a negative ``sec`` is refused, and so is an unset (0) stamp on
``/tf`` (it cannot be looked up in time); ``/tf_static`` may carry 0.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from mlesam_ros.geometry import invert_transform
from mlesam_ros.msgs import checked_stamp_ns, transform_to_matrix
from mlesam_ros.pipeline import messages as m
from mlesam_ros.text import quote

TF_TOPIC, TF_STATIC_TOPIC = "/tf", "/tf_static"
TF_TOPICS = (TF_TOPIC, TF_STATIC_TOPIC)


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

    def feed(self, topic: str, message: Any) -> list[str]:
        """Add a ``TFMessage`` (CDR or decoded) received on ``topic``; see :meth:`add_message`.

        Every transport feeds its tf this way, so ``/tf_static`` is static for all of them.
        """
        decoded = m.decode(message, m.TF_MESSAGE)
        return self.add_message(decoded, static=topic == TF_STATIC_TOPIC)

    def add_message(self, msg: Any, static: bool) -> list[str]:
        """Add every valid transform of a ``tf2_msgs/TFMessage``; return why others were not."""
        problems = []
        for stamped in getattr(msg, "transforms", None) or []:
            name = "?"
            try:
                parent = str(stamped.header.frame_id).lstrip("/")
                child = str(stamped.child_frame_id).lstrip("/")
                name = f"{quote(parent)} -> {quote(child)}"
                stamp_ns = checked_stamp_ns(stamped.header.stamp, allow_zero=static)
                _check_transform(stamped.transform)
                self.add(parent, child, transform_to_matrix(stamped), stamp_ns, static)
            except (ValueError, AttributeError, TypeError) as error:
                problems.append(f"transform {name} refused: {error}")
        return problems

    def add(
        self,
        parent: str,
        child: str,
        T_parent_from_child: np.ndarray,  # noqa: N803
        stamp_ns: int,
        static: bool,
    ) -> None:
        """Add one edge (re-parenting a frame replaces its edge, as tf2 does).

        ``ValueError`` (and nothing changed) for an empty or self-referencing frame, a
        non-finite matrix or an edge that would make ``child`` its own ancestor.
        """
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child:
            raise ValueError("empty frame_id or child_frame_id")
        if parent == child:
            raise ValueError(f"frame {quote(child)} cannot be its own parent")
        if not np.all(np.isfinite(T_parent_from_child)):
            raise ValueError("non-finite values (NaN or inf) in the transform")
        if child in self._chain(parent):
            raise ValueError(
                f"it would close a loop ({' -> '.join(map(quote, reversed(self._chain(parent))))}"
                f" -> {quote(child)}); tf must be a tree: remove the duplicate publisher of "
                f"{quote(child)} or {quote(parent)}"
            )
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
                f"tf: {quote(self._parent[child])} -> {quote(child)} is known for "
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
                f"tf: no connection between {quote(target)} and {quote(source)} (known frames: "
                f"{_listing(known)}); publish the extrinsics on /tf_static or set "
                "extrinsics.source: config"
            )
        T_common_from_source = np.eye(4)
        for frame in up_source[: up_source.index(common)]:
            T_common_from_source = self._edge(frame, stamp_ns) @ T_common_from_source
        T_common_from_target = np.eye(4)
        for frame in up_target[: up_target.index(common)]:
            T_common_from_target = self._edge(frame, stamp_ns) @ T_common_from_target
        return invert_transform(T_common_from_target) @ T_common_from_source


def _listing(frames: list[str], shown: int = 12) -> str:
    """List the known frames for an error, each quoted short, at most ``shown`` of them."""
    if not frames:
        return "none"
    more = f", ... ({len(frames)} frames)" if len(frames) > shown else ""
    return ", ".join(quote(frame) for frame in frames[:shown]) + more


def _check_transform(transform: Any) -> None:
    """Raise ``ValueError`` for a transform tf2 would refuse (see the module docstring)."""
    t, q = transform.translation, transform.rotation
    values = np.array([t.x, t.y, t.z, q.x, q.y, q.z, q.w], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"non-finite values (NaN or inf): translation {values[:3].tolist()}, "
                         f"rotation {values[3:].tolist()}")
    squared_norm = float(values[3:] @ values[3:])
    if abs(squared_norm - 1.0) > 0.01:  # tf2's TF_DENORMALIZED_QUATERNION test
        raise ValueError(
            f"rotation quaternion has norm {squared_norm ** 0.5:.4g}, not 1 (a zero quaternion "
            "is unset); publish a unit quaternion"
        )
