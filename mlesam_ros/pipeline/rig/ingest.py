"""A rig's inputs: each camera's images and calibrations, the shared LiDAR sweep, timers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlesam_ros.msgs import StampError, checked_header_stamp_ns
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.frame import FrameJob, Issue
from mlesam_ros.pipeline.image_transport import input_msgtype, input_topic
from mlesam_ros.pipeline.ingest import RGB_ARRIVALS_KEPT
from mlesam_ros.pipeline.rig.lane import CameraLane


class RigIngest:
    """Callbacks of a :class:`~mlesam_ros.pipeline.rig.CameraRig`: decode, check, sync, submit."""

    # -- inputs -------------------------------------------------------------------------------

    def _guard(self, function: Callable[..., None], *bound: Any,
               drop: bool = False) -> Callable[..., None]:  # fmt: skip
        """Like the core's guard; a failing RGB callback costs its camera that frame."""
        core = self.core
        lane = bound[0] if bound and isinstance(bound[0], CameraLane) else None

        def guarded(*args: Any) -> None:
            if not core._active:
                return
            try:
                function(*bound, *args)
            except Exception as error:
                with core._lock:
                    core.stats.callback_errors += 1
                    if lane is not None:
                        lane.stats.callback_errors += 1
                        if drop:
                            lane.stats.dropped["callback_error"] += 1
                where = f" of camera {lane.name}" if lane is not None else ""
                core._log_once("error", f"callback {function.__name__}{where}",
                               f"{type(error).__name__}: {error}")  # fmt: skip

        return guarded

    def _decode(self, lane: CameraLane | None, key: str, data: Any, msgtype: str,
                topic: str) -> Any:  # fmt: skip
        """Decode one input; ``None`` (reported, counted) when it cannot be (as the core's).

        An RGB image lost this way is counted as ``undecodable`` for its camera.
        """
        try:
            return m.decode(data, msgtype)
        except Exception as error:
            self.note(lane, Issue(key, topic, f"undecodable {msgtype} ({type(error).__name__}); "
                                              "message ignored"))  # fmt: skip
            if lane is not None and key == "rgb" and msgtype != m.CAMERA_INFO:
                with self.core._lock:
                    lane.stats.dropped["undecodable"] += 1
            return None

    def on_camera_info(self, lane: CameraLane, key: str, msg: Any) -> None:
        """Keep the latest CameraInfo of each of the camera's sensors.

        Its stamp may be 0 (it is not used as a time); one that is no time at all marks a
        corrupt message, which is ignored (:mod:`mlesam_ros.msgs.stamps`).
        """
        topic = lane.config.info_topics.get(key, "")
        msg = self._decode(lane, key, msg, m.CAMERA_INFO, topic)
        if msg is None:
            return
        try:
            checked_header_stamp_ns(msg, allow_zero=True)
        except StampError as error:
            self.note(lane, Issue(key, topic, f"CameraInfo {error}; message ignored"))
            return
        with self.core._lock:
            lane.infos[key] = msg

    def _stamp(self, lane: CameraLane | None, key: str, topic: str, msg: Any) -> int | None:
        """Return the header stamp, or None after noting why the message is ignored.

        The stamp rule of :mod:`mlesam_ros.msgs.stamps`; a camera's RGB image ignored this
        way is counted for that camera under the rule's reason.
        """
        try:
            return checked_header_stamp_ns(msg)
        except StampError as error:
            self.note(lane, Issue(key, topic, f"{error}; message ignored"))
            if lane is not None and key == "rgb":
                with self.core._lock:
                    lane.stats.dropped[error.reason] += 1
            return None

    def on_image(self, lane: CameraLane, key: str, msg: Any) -> None:
        """Offer one of the camera's images (raw or compressed) to its synchroniser."""
        topic = input_topic(lane.config, key)
        msg = self._decode(lane, key, msg, input_msgtype(lane.config, key), topic)
        if msg is None:
            return
        now = self.core.io.now_ns()
        stamp = self._stamp(lane, key, topic, msg)
        if stamp is None:
            return
        with self.core._lock:
            if key == "rgb":
                arrivals = lane.rgb_arrivals
                arrivals[stamp] = now
                while len(arrivals) > RGB_ARRIVALS_KEPT:  # frames the synchroniser dropped
                    del arrivals[next(iter(arrivals))]
            frames = lane.sync.poll(now) + lane.sync.add(key, stamp, msg, now)
        self._submit(lane, frames, now)

    def on_points(self, msg: Any) -> None:
        """Decode a LiDAR sweep once and offer it to every camera's synchroniser."""
        topic = input_topic(self.core.config, "points")
        started = time.perf_counter()
        msg = self._decode(None, "points", msg, input_msgtype(self.core.config, "points"), topic)
        if msg is None:
            return
        decode_ms = (time.perf_counter() - started) * 1e3
        now = self.core.io.now_ns()
        stamp = self._stamp(None, "points", topic, msg)
        with self.core._lock:
            self.points_received += 1
            self.points_decode_ms.append(decode_ms)
            if stamp is None:
                return
            released = [(lane, lane.sync.poll(now) + lane.sync.add("points", stamp, msg, now))
                        for lane in self.lanes]  # fmt: skip
        for lane, frames in released:  # every camera's frame first, then one batch
            self._submit(lane, frames, now, run=False)
        if not self.core.threaded:
            self.process_ready()

    def poll(self, now: int) -> None:
        """Timer: emit frames whose timeout passed; run a batch that is due (replay)."""
        with self.core._lock:
            released = [(lane, lane.sync.poll(now)) for lane in self.lanes]
        for lane, frames in released:
            self._submit(lane, frames, now, run=False)
        if not self.core.threaded:
            self.process_ready()

    def flush(self) -> None:
        """Emit every pending frame as if its timeout had passed and run them (bag end)."""
        with self.core._lock:
            released = [(lane, lane.sync.poll(self.core.io.now_ns() + lane.config.timeout_ns))
                        for lane in self.lanes]  # fmt: skip
        for lane, frames in released:
            self._submit(lane, frames, self.core.io.now_ns(), run=False)
        self.process_ready(force=True)

    def submit(self, lane: CameraLane, frames: list, now_ns: int) -> None:
        """Hand synced frames of ``lane`` to the batch (run-time parameter changes)."""
        self._submit(lane, frames, now_ns)

    def _submit(self, lane: CameraLane, frames: list, now_ns: int, run: bool = True) -> None:
        if not frames:
            return
        with self.core._lock:
            infos = dict(lane.infos)
            arrivals = [lane.rgb_arrivals.pop(frame.stamp_ns, None) for frame in frames]
        with self._ready:
            for frame, arrival in zip(frames, arrivals, strict=True):
                if lane.job is not None:
                    lane.replaced += 1  # latest frame wins, per camera
                lane.job = FrameJob(frame.stamp_ns, frame.messages, infos, now_ns,
                                    rgb_arrival_ns=arrival)  # fmt: skip
                lane.job_since = self._clock()
            self._ready.notify_all()
        if run and not self.core.threaded:
            self.process_ready()
