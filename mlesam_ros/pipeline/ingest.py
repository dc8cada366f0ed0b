"""The core's input side: transport callbacks → the synchroniser → the latest-frame slot.

Every callback is wrapped by :meth:`FrameIngest._guard`, so nothing escapes into the
transport's executor: a failure is counted (and, for the RGB anchor, costs that frame under
``callback_error``) and logged once per kind. Messages arrive as CDR bytes (or rosbags
messages) and are decoded with the one codec (:func:`mlesam_ros.pipeline.messages.decode`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlesam_ros.msgs import header_stamp_ns
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.frame import FrameJob, Issue


class FrameIngest:
    """The callback side of :class:`~mlesam_ros.pipeline.core.SegmentationCore` (its base).

    Uses the core's ``io``, ``config``, ``sync``, ``rig``, ``stats``, ``threaded``, ``_active``,
    ``_infos``, ``_slot``, ``_lock``, ``_next_diagnostics_ns``, ``_note``, ``_log_once``,
    ``count_drop``, ``process_pending`` and ``publish_diagnostics``.
    """

    def _guard(
        self, function: Callable[..., None], *bound: Any, drop_reason: str | None = None
    ) -> Callable[..., None]:
        """Wrap a callback so nothing escapes into the transport's executor.

        ``drop_reason``: a failure of this callback costs a frame, counted under that reason.
        """

        def guarded(*args: Any) -> None:
            if not self._active:
                return  # a callback already queued when the node was deactivated
            try:
                function(*bound, *args)
            except Exception as error:
                with self._lock:
                    self.stats.callback_errors += 1
                    if drop_reason is not None:
                        self.stats.dropped[drop_reason] += 1
                self._log_once(
                    "error",
                    f"callback {function.__name__}{bound}",
                    f"{type(error).__name__}: {error}",
                )

        return guarded

    def on_camera_info(self, key: str, msg: Any) -> None:
        """Keep the latest CameraInfo of each camera (they rarely change); ``msg`` may be CDR."""
        msg = m.decode(msg, m.CAMERA_INFO)
        with self._lock:
            self._infos[key] = msg

    def on_sensor(self, key: str, msg: Any) -> None:
        """Offer one sensor message (CDR bytes or a message) to the synchroniser.

        Frames that became ready are handed to the worker.
        """
        msg = m.decode(msg, m.POINTCLOUD2 if key == "points" else m.IMAGE)
        now = self.io.now_ns()
        topic = self.config.topics[key]
        try:
            stamp = header_stamp_ns(msg)
        except ValueError as error:
            self._note(Issue(key, topic, f"{error}; message ignored"))
            if key == "rgb":
                self.count_drop("bad_header")
            return
        if stamp <= 0:
            # An unset stamp (a driver that never fills the header) matches nothing in time;
            # taking the arrival time instead would pair unrelated messages silently.
            self._note(Issue(key, topic, "header.stamp is 0 (unset); message ignored"))
            if key == "rgb":
                self.count_drop("zero_stamp")
            return
        with self._lock:
            # Poll first: a frame whose timeout has passed is emitted before a newer message
            # can complete a later frame and make it stale.
            frames = self.sync.poll(now) + self.sync.add(key, stamp, msg, now)
        self._submit(frames, now)

    def poll(self) -> None:
        """Timer: emit frames whose timeout passed; publish diagnostics when they are due.

        Diagnostics ride on this timer (rather than a timer of their own) so that
        ``diagnostics.period_s`` can change at run time without the transport having to
        cancel timers.
        """
        now = self.io.now_ns()
        with self._lock:
            frames = self.sync.poll(now) if self.rig is None else []
            diagnostics_due = now >= self._next_diagnostics_ns
            if diagnostics_due:
                self._next_diagnostics_ns = max(
                    self._next_diagnostics_ns + self.config.diagnostics_period_ns, now
                )
        if self.rig is not None:
            self.rig.poll(now)
        self._submit(frames, now)
        if diagnostics_due:
            self.publish_diagnostics()

    def flush(self) -> None:
        """Emit every pending frame as if its timeout had passed and process it (bag end)."""
        if self.rig is not None:
            self.rig.flush()
            return
        with self._lock:
            now = self.io.now_ns() + self.config.timeout_ns
            frames = self.sync.poll(now)
        self._submit(frames, now)
        self.process_pending()

    def _submit(self, frames: list, now_ns: int) -> None:
        for frame in frames:
            with self._lock:
                infos = dict(self._infos)
            self._slot.put(FrameJob(frame.stamp_ns, frame.messages, infos, now_ns))
            if not self.threaded:
                self.process_pending()
