"""The SQLite store: the default, embedded backend.

One connection per process, WAL journal, `synchronous=FULL`: a commit that returned is on disk,
so "sent" and receipts are only ever reported for what survives a crash or power loss.
Every write happens inside `with store.tx():`, one transaction per logical step.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from parley.store.base import SqlStore


class SqliteStore(SqlStore):
    placeholder = "?"

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        # Freed space is zeroed, so an erased prekey secret does not linger in the file.
        conn.execute("PRAGMA secure_delete=ON")
        self.conn = conn
        self._data_version: int | None = None
        super().__init__()

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        # The API's worker threads share this connection: a read must not land inside another
        # thread's open transaction, so every statement takes the store's (re-entrant) lock.
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def _insert_id(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            cur = self.conn.execute(sql, params)
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def _table_exists(self, name: str) -> bool:
        return bool(
            self._execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
        )

    def _scrub(self) -> None:
        # The old page images (secret included) are still in the WAL until it is checkpointed
        # and truncated.
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _changes(self) -> int:
        # Rows this connection changed, also by statements outside `tx()`.
        with self._lock:
            return self.conn.total_changes

    def _foreign_writes(self) -> bool:
        # Changes when another connection commits, never for this connection's own commits.
        with self._lock:
            row = self.conn.execute("PRAGMA data_version").fetchone()
        seen, self._data_version = self._data_version, int(row[0])
        return seen is not None and seen != self._data_version

    def close(self) -> None:
        self.conn.close()
