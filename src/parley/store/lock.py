"""The store's lock: re-entrant, and fair to threads that wait for it.

A group of sends (station/writer.py) holds the store while it is sealed and committed, and the
writer starts the next group at once. A plain RLock goes to whoever asks first once it is free,
and the writer, already running, always asks first: at `delivery --batch 100` a read on another
thread (the dispatcher's plan of a round, the peer record a push answer is checked against)
waited 0.4-0.5 s, until the writer's queue was empty, and the peer with it (issue 14). Here a
thread that finds the lock taken counts itself waiting, and a thread that is about to take the
lock again at once (the writer, between groups) first lets the waiting threads have it.
"""

from __future__ import annotations

import threading
import time

YIELD_S = 0.05  # at most this long for waiting threads to take the lock, then take it anyway
POLL_S = 0.0002  # how often `yield_to_waiters` looks whether they have


class StoreLock:
    __slots__ = ("_count", "_lock", "_waiting")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._count = threading.Lock()
        self._waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        with self._count:
            self._waiting += 1
        try:
            return self._lock.acquire(True, timeout)
        finally:
            with self._count:
                self._waiting -= 1

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    @property
    def waiting(self) -> int:
        """Threads blocked on the lock now."""
        return self._waiting

    def yield_to_waiters(self, limit_s: float = YIELD_S) -> None:
        """For a thread that does not hold the lock and would take it again at once: wait until
        every thread blocked on it has had it, or `limit_s` has passed."""
        if not self._waiting:
            return
        deadline = time.monotonic() + limit_s
        while self._waiting and time.monotonic() < deadline:
            time.sleep(POLL_S)
