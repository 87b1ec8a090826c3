"""The SQLite store: the default, embedded backend.

One connection per process (and a second for the dispatcher's reads for a push, `pushable`,
which wait for no commit), WAL journal, `synchronous=FULL`: a commit that returned is on disk,
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
from collections.abc import Collection
from pathlib import Path

from parley.store.base import EnvelopeRow, SqlStore

CHECKPOINT_EVERY_S = 0.25  # at most this often, and only after a commit: none while idle
BACKSTOP_PAGES = 16384  # 64 MiB of WAL: then the committing connection checkpoints after all
IDLE_S = 5.0  # the thread ends after this long without a commit


class Checkpointer:
    """Checkpoints one database's WAL (PASSIVE: it waits for no reader or writer) on a thread
    and connection of its own, woken by commits, at most every CHECKPOINT_EVERY_S. The thread
    ends after IDLE_S without a commit (a store nobody closed keeps no thread) and the next
    commit starts another."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()  # held around each checkpoint; `SqliteStore._scrub` takes it
        self._start = threading.Lock()  # the thread's life; never held during a checkpoint
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # checkpoints done (tests)

    @property
    def running(self) -> bool:
        with self._start:
            return self._thread is not None and self._thread.is_alive()

    def committed(self) -> None:
        self._wake.set()  # before the check: a thread on its way out sees it and stays
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="parley-wal-checkpoint", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")  # the database file synced after each copy
        try:
            while not self._closed.is_set():
                if not self._wake.wait(IDLE_S):
                    with self._start:
                        if not self._wake.is_set():
                            self._thread = None
                            return
                    continue
                self._wake.clear()
                with self.lock:
                    if self._closed.is_set():
                        return
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self.runs += 1
                    except sqlite3.Error:
                        pass  # the next commit wakes it again; the backstop is there besides
                self._closed.wait(CHECKPOINT_EVERY_S)
        finally:
            conn.close()

    def close(self) -> None:
        with self._start:
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
        # Statement journals (each savepoint of a group commit has one) and temporary tables in
        # memory: on disk, SQLite made, wrote and unlinked a file in /var/tmp per send (issue
        # 14). Nothing there is needed after a crash: the WAL is what recovery reads.
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        self.conn = conn
        self.checkpointer = Checkpointer(self.path)
        # The dispatcher's reads for a push, on a connection of their own (`pushable`).
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._on_disk = Path(self.path).is_file()  # not ":memory:", which one connection sees
        self._data_version: int | None = None
        super().__init__()

    def _durable(self, on: bool) -> None:
        # WAL with NORMAL: the commit is atomic and ordered, the WAL synced at the next FULL one.
        self.conn.execute(f"PRAGMA synchronous={'FULL' if on else 'NORMAL'}")

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

    def _rowcount(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            return self.conn.execute(sql, params).rowcount

    def _table_exists(self, name: str) -> bool:
        return bool(
            self._execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
        )

    def _scrub(self) -> None:
        # The old page images (secret included) are still in the WAL until it is checkpointed
        # and truncated.
        # The checkpointer's lock too: a checkpoint running on its connection would make this
        # one return busy with the WAL untouched.
        # And the reader's: a read under way keeps the frames it reads in the WAL.
        with self._lock, self.checkpointer.lock, self._reader_lock:
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

    def pushable(self, peer: str, limit: int, skip: Collection[int] = ()) -> list[EnvelopeRow]:
        # A second connection reads the last committed state while a group of sends holds the
        # store (its lock, and SQLite's write lock): WAL readers wait for no writer. It sees
        # only what is on disk: a commit becomes visible to other connections after the WAL
        # was synced (synchronous=FULL), so nothing is pushed that a crash could take back
        # and a restart seal again differently. One read transaction: one snapshot.
        if not self._on_disk:
            return self.pending(peer, limit, skip)
        with self._reader_lock:
            if self._reader is None:
                self._reader = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
                self._reader.execute("PRAGMA query_only=ON")
                self._reader.execute("PRAGMA busy_timeout=10000")
            conn = self._reader

            def q(sql: str, *params: object) -> list[tuple[object, ...]]:
                return conn.execute(sql, params).fetchall()

            conn.execute("BEGIN")
            try:
                return self._pending(q, peer, limit, skip)
            finally:
                conn.execute("COMMIT")

    def close(self) -> None:
        self.checkpointer.close()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self.conn.close()
