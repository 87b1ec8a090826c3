"""The SQLite store: the default, embedded backend.

One connection per process, WAL journal, `synchronous=FULL`: a commit that returned is on disk,
so "sent" and receipts are only ever reported for what survives a crash or power loss.
Every write happens inside `with store.tx():`, one transaction per logical step.

The WAL is copied back into the database file (a checkpoint) by a thread of its own, on its own
connection, a moment after commits (`Checkpointer`). SQLite's default runs it inside the COMMIT
that crosses 1,000 pages, under the store's lock: every 60 or so commits one of them also wrote
those pages into the database file and synced it, and every request behind it waited (issue 14).
A checkpoint changes nothing a commit promised (the WAL was synced first); the committing
connection still checkpoints itself if the WAL grows past BACKSTOP_PAGES (the thread starved).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from parley.store.base import SqlStore

CHECKPOINT_EVERY_S = 0.25  # at most this often, and only after a commit: none while idle
BACKSTOP_PAGES = 16384  # 64 MiB of WAL: then the committing connection checkpoints after all


class Checkpointer:
    """Checkpoints one database's WAL (PASSIVE: it waits for no reader or writer) on a thread
    and connection of its own, woken by commits, at most every CHECKPOINT_EVERY_S."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()  # held around each checkpoint; `SqliteStore._scrub` takes it
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # checkpoints done (tests)

    def committed(self) -> None:
        if self._thread is None:
            with self.lock:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="parley-wal-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")  # the database file synced after each copy
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                with self.lock:
                    if self._closed.is_set():
                        return
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self.runs += 1
                    except sqlite3.Error:
                        pass  # the next commit wakes it again; the backstop is there besides
                if self._closed.wait(CHECKPOINT_EVERY_S):
                    return
        finally:
            conn.close()

    def close(self) -> None:
        with self.lock:
            self._closed.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()


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
        conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        self.conn = conn
        self.checkpointer = Checkpointer(self.path)
        self._data_version: int | None = None
        super().__init__()

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")
        self.checkpointer.committed()

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
        # The checkpointer's lock too: a checkpoint running on its connection would make this
        # one return busy with the WAL untouched.
        with self._lock, self.checkpointer.lock:
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
        self.checkpointer.close()
        self.conn.close()
