"""Timeout synchroniser: complete, partial, dead, jittered, looping and flooded streams."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mlesam_ros.sync import MemberConfig, SyncConfig, TimeoutSynchronizer

MS = 1_000_000
PERIOD = 33 * MS  # ~30 Hz RGB


def make_sync(strict: bool = False, **overrides) -> TimeoutSynchronizer:
    config = dict(
        members=(
            MemberConfig("depth", slop_ns=10 * MS),
            MemberConfig("thermal", slop_ns=8 * MS, offset_ns=5 * MS),
            MemberConfig("lidar", slop_ns=60 * MS),
        ),
        timeout_ns=100 * MS,
        strict=strict,
    )
    config.update(overrides)
    return TimeoutSynchronizer(SyncConfig(**config))


def feed_frame(sync, stamp, now, members=("depth", "thermal", "lidar"), latency=2 * MS):
    """RGB at ``stamp`` then each member (thermal with its +5 ms phase), arriving later."""
    out = sync.add("rgb", stamp, f"rgb{stamp}", now)
    offsets = {"depth": 1 * MS, "thermal": 5 * MS, "lidar": -20 * MS}
    for key in members:
        out += sync.add(key, stamp + offsets[key], f"{key}{stamp}", now + latency)
    return out


def test_all_present_emits_immediately_with_nearest_matches() -> None:
    sync = make_sync()
    frames = []
    for index in range(6):
        stamp = 1_000 * MS + index * PERIOD
        frames += feed_frame(sync, stamp, now=stamp + 3 * MS)
    assert [frame.stamp_ns for frame in frames] == [1_000 * MS + i * PERIOD for i in range(6)]
    for frame in frames:
        assert frame.complete and not frame.timed_out
        assert frame.presence(("rgb", "depth", "thermal", "lidar", "event")) == (
            True,
            True,
            True,
            True,
            False,
        )
        assert frame.messages["thermal"] == f"thermal{frame.stamp_ns}"
        assert frame.stamps["depth"] == frame.stamp_ns + 1 * MS
    assert sync.stats.emitted == sync.stats.emitted_complete == 6
    assert sync.poll(10_000 * MS) == []


def test_fixed_offset_and_slop_decide_matching() -> None:
    sync = make_sync()
    stamp = 500 * MS
    assert sync.add("rgb", stamp, "rgb", stamp) == []
    # Thermal is expected at stamp + 5 ms; -5 ms is 10 ms off, beyond its 8 ms slop.
    assert sync.add("thermal", stamp - 5 * MS, "early", stamp) == []
    sync.add("depth", stamp + 11 * MS, "late-depth", stamp)  # beyond 10 ms slop
    sync.add("lidar", stamp + 59 * MS, "lidar", stamp)
    (frame,) = sync.poll(stamp + 100 * MS)
    assert frame.timed_out
    assert frame.present == {"rgb": True, "depth": False, "thermal": False, "lidar": True}
    # A closer member replaces a farther one while the frame is pending.
    sync = make_sync()
    sync.add("rgb", stamp, "rgb", stamp)
    sync.add("lidar", stamp + 50 * MS, "far", stamp)
    sync.add("lidar", stamp - 10 * MS, "near", stamp)
    (frame,) = sync.poll(stamp + 100 * MS)
    assert frame.messages["lidar"] == "near"


def test_missing_sensor_is_reported_at_timeout() -> None:
    sync = make_sync()
    stamp = 2_000 * MS
    assert feed_frame(sync, stamp, now=stamp, members=("depth", "thermal")) == []
    assert sync.poll(stamp + 99 * MS) == []
    (frame,) = sync.poll(stamp + 100 * MS)
    assert frame.timed_out and not frame.complete
    assert frame.present == {"rgb": True, "depth": True, "thermal": True, "lidar": False}
    assert "lidar" not in frame.messages
    health = sync.health()
    assert health["lidar"].missing == 1 and health["lidar"].received == 0
    assert health["depth"].matched == 1 and health["depth"].missing_ratio == 0.0


def test_sensor_dies_mid_stream() -> None:
    sync = make_sync()
    emitted = []
    for index in range(20):
        stamp = index * PERIOD + 10_000 * MS
        members = ("depth", "thermal", "lidar") if index < 10 else ("depth", "thermal")
        emitted += feed_frame(sync, stamp, now=stamp, members=members)
        emitted += sync.poll(stamp + 5 * MS)
    emitted += sync.poll(30_000 * MS)
    assert [frame.stamp_ns for frame in emitted] == [i * PERIOD + 10_000 * MS for i in range(20)]
    lidar_present = [frame.present["lidar"] for frame in emitted]
    # The lidar message of frame 9 (stamp - 20 ms) still matches frame 10 within 60 ms slop.
    assert lidar_present[:11] == [True] * 11 and not any(lidar_present[12:])
    assert all(frame.timed_out for frame in emitted[12:])
    lidar = sync.health()["lidar"]
    assert lidar.missing >= 8 and lidar.missing_ratio == pytest.approx(lidar.missing / 20)
    assert lidar.rate_hz == pytest.approx(1e9 / PERIOD, rel=1e-6)
    assert lidar.age_ns(30_000 * MS) > 19_000 * MS


def test_jittered_out_of_order_and_duplicate_stamps() -> None:
    rng = np.random.default_rng(4)
    sync = make_sync()
    events = []
    for index in range(30):
        stamp = 50_000 * MS + index * PERIOD
        events.append((stamp + int(rng.integers(0, 4 * MS)), "rgb", stamp))
        for key, offset in (("depth", 0), ("thermal", 5 * MS), ("lidar", -15 * MS)):
            jitter = int(rng.integers(-3 * MS, 3 * MS))
            # Members arrive up to 20 ms before or after the RGB message, in any order.
            arrival = stamp + int(rng.integers(-20 * MS, 20 * MS))
            events.append((arrival, key, stamp + offset + jitter))
    events.sort()
    emitted = []
    now = 0
    for arrival, key, stamp in events:
        now = max(now, arrival)  # the clock itself is monotonic
        emitted += sync.add(key, stamp, (key, stamp), now)
        if key == "depth" and stamp % 3 == 0:  # a re-sent duplicate
            emitted += sync.add(key, stamp, (key, stamp), now)
    emitted += sync.poll(now + 200 * MS)
    stamps = [frame.stamp_ns for frame in emitted]
    assert stamps == sorted(set(stamps)), "output stamps strictly increase"
    complete = [frame for frame in emitted if frame.complete]
    assert len(complete) >= 25
    for frame in complete:
        assert abs(frame.stamps["thermal"] - 5 * MS - frame.stamp_ns) <= 8 * MS
        assert abs(frame.stamps["depth"] - frame.stamp_ns) <= 10 * MS
    assert sync.stats.dropped_duplicate > 0
    assert len(emitted) + sync.stats.dropped_stale == 30


def test_stale_anchor_and_duplicate_anchor_are_dropped() -> None:
    sync = make_sync()
    feed_frame(sync, 1_000 * MS, now=1_000 * MS)
    assert feed_frame(sync, 1_000 * MS, now=1_010 * MS) == []  # duplicate
    assert sync.add("rgb", 900 * MS, "old", 1_020 * MS) == []  # older than emitted
    assert sync.stats.dropped_duplicate >= 1 and sync.stats.dropped_stale >= 1
    assert sync.poll(5_000 * MS) == []
    # A newer complete frame overtakes an older incomplete one, which becomes stale.
    sync.add("rgb", 1_100 * MS, "waiting", 1_100 * MS)
    frames = feed_frame(sync, 1_133 * MS, now=1_134 * MS)
    assert [frame.stamp_ns for frame in frames] == [1_133 * MS]
    assert sync.poll(5_000 * MS) == []


def test_clock_jump_backwards_resets_and_keeps_running() -> None:
    sync = make_sync()
    first = []
    for index in range(10):
        stamp = 100_000 * MS + index * PERIOD
        first += feed_frame(sync, stamp, now=stamp)
    sync.add("rgb", 100_400 * MS, "pending at loop", 100_400 * MS)
    # The bag loops: stamps and the replay clock restart at the beginning.
    second = []
    for index in range(10):
        stamp = 100_000 * MS + index * PERIOD
        second += feed_frame(sync, stamp, now=stamp)
    assert len(first) == len(second) == 10
    assert all(frame.complete for frame in second)
    assert sync.stats.resets == 1
    # A small backward step (jitter) is no reset.
    sync.poll(100_000 * MS + 9 * PERIOD - 10 * MS)
    assert sync.stats.resets == 1


def test_bounded_memory_under_a_flood() -> None:
    sync = make_sync(max_pending=4, max_buffered=8)
    for index in range(10_000):
        sync.add("lidar", index * MS, index, index * MS)
    assert len(sync._buffers["lidar"]) == 8
    assert sync.stats.dropped_overflow == 10_000 - 8
    # RGB frames piling up (no poll, members dead) are bounded too.
    for index in range(100):
        sync.add("rgb", 20_000 * MS + index * MS, index, 0 if index == 0 else 20_000 * MS)
    assert len(sync._pending) <= 4
    frames = sync.poll(10**15)
    assert len(frames) <= 4 and all(not frame.complete for frame in frames)


def test_strict_mode_requires_every_member() -> None:
    sync = make_sync(strict=True)
    stamp = 7_000 * MS
    assert feed_frame(sync, stamp, now=stamp, members=("depth", "thermal")) == []
    assert sync.poll(stamp + 500 * MS) == []
    assert sync.stats.dropped_incomplete == 1
    (frame,) = feed_frame(sync, stamp + PERIOD, now=stamp + 600 * MS)
    assert frame.complete and not frame.timed_out


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="unknown key 'event'; configured: rgb, depth"):
        make_sync().add("event", 0, None, 0)
    with pytest.raises(ValueError, match="timeout_ns must be > 0"):
        make_sync(timeout_ns=0)
    with pytest.raises(ValueError, match="member keys must be unique"):
        SyncConfig(members=(MemberConfig("rgb", 1),), timeout_ns=1)
    with pytest.raises(ValueError, match="slop_ns must be >= 0"):
        MemberConfig("depth", -1)


def test_every_anchor_is_emitted_or_dropped_by_a_named_reason() -> None:
    """A random mix of duplicates, stamps going back, floods and a bag loop; every
    RGB message offered is either emitted or counted once in ``anchor_dropped``."""
    rng = np.random.default_rng(7)
    for strict in (False, True):
        sync = make_sync(strict=strict, max_pending=3)
        offered, emitted, now, stamp = 0, [], 0, 10_000 * MS
        for step in range(400):
            now += int(rng.integers(0, 40)) * MS
            kind = rng.random()
            if step == 200:
                stamp_in = stamp = 1_000 * MS  # a bag loop: far back
            elif kind < 0.1:
                stamp_in = stamp  # duplicate
            elif kind < 0.2:
                stamp_in = stamp - int(rng.integers(1, 200)) * MS  # back, within jump bound
            else:
                stamp_in = stamp = stamp + PERIOD
            offered += 1
            emitted += sync.add("rgb", stamp_in, None, now)
            if rng.random() < 0.5:  # the LiDAR matches only sometimes; floods build queues
                emitted += sync.add("lidar", stamp_in, None, now)
                emitted += sync.add("depth", stamp_in + MS, None, now)
                emitted += sync.add("thermal", stamp_in + 5 * MS, None, now)
        emitted += sync.poll(now + 10_000 * MS)
        dropped = sync.stats.anchor_dropped
        assert len(emitted) + sum(dropped.values()) == offered, (strict, dict(dropped))
        assert dropped["duplicate_stamp"] > 0 and dropped["stale_stamp"] > 0
        assert set(dropped) <= {"duplicate_stamp", "stale_stamp", "superseded",
                                "queue_overflow", "incomplete_strict", "clock_reset"}
        assert (dropped["incomplete_strict"] > 0) == strict
        stamps = [frame.stamp_ns for frame in emitted]
        steps_back = [b for a, b in itertools.pairwise(stamps) if b <= a]
        assert len(steps_back) == 1 and steps_back[0] >= 1_000 * MS  # only the bag loop
