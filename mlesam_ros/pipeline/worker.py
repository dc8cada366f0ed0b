"""Latest-frame-wins hand-over between the subscription callbacks and the inference worker.

A queue would let slow inference build up latency frame after frame; a one-slot mailbox keeps
only the newest synced frame, and a frame replaced before the worker took it counts as
dropped. Live, a worker thread blocks on :meth:`LatestSlot.take`; replay drains the same slot
synchronously after every callback, so both paths share the drop semantics.
"""

from __future__ import annotations

import threading
from typing import Any


class LatestSlot:
    """One-element mailbox: ``put`` replaces, ``take`` waits for and removes the element."""

    def __init__(self) -> None:
        self._item: Any = None
        self._full = False
        self._closed = False
        self._condition = threading.Condition()
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; returns ``True`` when it replaced one the worker never took."""
        with self._condition:
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self._condition.notify()
            return replaced

    def take(self, timeout_s: float | None = None) -> Any:
        """Remove and return the item; ``None`` after ``timeout_s`` or once closed."""
        with self._condition:
            if not self._full and not self._closed:
                self._condition.wait(timeout_s)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake a waiting ``take`` for shutdown."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self) -> None:
        """Allow waiting again after :meth:`close` (lifecycle re-activation)."""
        with self._condition:
            self._closed = False
