"""Answers kept while nothing changed: the reads a watch floor asks over and over (every
console and program polling status, the inbox, a channel's newest page, the alarms) are worked
out once per change of the store, not once per request.

Rules:
- Only a use-case service keeps or takes an answer, and only after it has authorized the acting
  user and passed the back-channel gate: a kept answer is never a way around either.
- The key names everything the answer depends on: the read, its arguments and the back channels
  hidden from the caller, so users who see different channels never share an answer.
- An answer is used only while the store is as it was when the answer was worked out: no write
  by this process since, none by another connection that the store can tell (`SqlStore.version`,
  store/cache.py), and for at most KEEP_MS (a change the backend cannot tell about, such as a
  hand edit with psql on PostgreSQL, shows within that). Every message in it passed the at-rest
  check (station/integrity.py) against that very state; an answer whose working-out wrote
  something (an integrity alarm) is not kept.
- Kept answers are encoded JSON (bytes): nothing can change one once it is kept. At most ANSWERS
  of them, least recently used out first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Hashable
from typing import Any

from parley.store.base import SqlStore
from parley.store.cache import LRU

KEEP_MS = 1_000
ANSWERS = 256


def encode(data: Any) -> bytes:
    """JSON as the API sends it (as Starlette's JSONResponse renders it)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class Answers:
    def __init__(self, store: SqlStore, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self._kept: LRU[Hashable, tuple[tuple[int, int], int, bytes]] = LRU(ANSWERS)
        # One thread at a time works out the answer under a key; the others asking meanwhile
        # wait for it and take it, instead of all working out the same answer (50 clients
        # polling the inbox each re-read it whenever the store moved). A gate pushed out of the
        # LRU while in use only lets a second thread work in parallel.
        self._gates: LRU[Hashable, threading.Lock] = LRU(ANSWERS)
        self._lock = threading.Lock()

    def _good(self, key: Hashable) -> bytes | None:
        now = self.clock()
        version = self.store.version()
        with self._lock:
            hit = self._kept.get(key)
        if hit is not None and hit[0] == version and now < hit[1]:
            return hit[2]
        return None

    def kept(self, key: Hashable, work: Callable[[], Any]) -> bytes:
        """The answer under `key` as JSON: the kept one if still good, else `work()` encoded
        (and kept, if nothing was written meanwhile). Callers have authorized the user."""
        body = self._good(key)
        if body is not None:
            return body
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = threading.Lock()
                self._gates.put(key, gate)
        with gate:
            body = self._good(key)  # worked out by the thread that held the gate
            if body is not None:
                return body
            now = self.clock()
            version = self.store.version()
            body = encode(work())
            if self.store.version() == version:
                with self._lock:
                    self._kept.put(key, (version, now + KEEP_MS, body))
            return body
