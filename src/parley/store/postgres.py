"""The PostgreSQL store: the same queries as SQLite, for a station that outgrew one process.

Rules this backend keeps (DESIGN.md §5 "Scale"):
- The connection runs in autocommit mode; `tx()` issues BEGIN/COMMIT itself, so a nested `tx()`
  joins the outer transaction (the depth counter lives in `SqlStore`) and a commit that returned is
  durable (PostgreSQL's default `synchronous_commit=on`).
- Write transactions are serialized across every process on the database, like SQLite's
  BEGIN IMMEDIATE: each one takes a transaction-level advisory lock right after BEGIN. The queries
  in `SqlStore` read-then-write (add_channel, add_evidence, set_meta …) and are only
  correct if no other writer interleaves. Reads outside a transaction do not wait.
- A statement that fails inside a transaction aborts it (unlike SQLite, which only undoes that
  statement). COMMIT of an aborted transaction is refused loudly, never reported as a success.
- Queries are written with `?`; `%` is doubled before `?` becomes `%s`, because psycopg reads
  `%` as the start of a placeholder (`LIKE 'channel.%'` would otherwise break).
- Exactly one process of a multi-worker station runs the dispatcher: the one holding a
  session-level advisory lock on a dedicated connection (`try_dispatcher_lock`). The lock goes
  away with that connection, so a crashed holder frees it for the next worker.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any

import psycopg

from parley.protocol import crypto
from parley.store.base import SqlStore

DISPATCHER_LOCK = "parley.dispatcher"

# Two-int advisory lock keys live in a different key space from the one-bigint keys that
# `try_dispatcher_lock` uses, so they can never collide. 0x50524C59 is "PRLY".
_LOCK_CLASS = 0x50524C59
_WRITE_LOCK = 1
_MIGRATE_LOCK = 2

_BLOB = re.compile(r"\bBLOB\b", re.IGNORECASE)
_AUTOINC = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.IGNORECASE)


def lock_key(key: int | str) -> int:
    """A signed 64-bit advisory lock key; strings are hashed so callers can use names."""
    if isinstance(key, int):
        if not -(2**63) <= key < 2**63:
            raise ValueError("an advisory lock key must fit in a signed 64-bit integer")
        return key
    return int.from_bytes(crypto.blake2b(key.encode(), 8), signed=True)


class PostgresStore(SqlStore):
    placeholder = "%s"
    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
            dsn, autocommit=True, application_name="parley"
        )
        self._lock_conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock_key: int | None = None
        self._dispatcher = threading.RLock()  # guards the two fields above
        self._generation: int | None = None  # the `generation` counter as last seen or set
        try:
            super().__init__()
        except BaseException:
            self.conn.close()
            raise

    # --- transactions ----------------------------------------------------------------------------
    def _durable(self, on: bool) -> None:
        # Session-level, between transactions: a later durable commit waits for this one too.
        # RESET: back to the server's setting, whatever it is. A lost connection keeps no
        # session setting, and the error that lost it is the one to report.
        if self.conn.closed or self.conn.broken:
            return
        self.conn.execute(b"RESET synchronous_commit" if on else b"SET synchronous_commit = off")

    def _begin(self) -> None:
        # No parameters: psycopg sends this as one simple query, one round trip.
        self.conn.execute(
            f"BEGIN; SELECT pg_advisory_xact_lock({_LOCK_CLASS}, {_WRITE_LOCK})".encode()
        )

    def _commit(self) -> None:
        cur = self.conn.execute(b"COMMIT")
        if cur.statusmessage != "COMMIT":
            # PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK and no error.
            raise psycopg.errors.InFailedSqlTransaction(
                "a statement failed inside this transaction, so PostgreSQL rolled it back;"
                " nothing was committed"
            )

    def _rollback(self) -> None:
        # If the connection is gone, so is the transaction: keep the error that brought us here.
        if self.conn.closed or self.conn.broken:
            return
        try:
            self.conn.execute(b"ROLLBACK")
        except psycopg.OperationalError:
            if not self.conn.broken:
                raise

    # --- what other workers may have changed (store/cache.py) ------------------------------------
    def _foreign_writes(self) -> bool:
        rows = self._execute("SELECT n FROM counters WHERE name = 'generation'")
        now = int(rows[0][0]) if rows else 0
        seen, self._generation = self._generation, now
        return seen is not None and seen != now

    def _bump(self) -> None:
        # Inside the transaction, under the write lock every writer takes: the value after this
        # is ours alone until we commit, and a worker that sees another one drops its caches.
        rows = self._execute("UPDATE counters SET n = n + 1 WHERE name = 'generation' RETURNING n")
        if rows:
            self._generation = int(rows[0][0])

    # --- statements ------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement already in psycopg form (`%s` placeholders, `%%` for `%`)."""
        # The lock keeps other threads' statements out of a transaction this store has open.
        with self._lock:
            cur = self.conn.execute(sql.encode(), params)
            if cur.description is None:
                return []
            return [_plain(row) for row in cur.fetchall()]

    def _insert_id(self, sql: str, params: tuple[object, ...]) -> int:
        rows = self._execute(sql + " RETURNING id", params)
        return int(rows[0][0])

    def _rowcount(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            return self.conn.execute(sql.encode(), params).rowcount

    def _table_exists(self, name: str) -> bool:
        rows = self._execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        return bool(rows[0][0])

    def _ddl(self, sql: str) -> str:
        sql = _AUTOINC.sub("BIGSERIAL PRIMARY KEY", sql)
        return _BLOB.sub("BYTEA", sql).replace("%", "%%")

    def migrate(self) -> None:
        # Workers starting together must not apply the same migration twice.
        with self._lock:
            self.conn.execute(f"SELECT pg_advisory_lock({_LOCK_CLASS}, {_MIGRATE_LOCK})".encode())
            try:
                super().migrate()
            finally:
                if not (self.conn.closed or self.conn.broken):
                    self.conn.execute(
                        f"SELECT pg_advisory_unlock({_LOCK_CLASS}, {_MIGRATE_LOCK})".encode()
                    )

    # --- the dispatcher lock ---------------------------------------------------------------------
    def try_dispatcher_lock(self, key: int | str = DISPATCHER_LOCK) -> bool:
        """Take the station-wide dispatcher lock without waiting; True if this store holds it.

        The lock is session-level on a connection of its own, so it outlives transactions on the
        main connection and is released when `release_dispatcher_lock`, `close`, or the death of
        this process closes that connection.
        """
        k = lock_key(key)
        with self._dispatcher:
            if self._lock_key is not None:
                if self._lock_key == k and self.holds_dispatcher_lock():
                    return True
                self.release_dispatcher_lock()
            conn = psycopg.connect(self.dsn, autocommit=True, application_name="parley-dispatcher")
            try:
                got = conn.execute(b"SELECT pg_try_advisory_lock(%s)", (k,)).fetchone()
            except BaseException:
                conn.close()
                raise
            if not got or not got[0]:
                conn.close()
                return False
            self._lock_conn, self._lock_key = conn, k
            return True

    def holds_dispatcher_lock(self) -> bool:
        """Whether the lock is still ours: False once its connection has died."""
        with self._dispatcher:
            conn = self._lock_conn
            if conn is None:
                return False
            try:
                conn.execute(b"SELECT 1")
            except psycopg.Error:
                self.release_dispatcher_lock()
                return False
            return not conn.broken

    def release_dispatcher_lock(self) -> None:
        with self._dispatcher:
            conn, self._lock_conn, self._lock_key = self._lock_conn, None, None
            if conn is not None:
                # Unlock before closing: the server ends a closed session a moment later, and
                # until then the lock would still be held for whoever asks next.
                with contextlib.suppress(psycopg.Error):
                    conn.execute(b"SELECT pg_advisory_unlock_all()")
                conn.close()

    def close(self) -> None:
        self.release_dispatcher_lock()
        self.conn.close()


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """bytea may come back as a memoryview, depending on the loader; the store promises bytes."""
    if any(isinstance(v, memoryview) for v in row):
        return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
    return row


__all__ = ["DISPATCHER_LOCK", "PostgresStore", "lock_key"]
