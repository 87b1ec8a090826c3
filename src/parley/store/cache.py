"""What a store keeps in memory between statements: a bounded LRU map and the epoch that says
whether anything cached is still good.

Rules (SqlStore keeps them; station/node.py caches channel states against the same epoch):
- Only the store's own thread of control changes a cache, under the store's lock, the same lock
  every transaction holds from BEGIN to COMMIT: a reader never sees what a transaction on another
  thread has written but not committed.
- Writes update a cache as they happen (a new chain head) or end its validity by bumping the
  epoch (a channel control body, which changes a channel's state). Anything that undoes writes
  (ROLLBACK, ROLLBACK TO SAVEPOINT, a failed COMMIT) bumps the epoch and empties the store's
  caches: what they held may have come from the undone writes.
- Another connection's commits (another worker process, a command-line tool) bump the epoch too.
  The store learns of them from the backend: SQLite's `PRAGMA data_version`, which changes
  when another connection commits; on PostgreSQL the `generation` counter row, which every
  transaction that stored envelopes or bodies increments before it commits. It is checked at
  every BEGIN (after the write lock is taken, so nothing else commits during the transaction)
  and, outside a transaction, before a cached value is used.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

HEADS = 4096  # chain heads (channel, sender) kept: a few per channel
STATES = 1024  # channel states kept by a station
SEEN = 16384  # `seen` maps of ordering envelopes (control, talks, crises) kept by a station
CREDENTIALS = 1024  # API tokens and sessions remembered as proven (station/users.py)
PEER_ROWS = 1024  # peer records kept by id (a network has tens of peers; more are read afresh)


class LRU(Generic[K, V]):
    """A map holding at most `limit` entries, the least recently used one out first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        try:  # one step each under the GIL: a reader racing an eviction sees a miss, not an error
            self._items.move_to_end(key)
            return self._items[key]
        except KeyError:
            return None

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()
