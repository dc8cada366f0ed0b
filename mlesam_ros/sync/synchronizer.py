"""Timeout synchroniser keyed on the RGB stamp, tolerant of dead or late sensors.

``message_filters.ApproximateTimeSynchronizer`` waits forever for a dead sensor and so
stops the whole pipeline; this one emits each RGB frame as soon as every member matched or
``timeout_ns`` after the RGB message arrived, with whatever matched, and reports which members
are present. Time comes from the caller (``now_ns``), so bag replay is deterministic and the
class has no threads: live callers wrap ``add``/``poll`` in their own lock.

Matching: a member message with stamp ``s`` stands for anchor time ``s - offset_ns`` (the
sensor's fixed phase) and matches the pending RGB frame whose stamp is nearest, if within
``slop_ns``. Member messages are kept in small bounded buffers so one that arrives before its
RGB frame still matches; a member message may serve several RGB frames (a 10 Hz LiDAR with a
30 Hz camera). Output stamps are strictly increasing: anything older than the last emitted
frame is stale and dropped with a counter, never queued.

Every anchor (RGB) message that does not leave as a frame is counted in
``SyncStats.anchor_dropped`` by reason: ``duplicate_stamp`` (a second RGB message with a
stamp already pending or emitted: the first one wins), ``stale_stamp`` (stamp at or before the
last emitted frame: stamps going backwards or arriving out of order), ``superseded`` (a newer
frame completed first, so the older pending one would be out of date), ``queue_overflow``
(more than ``max_pending`` frames waiting), ``incomplete_strict`` (strict mode timeout) and
``clock_reset`` (pending when the clock jumped back).
A backward jump larger than ``clock_jump_ns`` is a restart, not staleness: the buffers reset.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MemberConfig:
    """One optional sensor: its key, matching window and fixed offset (all nanoseconds)."""

    key: str
    slop_ns: int
    offset_ns: int = 0

    def __post_init__(self) -> None:
        """Reject windows that cannot match anything."""
        if self.slop_ns < 0:
            raise ValueError(f"sync member '{self.key}': slop_ns must be >= 0, got {self.slop_ns}")


@dataclass(frozen=True)
class SyncConfig:
    """Synchroniser settings; ``strict`` drops frames that time out incomplete.

    ``clock_jump_ns``: a step back of the clock or of the RGB stamps larger than this (a bag
    loop, a restarted simulator) resets the buffers instead of dropping everything as stale.
    """

    members: tuple[MemberConfig, ...]
    timeout_ns: int
    anchor: str = "rgb"
    strict: bool = False
    max_pending: int = 8
    max_buffered: int = 16
    clock_jump_ns: int = 250_000_000

    def __post_init__(self) -> None:
        """Validate so that a config typo fails at start-up."""
        keys = [member.key for member in self.members]
        if self.anchor in keys or len(set(keys)) != len(keys):
            raise ValueError(
                f"sync: member keys must be unique and differ from the anchor: {keys}"
            )
        if self.timeout_ns <= 0:
            raise ValueError(f"sync: timeout_ns must be > 0, got {self.timeout_ns}")
        if self.max_pending < 1 or self.max_buffered < 1:
            raise ValueError("sync: max_pending and max_buffered must be >= 1")

    @property
    def keys(self) -> tuple[str, ...]:
        """Anchor first, then members in configured order."""
        return (self.anchor, *(member.key for member in self.members))


@dataclass
class SyncedFrame:
    """One emitted RGB frame with the members that matched it."""

    stamp_ns: int
    messages: dict[str, Any]
    stamps: dict[str, int]
    present: dict[str, bool]
    timed_out: bool

    @property
    def complete(self) -> bool:
        """Whether every configured member is present."""
        return all(self.present.values())

    def presence(self, keys: tuple[str, ...] | list[str]) -> tuple[bool, ...]:
        """Presence flags in the order of ``keys`` (unknown keys are absent)."""
        return tuple(self.present.get(key, False) for key in keys)


@dataclass
class SensorHealth:
    """Per-sensor diagnostics: what arrived, how fast, how often it was missing."""

    received: int = 0
    last_stamp_ns: int | None = None
    last_arrival_ns: int | None = None
    rate_hz: float = 0.0
    missing: int = 0
    matched: int = 0
    stale_dropped: int = 0
    duplicates: int = 0

    @property
    def missing_ratio(self) -> float:
        """Fraction of emitted frames in which this sensor was absent."""
        total = self.missing + self.matched
        return self.missing / total if total else 0.0

    def age_ns(self, now_ns: int) -> int | None:
        """Time since the last message arrived, ``None`` if none ever did."""
        return None if self.last_arrival_ns is None else now_ns - self.last_arrival_ns


@dataclass
class SyncStats:
    """Synchroniser-wide counters."""

    emitted: int = 0
    emitted_complete: int = 0
    emitted_on_timeout: int = 0
    dropped_incomplete: int = 0
    dropped_stale: int = 0
    dropped_overflow: int = 0
    dropped_duplicate: int = 0
    resets: int = 0
    anchor_dropped: collections.Counter = field(default_factory=collections.Counter)


@dataclass
class _Pending:
    stamp_ns: int
    message: Any
    deadline_ns: int
    matches: dict[str, tuple[int, Any]] = field(default_factory=dict)


_RATE_SMOOTHING = 0.2  # weight of the newest period in the moving average


class TimeoutSynchronizer:
    """Group an anchor (RGB) stream with optional member streams; see the module docstring.

    ``add(key, stamp_ns, msg, now_ns)`` and ``poll(now_ns)`` both return the frames that
    became ready, oldest first. Call ``poll`` from a timer so timeouts fire without traffic.
    """

    def __init__(self, config: SyncConfig) -> None:
        """Start empty; ``config`` is fixed for the synchroniser's life."""
        self.config = config
        self._members = {member.key: member for member in config.members}
        self.stats = SyncStats()
        self._health = {key: SensorHealth() for key in config.keys}
        self.reset(count=False)

    def reset(self, count: bool = True) -> None:
        """Forget pending frames and buffered members (health and counters are kept)."""
        if count and self._pending:
            self.stats.anchor_dropped["clock_reset"] += len(self._pending)
        self._pending: list[_Pending] = []
        self._buffers: dict[str, list[tuple[int, Any]]] = {key: [] for key in self._members}
        self._last_emitted_ns: int | None = None
        self._last_now_ns: int | None = None
        self._last_anchor_ns: int | None = None
        if count:
            self.stats.resets += 1

    @property
    def pending(self) -> int:
        """RGB frames waiting for members or their timeout (not emitted, not dropped yet)."""
        return len(self._pending)

    def health(self) -> dict[str, SensorHealth]:
        """Per-sensor health, keyed like the configuration (anchor included)."""
        return self._health

    def add(self, key: str, stamp_ns: int, message: Any, now_ns: int) -> list[SyncedFrame]:
        """Offer one message; returns frames completed by it or expired by ``now_ns``."""
        if key != self.config.anchor and key not in self._members:
            raise ValueError(
                f"sync: unknown key '{key}'; configured: {', '.join(self.config.keys)}"
            )
        stamp_ns, now_ns = int(stamp_ns), int(now_ns)
        self._check_clock(now_ns, stamp_ns if key == self.config.anchor else None)
        self._record_arrival(key, stamp_ns, now_ns)
        if key == self.config.anchor:
            ready = self._add_anchor(stamp_ns, message, now_ns)
        else:
            ready = self._add_member(key, stamp_ns, message)
        return ready + self.poll(now_ns)

    def poll(self, now_ns: int) -> list[SyncedFrame]:
        """Emit (or, in strict mode, drop) pending frames whose timeout has passed."""
        now_ns = int(now_ns)
        self._check_clock(now_ns, None)
        ready: list[SyncedFrame] = []
        while self._pending and self._pending[0].deadline_ns <= now_ns:
            pending = self._pending.pop(0)
            if self.config.strict:
                self.stats.dropped_incomplete += 1
                self.stats.anchor_dropped["incomplete_strict"] += 1
                self._last_emitted_ns = pending.stamp_ns
                continue
            ready.append(self._emit(pending, timed_out=True))
        return ready

    # -- internals ---------------------------------------------------------------------------

    def _check_clock(self, now_ns: int, anchor_stamp_ns: int | None) -> None:
        """Reset on a backward jump of the clock or of the anchor stamps (a bag loop)."""
        jump = self.config.clock_jump_ns
        now_back = self._last_now_ns is not None and now_ns < self._last_now_ns - jump
        stamp_back = (
            anchor_stamp_ns is not None
            and self._last_anchor_ns is not None
            and anchor_stamp_ns < self._last_anchor_ns - jump
        )
        if now_back or stamp_back:
            self.reset()
        self._last_now_ns = now_ns if self._last_now_ns is None else max(now_ns, self._last_now_ns)
        if anchor_stamp_ns is not None:
            last = self._last_anchor_ns
            self._last_anchor_ns = anchor_stamp_ns if last is None else max(last, anchor_stamp_ns)

    def _record_arrival(self, key: str, stamp_ns: int, now_ns: int) -> None:
        health = self._health[key]
        if health.last_stamp_ns is not None and stamp_ns > health.last_stamp_ns:
            # Smooth the period, not the rate: averaging rates over-weights short gaps.
            period = (stamp_ns - health.last_stamp_ns) / 1e9
            old = 1.0 / health.rate_hz if health.rate_hz > 0 else period
            health.rate_hz = 1.0 / ((1 - _RATE_SMOOTHING) * old + _RATE_SMOOTHING * period)
        health.received += 1
        if health.last_stamp_ns is None or stamp_ns > health.last_stamp_ns:
            health.last_stamp_ns = stamp_ns
        health.last_arrival_ns = now_ns

    def _is_stale(self, anchor_ns: int) -> bool:
        return self._last_emitted_ns is not None and anchor_ns <= self._last_emitted_ns

    def _add_anchor(self, stamp_ns: int, message: Any, now_ns: int) -> list[SyncedFrame]:
        health = self._health[self.config.anchor]
        if any(pending.stamp_ns == stamp_ns for pending in self._pending) or (
            self._last_emitted_ns == stamp_ns
        ):
            health.duplicates += 1
            self.stats.dropped_duplicate += 1
            self.stats.anchor_dropped["duplicate_stamp"] += 1
            return []
        if self._is_stale(stamp_ns):
            health.stale_dropped += 1
            self.stats.dropped_stale += 1
            self.stats.anchor_dropped["stale_stamp"] += 1
            return []
        pending = _Pending(stamp_ns, message, now_ns + self.config.timeout_ns)
        for key, buffer in self._buffers.items():
            self._match_buffered(pending, key, buffer)
        stamps = [item.stamp_ns for item in self._pending]
        self._pending.insert(bisect.bisect(stamps, stamp_ns), pending)
        if len(self._pending) > self.config.max_pending:
            self._pending.pop(0)
            self.stats.dropped_overflow += 1
            self.stats.anchor_dropped["queue_overflow"] += 1
        return self._emit_completed()

    def _match_buffered(self, pending: _Pending, key: str, buffer: list) -> None:
        member = self._members[key]
        for stamp_ns, message in buffer:
            self._offer(pending, member, stamp_ns, message)

    def _offer(self, pending: _Pending, member: MemberConfig, stamp_ns: int, message: Any) -> bool:
        error = abs(stamp_ns - member.offset_ns - pending.stamp_ns)
        if error > member.slop_ns:
            return False
        current = pending.matches.get(member.key)
        if current is None or error < abs(current[0] - member.offset_ns - pending.stamp_ns):
            pending.matches[member.key] = (stamp_ns, message)
        return True

    def _add_member(self, key: str, stamp_ns: int, message: Any) -> list[SyncedFrame]:
        member, health = self._members[key], self._health[key]
        buffer = self._buffers[key]
        if any(buffered_stamp == stamp_ns for buffered_stamp, _ in buffer):
            health.duplicates += 1
            self.stats.dropped_duplicate += 1
            return []
        anchor_time = stamp_ns - member.offset_ns
        if (
            self._last_emitted_ns is not None
            and anchor_time + member.slop_ns <= self._last_emitted_ns
        ):
            # Could only match frames already emitted.
            health.stale_dropped += 1
            self.stats.dropped_stale += 1
            return []
        # Keep the buffer sorted by stamp and bounded: under a flood the oldest goes first.
        bisect.insort(buffer, (stamp_ns, message), key=lambda item: item[0])
        if len(buffer) > self.config.max_buffered:
            buffer.pop(0)
            self.stats.dropped_overflow += 1
        for pending in self._pending:
            self._offer(pending, member, stamp_ns, message)
        return self._emit_completed()

    def _emit_completed(self) -> list[SyncedFrame]:
        """Emit the newest complete frame; older pending frames become stale and are dropped."""
        complete = [
            index
            for index, pending in enumerate(self._pending)
            if len(pending.matches) == len(self._members)
        ]
        if not complete:
            return []
        newest = complete[-1]
        for older in self._pending[:newest]:
            if older.stamp_ns < self._pending[newest].stamp_ns:
                self.stats.dropped_stale += 1
                self.stats.anchor_dropped["superseded"] += 1
                self._health[self.config.anchor].stale_dropped += 1
        frame = self._emit(self._pending[newest], timed_out=False)
        self._pending = self._pending[newest + 1 :]
        return [frame]

    def _emit(self, pending: _Pending, timed_out: bool) -> SyncedFrame:
        anchor = self.config.anchor
        messages = {anchor: pending.message}
        stamps = {anchor: pending.stamp_ns}
        present = {anchor: True}
        for key in self._members:
            match = pending.matches.get(key)
            present[key] = match is not None
            health = self._health[key]
            if match is None:
                health.missing += 1
            else:
                health.matched += 1
                stamps[key], messages[key] = match
        self._health[anchor].matched += 1
        self._last_emitted_ns = pending.stamp_ns
        self._prune_buffers()
        self.stats.emitted += 1
        frame = SyncedFrame(pending.stamp_ns, messages, stamps, present, timed_out)
        if frame.complete:
            self.stats.emitted_complete += 1
        if timed_out:
            self.stats.emitted_on_timeout += 1
        return frame

    def _prune_buffers(self) -> None:
        """Drop buffered member messages that can only match already-emitted frames."""
        last = self._last_emitted_ns
        for key, buffer in self._buffers.items():
            member = self._members[key]
            while buffer and buffer[0][0] - member.offset_ns + member.slop_ns <= last:
                buffer.pop(0)
