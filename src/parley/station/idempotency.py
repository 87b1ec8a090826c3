"""Pruning the idempotency keys of sends (docs/limits.md).

A repeated `Idempotency-Key` answers the envelope its first use made, instead of sending again
(station/node.py). A retry comes within minutes, not weeks, so a key is kept for `KEEP_MS`
after its first use, and at most the `MAX_KEYS` newest are kept (a client sending many keys
cannot grow the table without bound). A retry after that sends again. The task runs with the
station's scheduled tasks, at most once every `EVERY_MS` of its clock.
"""

from __future__ import annotations

from parley.station.node import Station

DAY_MS = 24 * 3600 * 1000
KEEP_MS = 7 * DAY_MS
MAX_KEYS = 100_000
EVERY_MS = 10 * 60 * 1000


class Pruner:
    __name__ = "prune_idempotency"  # how a failure is named in its alarm (Station.tick)

    def __init__(self, keep_ms: int = KEEP_MS, max_keys: int = MAX_KEYS) -> None:
        self.keep_ms, self.max_keys = keep_ms, max_keys
        self.next_ms = 0

    def __call__(self, station: Station, now_ms: int) -> None:
        if now_ms < self.next_ms:
            return
        self.next_ms = now_ms + EVERY_MS
        station.store.prune_idempotency(now_ms - self.keep_ms, self.max_keys)


def install(station: Station) -> None:
    station.scheduled.append(Pruner())
