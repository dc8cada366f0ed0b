"""The core's input side: transport callbacks → the synchroniser → the latest-frame slot.

Every callback is wrapped by :meth:`FrameIngest._guard`, so nothing escapes into the
transport's executor: a failure is counted (and, for the RGB anchor, costs that frame under
``callback_error``) and logged once per kind. Messages arrive as CDR bytes (or rosbags
messages) and are decoded with the one codec (:func:`mlesam_ros.pipeline.messages.decode`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlesam_ros.msgs import StampError, checked_header_stamp_ns
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.frame import FrameJob, Issue
from mlesam_ros.pipeline.image_transport import input_msgtype, input_topic

RGB_ARRIVALS_KEPT = 64
"""RGB arrival times kept for frames still in the synchroniser (a few at any real rate)."""


class FrameIngest:
    """The callback side of :class:`~mlesam_ros.pipeline.core.SegmentationCore` (its base).

    Uses the core's ``io``, ``config``, ``sync``, ``rig``, ``stats``, ``threaded``, ``_active``,
    ``_infos``, ``_rgb_arrivals``, ``_slot``, ``_lock``, ``_next_diagnostics_ns``, ``_note``,
    ``_log_once``, ``count_drop``, ``process_pending`` and ``publish_diagnostics``.
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

    def _decode(self, key: str, data: Any, msgtype: str, topic: str) -> Any:
        """Decode one input with the one codec; ``None`` (reported, counted) when it cannot be.

        A malformed sample (truncated, or another layout under the same type name) costs that
        message only; an RGB image lost this way is counted as ``undecodable``.
        """
        try:
            return m.decode(data, msgtype)
        except Exception as error:
            self._note(Issue(key, topic, f"undecodable {msgtype} ({type(error).__name__}); "
                                         "message ignored"))  # fmt: skip
            if key == "rgb" and msgtype != m.CAMERA_INFO:
                self.count_drop("undecodable")
            return None

    def on_camera_info(self, key: str, msg: Any) -> None:
        """Keep the latest CameraInfo of each camera (they rarely change); ``msg`` may be CDR.

        Its stamp is not used as a time, so 0 is accepted; a stamp that is no time at all
        (:mod:`mlesam_ros.msgs.stamps`) marks a corrupt message, which is ignored.
        """
        topic = self.config.info_topics.get(key, "")
        msg = self._decode(key, msg, m.CAMERA_INFO, topic)
        if msg is None:
            return
        try:
            checked_header_stamp_ns(msg, allow_zero=True)
        except StampError as error:
            self._note(Issue(key, topic, f"CameraInfo {error}; message ignored"))
            return
        with self._lock:
            self._infos[key] = msg

    def on_sensor(self, key: str, msg: Any) -> None:
        """Offer one sensor message (CDR bytes or a message) to the synchroniser.

        Its header stamp must be a time (the stamp rule, :mod:`mlesam_ros.msgs.stamps`);
        frames that became ready are handed to the worker.
        """
        topic = input_topic(self.config, key)
        msg = self._decode(key, msg, input_msgtype(self.config, key), topic)
        if msg is None:
            return
        now = self.io.now_ns()
        try:
            # An unset stamp (a driver that never fills the header) matches nothing in time;
            # taking the arrival time instead would pair unrelated messages silently.
            stamp = checked_header_stamp_ns(msg)
        except StampError as error:
            self._note(Issue(key, topic, f"{error}; message ignored"))
            if key == "rgb":
                self.count_drop(error.reason)
            return
        with self._lock:
            if key == "rgb":
                self._note_rgb_arrival(stamp, now)
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

    def _note_rgb_arrival(self, stamp_ns: int, now_ns: int) -> None:
        """Remember when each pending RGB frame arrived (its sync wait); call under the lock."""
        arrivals = self._rgb_arrivals
        arrivals[stamp_ns] = now_ns
        while len(arrivals) > RGB_ARRIVALS_KEPT:  # frames the synchroniser dropped
            del arrivals[next(iter(arrivals))]

    def _submit(self, frames: list, now_ns: int) -> None:
        for frame in frames:
            with self._lock:
                infos = dict(self._infos)
                arrival = self._rgb_arrivals.pop(frame.stamp_ns, None)
            self._slot.put(FrameJob(frame.stamp_ns, frame.messages, infos, now_ns,
                                    rgb_arrival_ns=arrival))  # fmt: skip
            if not self.threaded:
                self.process_pending()
