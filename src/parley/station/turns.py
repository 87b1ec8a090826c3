"""Turns: one peer's pushes applied in the order they arrived.

A sender keeps two pushes in flight (station/dispatcher.py), the second with the envelopes after
the first's. Each is prepared (parsed, its crypto done) as soon as it arrives, but the second
waits for the first to be applied before it takes the store: applied first, its envelopes would
be held as ahead of a gap and applied again with the first (docs/protocol.md §10). The wait is
bounded: a turn that is not given within `wait_s` is taken anyway, and the held envelopes keep
the order then.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

WAIT_S = 2.0


class Turns:
    def __init__(self, wait_s: float = WAIT_S) -> None:
        self.wait_s = wait_s
        self._cv = threading.Condition()
        self._queues: dict[str, deque[object]] = {}

    @contextmanager
    def taken(self, key: str) -> Iterator[Turn]:
        """A turn in `key`'s queue, from now until the block ends."""
        ticket = object()
        with self._cv:
            self._queues.setdefault(key, deque()).append(ticket)
        try:
            yield Turn(self, key, ticket)
        finally:
            with self._cv:
                q = self._queues[key]
                q.remove(ticket)
                if not q:
                    del self._queues[key]
                self._cv.notify_all()

    def _wait(self, key: str, ticket: object) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._queues[key][0] is ticket, self.wait_s)


class Turn:
    def __init__(self, turns: Turns, key: str, ticket: object) -> None:
        self._turns, self._key, self._ticket = turns, key, ticket

    def wait(self) -> bool:
        """Until every turn taken before this one has ended (or `wait_s` passed: False)."""
        return self._turns._wait(self._key, self._ticket)
