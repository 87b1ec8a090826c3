"""The store interface: everything a station persists, behind one class per backend.

`SqlStore` holds every query, written in the SQL subset SQLite and PostgreSQL share, with `?`
placeholders that a backend rewrites. A backend supplies the connection, transactions and a few
dialect hooks. Stores hold bytes and plain records; they never interpret protocol meaning.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from typing import Any

from parley.domain.precedence import Precedence, outbox_prio
from parley.errors import Code, LocalError
from parley.store.cache import CREDENTIALS, HEADS, LRU, PEER_ROWS
from parley.store.lock import StoreLock
from parley.store.schema import LATEST, MIGRATIONS, Only

# Evidence kept per sender and kind (an equivocation, a divergent receipt or checkpoint, a
# witness's conflict): the first pieces prove the fork; more, which a hostile peer can sign
# without end, would only fill the disk and the alarm list.
EVIDENCE_LIMIT = 64


class Evidence(Enum):
    KEPT = "kept"
    DUPLICATE = "duplicate"
    FULL = "full"


# The outbox's sort column; the order itself is domain/precedence.outbox_order (see `pending`).
PRIORITY = {p.value: outbox_prio(p) for p in Precedence}


@dataclass(frozen=True)
class _Once:
    """Deferred work with a key (`SqlStore.before_commit_once`)."""

    key: object
    fn: Callable[[], None]

    def __call__(self) -> None:
        self.fn()


@dataclass(frozen=True)
class PeerRow:
    station: str
    name: str
    lang: str
    identity: bytes
    addresses: list[str]
    prekeys: list[dict[str, Any]]
    added: int
    # Set by an admin (station/keys.py), in local ms. A removed or revoked peer is no longer a
    # peer for anything on the wire (`get_peer` and `list_peers` leave it out), but its key
    # still verifies what it signed before (`peer_record`): a transcript never loses records.
    removed: int | None = None
    revoked: int | None = None

    @property
    def active(self) -> bool:
        return self.removed is None and self.revoked is None


@dataclass(frozen=True)
class EnvelopeRow:
    id: int
    channel: str
    sender: str
    seq: int
    hash: bytes
    raw: bytes
    ts: int
    prec: str
    stored: int


@dataclass(frozen=True)
class BodyRow:
    """A stored body as it is on disk: its text (the canonical JSON its envelope's commitment
    covers), salt and type column. Unchecked: station/integrity.py checks it before anything
    shows or folds it."""

    text: str
    salt: bytes
    type: str = ""

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.text)
        return parsed


@dataclass(frozen=True)
class LinkRow:
    peer: str
    state: str
    since: int
    last_ok: int | None
    last_error: str | None
    failures: int
    rtt_ms: int | None


@dataclass(frozen=True)
class AlarmRow:
    id: int
    ts: int
    kind: str
    severity: str
    subject: str
    message: str
    cleared: int | None
    cleared_by: str | None = None  # a user's name, or "station" for a later event
    resolution: str | None = None  # resolved (by a later event) | acknowledged (by a person)
    note: str | None = None
    ref: str | None = None  # what event settles it (station/alarms.py), if any


_ALARM_COLS = "id, ts, kind, severity, subject, message, cleared, cleared_by, resolution, note, ref"


def _alarm(r: tuple[Any, ...]) -> AlarmRow:
    return AlarmRow(
        int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], None if r[6] is None else int(r[6]),
        r[7], r[8], r[9], r[10],
    )  # fmt: skip


_PEER_COLS = "station, name, lang, identity, addresses, prekeys, added, removed, revoked"
_ENV_COLS = "id, channel, sender, seq, hash, raw, ts, prec, stored"


def _body(row: tuple[Any, ...]) -> BodyRow | None:
    """(body, salt, type) columns, all NULL for an envelope without a body (a LEFT JOIN)."""
    return None if row[0] is None else BodyRow(str(row[0]), bytes(row[1]), str(row[2]))


def _env(row: tuple[Any, ...]) -> EnvelopeRow:
    return EnvelopeRow(
        int(row[0]), row[1], row[2], int(row[3]), bytes(row[4]), bytes(row[5]),
        int(row[6]), row[7], int(row[8]),
    )  # fmt: skip


class SqlStore:
    placeholder = "?"
    dialect = "sqlite"  # which `Only(...)` migration statements apply

    def __init__(self) -> None:
        self._depth = 0
        self._lock = StoreLock()
        # In-memory state (store/cache.py): chain heads, and the epoch other caches check.
        self._heads: LRU[tuple[str, str], EnvelopeRow | None] = LRU(HEADS)
        self._epoch = 0
        self._dirty = False  # this transaction changed what other connections cache
        self._writes = 0  # envelopes and bodies stored through this store, ever
        self._commits = 0  # transactions committed through this store, ever
        self._ready = False  # migrated: the tables the cache checks read exist
        self._after: list[Callable[[], None]] = []  # to run once the open transaction commits
        self._peer_names: tuple[int, dict[str, str]] | None = None  # (epoch, station -> name)
        # Peer records by station id, kept for the epoch they were read in: every sealed
        # envelope reads its recipients' prekeys, every push answer its peer's key.
        self._peer_rows: tuple[int, dict[str, PeerRow | None]] = (-1, {})
        # Credentials recently proven (station/users.py): kept per (epoch, withdrawals).
        self._withdrawals = 0
        self._credentials: LRU[bytes, tuple[tuple[int, int], int, Any]] = LRU(CREDENTIALS)
        self._credentials_lock = threading.Lock()
        # Inside a transaction whose start looked for other connections' commits: none can come
        # until it ends, since it holds the database's write lock (see `credential`).
        self._writers_out = False
        self._deferred: list[Callable[[], None]] = []  # run before this transaction commits
        self.migrate()
        self._ready = True

    # --- backend hooks ---------------------------------------------------------------------------
    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _insert_id(self, sql: str, params: tuple[object, ...]) -> int:
        raise NotImplementedError

    def _rowcount(self, sql: str, params: tuple[object, ...]) -> int:
        """Run an UPDATE or DELETE; how many rows it changed."""
        raise NotImplementedError

    def _table_exists(self, name: str) -> bool:
        raise NotImplementedError

    def _ddl(self, sql: str) -> str:
        return sql

    def _scrub(self) -> None:
        """Make erased secrets unrecoverable from the database's files, where the backend can."""

    def _foreign_writes(self) -> bool:
        """Whether another connection committed since the last call (store/cache.py)."""
        return False

    def _bump(self) -> None:
        """Tell other connections that this transaction changed what they may cache."""

    def close(self) -> None:
        raise NotImplementedError

    # --- plumbing --------------------------------------------------------------------------------
    def q(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return self._execute(self._sql(sql), params)

    def changed(self, sql: str, *params: object) -> int:
        """`q` for an UPDATE or DELETE, answering how many rows it changed (one statement where
        a COUNT before it would be two)."""
        return self._rowcount(self._sql(sql), params)

    @contextmanager
    def tx(self) -> Iterator[None]:
        """A transaction; nested calls join the outer one. Commit is durable when it returns."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            self._dirty = False
            self._after = []
            try:
                if self._ready and self._foreign_writes():
                    self._drop_caches()
                self._writers_out = True
                yield
                while self._deferred:
                    work, self._deferred = self._deferred, []
                    for fn in work:
                        fn()
                if self._dirty and self._ready:
                    self._bump()
            except BaseException:
                self._writers_out = False
                self._depth = 0
                self._after = []
                self._deferred = []
                self._drop_caches()
                self._rollback()
                raise
            self._writers_out = False
            self._depth = 0
            self._commits += 1  # before: a failed COMMIT may have written (it is undone)
            try:
                self._commit()
            except BaseException:
                # A COMMIT that failed may leave the transaction open on the connection, and the
                # next transaction's COMMIT would then make these writes durable after all, long
                # after their callers were told they failed.
                self._after = []
                self._drop_caches()
                with suppress(Exception):
                    self._rollback()
                raise
            after, self._after = self._after, []
        for fn in after:  # outside the lock: another thread may take the store at once
            fn()

    @contextmanager
    def soft_tx(self) -> Iterator[None]:
        """A transaction of soft state (link rows; receipts settling our outbox, which the peer
        gives again): losing it in a power cut costs nothing, so its COMMIT does not wait for
        the disk. It stays atomic, and the next
        durable commit takes it to disk with it. Inside another transaction it joins that one
        (durable with it). Every link contact written this way cost a durable commit under the
        store's lock, on the push path: 0.4-6 ms, 3-4 times a second (issue 14, latency p99)."""
        with self._lock:
            if self._depth:
                with self.tx():
                    yield
                return
            self._durable(False)
            try:
                with self.tx():
                    yield
            finally:
                self._durable(True)

    def _durable(self, on: bool) -> None:
        """Commits from now on wait for the disk (on) or not; only between transactions."""

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the calling thread's open transaction has committed, at once if none
        is open; never if it rolls back. Asked several times in one transaction, it runs once:
        a group of sends wakes the dispatcher once, when what it should push is on disk.

        A thread that finds another thread holding the store has no transaction open: it runs
        `fn` at once rather than wait for that transaction (as `in_tx`). Waiting for it held the
        event loop, whose dispatcher wake-up asks this after a group has committed, for the
        whole of the next group: at `delivery --batch 100` about a fifth of the run (issue 14)."""
        if self.in_tx():  # then this thread holds the store: nobody else touches `_after`
            if fn not in self._after:
                self._after.append(fn)
            return
        fn()

    # --- what is kept in memory (store/cache.py) --------------------------------------------------
    @property
    def lock(self) -> StoreLock:
        """The store's lock: held across a cache check and the reads that fill it, no other
        thread's transaction can commit in between."""
        return self._lock

    def _drop_caches(self) -> None:
        self._heads.clear()
        self._peer_names = None
        self._peer_rows = (-1, {})
        self._epoch += 1

    def cache_epoch(self) -> int:
        """The epoch a cached value must carry to be used. Outside a transaction, another
        connection's commits are looked for first (inside one, at its BEGIN)."""
        with self._lock:
            if not self._depth and self._ready and self._foreign_writes():
                self._drop_caches()
            return self._epoch

    def version(self) -> tuple[int, int]:
        """Changes with every write the store can tell of: (cache epoch, this connection's
        writes). Kept answers (station/answers.py) are good while it stays the same."""
        with self._lock:
            return self.cache_epoch(), self._changes()

    def _changes(self) -> int:
        """A count that moves with every write through this connection."""
        return self._commits

    def in_tx(self) -> bool:
        """Whether the calling thread is inside a transaction of this store."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread holds the store, so this one has no transaction open
        try:
            return self._depth > 0
        finally:
            self._lock.release()

    # Credentials (station/users.py): a proven token or session is remembered briefly, so that
    # every API request does not look it up again; anything that takes a credential away or
    # changes a user's roles forgets all of them at once, here and (through the generation
    # counter) in other worker processes, whose epoch then moves.
    def credentials_version(self) -> tuple[int, int]:
        """What a remembered credential must carry to be used."""
        with self._lock:
            return self.cache_epoch(), self._withdrawals

    def credentials_withdrawn(self) -> None:
        """A credential was revoked or ended, or a user's roles or state changed (call it inside
        the transaction that does it): nothing remembered is used again."""
        with self._lock, self._credentials_lock:
            self._withdrawals += 1
            self._credentials.clear()
            self._dirty = True  # other workers drop what they remember too (PostgreSQL)

    def credential(self, key: bytes, now_ms: int, wait: bool = True) -> Any:
        """What `keep_credential` kept under `key`, if it is still good at `now_ms`; else None.
        With `wait=False`, also None (at once) while another thread holds the store outside a
        transaction: the event loop asks this way and never blocks on a commit.

        While another thread is inside a transaction, the epoch is current without asking the
        database: the transaction holds the database's write lock (SQLite's BEGIN IMMEDIATE;
        on PostgreSQL the advisory lock every worker's transaction takes), so no other
        connection has committed since it began and looked. Asking the database meant waiting
        for that transaction: an operator's token, during a burst of sends, went to a worker
        thread and waited for a group's commit on every request (issue 14)."""
        if self._lock.acquire(blocking=False):
            try:
                version = self.credentials_version()
            finally:
                self._lock.release()
        elif self._writers_out:
            version = self._epoch, self._withdrawals
        elif not wait:
            return None
        else:
            version = self.credentials_version()
        with self._credentials_lock:
            hit = self._credentials.get(key)
        if hit is None or hit[0] != version or now_ms >= hit[1]:
            return None
        return hit[2]

    def keep_credential(
        self, key: bytes, value: Any, until_ms: int, version: tuple[int, int]
    ) -> None:
        """Keep `value` under `key` until `until_ms`, if nothing was withdrawn since `version`
        (taken before the lookup that found `value`)."""
        with self._credentials_lock:
            if version == (self._epoch, self._withdrawals):
                self._credentials.put(key, (version, until_ms, value))

    def before_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` in this transaction, after its body and just before it commits (dropped if
        the transaction, or the savepoint around this call, is undone). For writes that are
        cheaper together than one by one: an FTS5 index flushes its pending rows at every
        savepoint, so indexing each stored body in its own cost a segment write each."""
        assert self._depth, "before_commit outside a transaction"
        self._deferred.append(fn)

    def before_commit_once(self, key: object, fn: Callable[[], None]) -> None:
        """`before_commit`, unless work under `key` is already waiting for this transaction's
        commit (an undone savepoint drops it, and the next call asks again)."""
        assert self._depth, "before_commit outside a transaction"
        if not any(isinstance(w, _Once) and w.key == key for w in self._deferred):
            self._deferred.append(_Once(key, fn))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A unit of work that can fail alone: inside a transaction (one is begun if none is
        open), an exception undoes only what this unit wrote, then propagates."""
        with self.tx():
            name = f"sp{self._depth}"
            self._execute(f"SAVEPOINT {name}")
            writes, deferred = self._writes, len(self._deferred)
            try:
                yield
            except BaseException:
                del self._deferred[deferred:]  # what the undone unit asked for is undone too
                if self._writes != writes:  # a refused send that stored nothing keeps them
                    self._drop_caches()
                self._execute(f"ROLLBACK TO SAVEPOINT {name}")
                self._execute(f"RELEASE SAVEPOINT {name}")
                raise
            self._execute(f"RELEASE SAVEPOINT {name}")

    def migrate(self) -> None:
        current = 0
        if self._table_exists("meta"):
            rows = self.q("SELECT value FROM meta WHERE key = 'schema_version'")
            current = int(rows[0][0]) if rows else 0
        if current > LATEST:
            raise LocalError(
                Code.SCHEMA_TOO_NEW,
                f"the database has schema version {current}, newer than this Parley ({LATEST}); "
                "upgrade Parley before opening it",
            )
        for version, _desc, statements in MIGRATIONS:
            if version <= current:
                continue
            with self.tx():
                for stmt in statements:
                    if isinstance(stmt, Only):
                        if stmt.dialect != self.dialect:
                            continue
                        stmt = stmt.sql
                    self._execute(self._ddl(stmt))
                self.set_meta("schema_version", str(version))

    # --- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.q("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.tx():
            self.q("DELETE FROM meta WHERE key = ?", key)
            self.q("INSERT INTO meta (key, value) VALUES (?, ?)", key, value)

    # --- counters --------------------------------------------------------------------------------
    def count_group(self, sends: int) -> None:
        """One more group commit of the writer (station/writer.py) holding `sends` sends."""
        self.q(
            "UPDATE counters SET n = n + CASE name WHEN 'writer.groups' THEN 1 ELSE ? END"
            " WHERE name IN ('writer.groups', 'writer.sends')",
            sends,
        )

    def counters(self) -> dict[str, int]:
        return {str(r[0]): int(r[1]) for r in self.q("SELECT name, n FROM counters")}

    # --- prekeys ---------------------------------------------------------------------------------
    def add_prekey(
        self, kid: str, public: bytes, secret: bytes, not_before: int, not_after: int, record: str
    ) -> None:
        with self.tx():
            self.q(
                "INSERT INTO prekeys (kid, public, secret, not_before, not_after, record)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                kid, public, secret, not_before, not_after, record,
            )  # fmt: skip

    def prekey_records(self, now_ms: int) -> list[dict[str, Any]]:
        """Records of prekeys whose private half we still hold and that are not expired."""
        rows = self.q(
            "SELECT record FROM prekeys WHERE secret IS NOT NULL AND not_after >= ?"
            " ORDER BY not_before DESC",
            now_ms,
        )
        return [json.loads(r[0]) for r in rows]

    def prekey_secret(self, kid: str) -> bytes | None:
        rows = self.q("SELECT secret FROM prekeys WHERE kid = ?", kid)
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def newest_prekey_start(self) -> int | None:
        rows = self.q("SELECT MAX(not_before) FROM prekeys")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def delete_prekey_secrets(self, expired_before: int, now_ms: int) -> list[str]:
        """Erase private halves of prekeys that expired before `expired_before`."""
        with self.tx():
            rows = self.q(
                "SELECT kid FROM prekeys WHERE secret IS NOT NULL AND not_after < ?",
                expired_before,
            )
            self.q(
                "UPDATE prekeys SET secret = NULL, retired_at = ? WHERE secret IS NOT NULL"
                " AND not_after < ?",
                now_ms, expired_before,
            )  # fmt: skip
        if rows and not self._depth:
            self._scrub()
        return [r[0] for r in rows]

    # --- peers -----------------------------------------------------------------------------------
    def add_peer(self, p: PeerRow) -> None:
        with self.tx():
            self.q("DELETE FROM peers WHERE station = ?", p.station)
            self.q(
                "INSERT INTO peers (station, name, lang, identity, addresses, prekeys, added,"
                " removed, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                p.station, p.name, p.lang, p.identity,
                json.dumps(p.addresses), json.dumps(p.prekeys), p.added, p.removed, p.revoked,
            )  # fmt: skip
            self._peers_changed()

    def _peers_changed(self) -> None:
        """A write to the peers table (caller's transaction): forget the peers kept in memory,
        here and, through the generation counter, in other workers (PostgreSQL)."""
        self._peer_names = None
        self._peer_rows = (-1, {})
        self._dirty = True

    def _peer(self, row: tuple[Any, ...]) -> PeerRow:
        return PeerRow(
            row[0], row[1], row[2], bytes(row[3]), json.loads(row[4]), json.loads(row[5]),
            int(row[6]), None if row[7] is None else int(row[7]),
            None if row[8] is None else int(row[8]),
        )  # fmt: skip

    def get_peer(self, station: str) -> PeerRow | None:
        """A peer the station talks to: neither removed nor revoked."""
        p = self.peer_record(station)
        return p if p is not None and p.active else None

    def peer_record(self, station: str) -> PeerRow | None:
        """A peer in any state, for what its key signed before it was removed or revoked.
        Kept in memory until the peers table or the cache epoch changes (frozen, but its lists
        are shared: do not change them)."""
        with self._lock:
            epoch = self.cache_epoch()
            if self._peer_rows[0] != epoch:
                self._peer_rows = (epoch, {})
            kept = self._peer_rows[1]
            if station in kept:
                return kept[station]
            rows = self.q(f"SELECT {_PEER_COLS} FROM peers WHERE station = ?", station)
            row = self._peer(rows[0]) if rows else None
            if len(kept) < PEER_ROWS:
                kept[station] = row
            return row

    def peer_names(self) -> dict[str, str]:
        """Every peer's name by station id (kept in memory: each message shown names its
        sender). Do not change the answer."""
        with self._lock:
            epoch = self.cache_epoch()
            if self._peer_names is None or self._peer_names[0] != epoch:
                names = {str(r[0]): str(r[1]) for r in self.q("SELECT station, name FROM peers")}
                self._peer_names = (epoch, names)
            return self._peer_names[1]

    def list_peers(self) -> list[PeerRow]:
        """The peers the station talks to (neither removed nor revoked)."""
        return [p for p in self.peer_records() if p.active]

    def peer_records(self) -> list[PeerRow]:
        """Every peer ever added, in any state."""
        rows = self.q(f"SELECT {_PEER_COLS} FROM peers ORDER BY name")
        return [self._peer(r) for r in rows]

    def set_peer_identity(
        self, station: str, identity: bytes, prekeys: list[dict[str, Any]]
    ) -> None:
        with self.tx():
            self.q(
                "UPDATE peers SET identity = ?, prekeys = ? WHERE station = ?",
                identity, json.dumps(prekeys), station,
            )  # fmt: skip
            self._peers_changed()

    def add_handover(self, station: str, seq: int, record: str, now_ms: int) -> None:
        with self.tx():
            self.q(
                "INSERT INTO handovers (station, seq, record, received) VALUES (?, ?, ?, ?)",
                station, seq, record, now_ms,
            )  # fmt: skip

    def handovers(self, station: str) -> list[str]:
        """A station's identity hand-overs as stored (canonical JSON), in order."""
        rows = self.q("SELECT record FROM handovers WHERE station = ? ORDER BY seq", station)
        return [str(r[0]) for r in rows]

    def set_prekey_record(self, kid: str, record: str) -> None:
        with self.tx():
            self.q("UPDATE prekeys SET record = ? WHERE kid = ?", record, kid)

    def set_peer_state(self, station: str, *, removed: int | None, revoked: int | None) -> None:
        with self.tx():
            self.q(
                "UPDATE peers SET removed = ?, revoked = ? WHERE station = ?",
                removed, revoked, station,
            )  # fmt: skip
            self._peers_changed()

    def drop_outbox(self, peer: str) -> int:
        """Delete what is still queued for `peer`; the envelopes stay in our chains."""
        with self.tx():
            n = self.q("SELECT COUNT(*) FROM outbox WHERE peer = ? AND delivered IS NULL", peer)[0][
                0
            ]
            self.q("DELETE FROM outbox WHERE peer = ? AND delivered IS NULL", peer)
        return int(n)

    def requeue(self, peer: str, sender: str, channels: list[str]) -> int:
        """Queue again for `peer` every envelope of `sender`'s chains on `channels` that has no
        outbox row for it (those `drop_outbox` deleted when it was removed); delivered rows
        stay as they are. Returns how many were queued; the outbox order does the rest."""
        n = 0
        with self.tx():
            for ch in channels:
                rows = self.q(
                    "SELECT e.seq, e.id, e.prec FROM envelopes e WHERE e.channel = ?"
                    " AND e.sender = ? AND NOT EXISTS (SELECT 1 FROM outbox o"
                    " WHERE o.channel = e.channel AND o.peer = ? AND o.seq = e.seq)"
                    " ORDER BY e.seq",
                    ch, sender, peer,
                )  # fmt: skip
                for seq, envelope_id, prec in rows:
                    self.enqueue(ch, int(seq), peer, int(envelope_id), str(prec))
                n += len(rows)
        return n

    def set_peer_prekeys(self, station: str, prekeys: list[dict[str, Any]]) -> None:
        with self.tx():
            self.q("UPDATE peers SET prekeys = ? WHERE station = ?", json.dumps(prekeys), station)
            self._peers_changed()

    # --- channels and envelopes ------------------------------------------------------------------
    def add_channel(self, channel: str, now_ms: int) -> None:
        with self.tx():
            if not self.q("SELECT 1 FROM channels WHERE channel = ?", channel):
                self.q("INSERT INTO channels (channel, created) VALUES (?, ?)", channel, now_ms)

    def has_channel(self, channel: str) -> bool:
        return bool(self.q("SELECT 1 FROM channels WHERE channel = ?", channel))

    def list_channels(self) -> list[str]:
        return [r[0] for r in self.q("SELECT channel FROM channels ORDER BY created, channel")]

    def head(self, channel: str, sender: str) -> EnvelopeRow | None:
        """The newest envelope of a chain (kept in memory: every send and receive asks)."""
        key = (channel, sender)
        with self._lock:
            self.cache_epoch()
            if key in self._heads:
                return self._heads.get(key)
            rows = self.q(
                f"SELECT {_ENV_COLS} FROM envelopes WHERE channel = ? AND sender = ?"
                " ORDER BY seq DESC LIMIT 1",
                channel, sender,
            )  # fmt: skip
            row = _env(rows[0]) if rows else None
            self._heads.put(key, row)
            return row

    def heads(self, channel: str) -> dict[str, int]:
        rows = self.q(
            "SELECT sender, MAX(seq) FROM envelopes WHERE channel = ? GROUP BY sender", channel
        )
        return {r[0]: int(r[1]) for r in rows}

    def head_seq(self, channel: str, sender: str) -> int:
        row = self.head(channel, sender)
        return row.seq if row else 0

    def hash_at(self, channel: str, sender: str, seq: int) -> bytes | None:
        with self._lock:
            self.cache_epoch()
            key = (channel, sender)
            if key in self._heads:
                head = self._heads.get(key)
                if head is None or seq > head.seq:
                    return None
                if seq == head.seq:
                    return head.hash
        rows = self.q(
            "SELECT hash FROM envelopes WHERE channel = ? AND sender = ? AND seq = ?",
            channel, sender, seq,
        )  # fmt: skip
        return bytes(rows[0][0]) if rows else None

    def envelope_by_hash(self, h: bytes) -> EnvelopeRow | None:
        rows = self.q(f"SELECT {_ENV_COLS} FROM envelopes WHERE hash = ?", h)
        return _env(rows[0]) if rows else None

    def insert_envelope(
        self, channel: str, sender: str, seq: int, h: bytes, raw: bytes, ts: int, prec: str,
        now_ms: int,
    ) -> int:  # fmt: skip
        with self.tx():
            env_id = self._insert_id(
                self._sql(
                    "INSERT INTO envelopes (channel, sender, seq, hash, raw, ts, prec, stored)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (channel, sender, seq, h, raw, ts, prec, now_ms),
            )
            self._dirty = True
            self._writes += 1
            key = (channel, sender)
            if key in self._heads:  # else unknown: the next head() reads it
                held = self._heads.get(key)
                if held is None or seq > held.seq:
                    row = EnvelopeRow(env_id, channel, sender, seq, h, raw, ts, prec, now_ms)
                    self._heads.put(key, row)
            return env_id

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder) if self.placeholder != "?" else sql

    def envelopes(
        self, channel: str, sender: str | None = None, after_seq: int = 0, limit: int = 100_000
    ) -> list[EnvelopeRow]:
        if sender is None:
            rows = self.q(
                f"SELECT {_ENV_COLS} FROM envelopes WHERE channel = ? ORDER BY id LIMIT ?",
                channel, limit,
            )  # fmt: skip
        else:
            rows = self.q(
                f"SELECT {_ENV_COLS} FROM envelopes WHERE channel = ? AND sender = ?"
                " AND seq > ? ORDER BY seq LIMIT ?",
                channel, sender, after_seq, limit,
            )  # fmt: skip
        return [_env(r) for r in rows]

    def put_body(self, h: bytes, type_: str, body: str, salt: bytes) -> None:
        with self.tx():
            self.q(
                "INSERT INTO bodies (hash, type, body, salt) VALUES (?, ?, ?, ?)",
                h, type_, body, salt,
            )  # fmt: skip
            self._dirty = True
            self._writes += 1
            if type_.startswith("channel."):
                self._drop_caches()  # a channel's state changes: see control_events

    def body(self, h: bytes) -> BodyRow | None:
        rows = self.q("SELECT body, salt, type FROM bodies WHERE hash = ?", h)
        return _body(rows[0]) if rows else None

    def channel_events(
        self, channel: str, after_id: int = 0, limit: int = 100_000
    ) -> list[tuple[EnvelopeRow, BodyRow | None]]:
        rows = self.q(
            f"SELECT {', '.join('e.' + c for c in _ENV_COLS.split(', '))}, b.body, b.salt, b.type"
            " FROM envelopes e LEFT JOIN bodies b ON b.hash = e.hash"
            " WHERE e.channel = ? AND e.id > ? ORDER BY e.id LIMIT ?",
            channel, after_id, limit,
        )  # fmt: skip
        return [(_env(r[:9]), _body(r[9:])) for r in rows]

    def chain_events(
        self, channel: str, sender: str, after_seq: int, upto_seq: int, limit: int
    ) -> list[tuple[EnvelopeRow, BodyRow | None]]:
        """One sender's envelopes of `channel` with seq in (after_seq, upto_seq], in seq order."""
        rows = self.q(
            f"SELECT {', '.join('e.' + c for c in _ENV_COLS.split(', '))}, b.body, b.salt, b.type"
            " FROM envelopes e LEFT JOIN bodies b ON b.hash = e.hash"
            " WHERE e.channel = ? AND e.sender = ? AND e.seq > ? AND e.seq <= ?"
            " ORDER BY e.seq LIMIT ?",
            channel, sender, after_seq, upto_seq, limit,
        )  # fmt: skip
        return [(_env(r[:9]), _body(r[9:])) for r in rows]

    def received(
        self, me: str, channels: list[str], limit: int, skip_types: tuple[str, ...] = ()
    ) -> list[tuple[EnvelopeRow, BodyRow | None]]:
        """The newest `limit` envelopes from others on `channels` whose body is not of one of
        `skip_types`, oldest first."""
        if not channels:
            return []
        marks = ", ".join("?" * len(channels))
        skip = f" AND b.type NOT IN ({', '.join('?' * len(skip_types))})" if skip_types else ""
        # Walking the envelopes newest first stops after `limit` matches; looking them up by
        # channel (the index SQLite picks for `channel IN`) reads and sorts every envelope of
        # those channels first: 373 ms against 4 ms for 20,000 envelopes. So the walk, unless
        # the caller sees only a few of many channels (`|| ''` keeps the index out of it).
        total = int(self.q("SELECT COUNT(*) FROM channels")[0][0])
        where = "e.channel" if 2 * len(channels) < total else "e.channel || ''"
        rows = self.q(
            f"SELECT {', '.join('e.' + c for c in _ENV_COLS.split(', '))}, b.body, b.salt, b.type"
            " FROM envelopes e LEFT JOIN bodies b ON b.hash = e.hash"
            f" WHERE e.sender != ? AND {where} IN ({marks}){skip} ORDER BY e.id DESC LIMIT ?",
            me, *channels, *skip_types, limit,
        )  # fmt: skip
        return [(_env(r[:9]), _body(r[9:])) for r in reversed(rows)]

    def control_events(self, channel: str) -> list[tuple[EnvelopeRow, BodyRow]]:
        rows = self.q(
            f"SELECT {', '.join('e.' + c for c in _ENV_COLS.split(', '))}, b.body, b.salt, b.type"
            # Control bodies are few; start from them (CROSS JOIN fixes SQLite's join order)
            # so this stays cheap however long the channel's transcript grows.
            " FROM bodies b CROSS JOIN envelopes e"
            " WHERE e.hash = b.hash AND b.type >= 'channel.' AND b.type < 'channel/'"
            " AND e.channel = ? ORDER BY e.id",
            channel,
        )
        return [(_env(r[:9]), BodyRow(str(r[9]), bytes(r[10]), str(r[11]))) for r in rows]

    # --- outbox ----------------------------------------------------------------------------------
    def enqueue(self, channel: str, seq: int, peer: str, envelope_id: int, prec: str) -> None:
        with self.tx():
            self.q(
                "INSERT INTO outbox (channel, seq, peer, envelope_id, prio) VALUES (?, ?, ?, ?, ?)",
                channel, seq, peer, envelope_id, PRIORITY[prec],
            )  # fmt: skip

    def pending(self, peer: str, limit: int, skip: Collection[int] = ()) -> list[EnvelopeRow]:
        """Undelivered envelopes for `peer` in the order of domain/precedence.outbox_order (the
        rule; tests/test_store.py checks this query against it): FLASH envelopes first, each on
        its own (the peer holds one that is ahead of its chain and shows it early), then chains
        in seq order, channels with the most urgent pending precedence first. `skip`: envelope
        ids left out (on the wire, or answered and not settled yet), before any body is read.

        Each step reads through an index only as far as the batch needs (issue 14: one query
        sorting every pending row made a 100,000 backlog cost O(n^2)): the FLASH rows, each
        pending channel's most urgent precedence by a skip scan, then per channel of the most
        urgent group its first rows by seq, merged by envelope id (a chain's own envelopes are
        stored in seq order, so seq order is id order within a channel)."""
        with self._lock:
            return self._pending(self.q, peer, limit, skip)

    def pushable(self, peer: str, limit: int, skip: Collection[int] = ()) -> list[EnvelopeRow]:
        """`pending` as the dispatcher reads it for a push: committed rows only, and where the
        backend can, without waiting for the store's lock (a group of sends holds it while it
        is sealed and committed, and the peer would wait with the push; issue 14)."""
        return self.pending(peer, limit, skip)

    def _pending(
        self, q: Callable[..., list[tuple[Any, ...]]], peer: str, limit: int, skip: Collection[int]
    ) -> list[EnvelopeRow]:
        if limit <= 0:
            return []
        want = limit + len(skip)
        flash = q(
            "SELECT envelope_id FROM outbox WHERE peer = ? AND delivered IS NULL"
            " AND prio = 0 ORDER BY envelope_id LIMIT ?",
            peer, want,
        )  # fmt: skip
        ids = [int(r[0]) for r in flash]
        groups: dict[int, list[str]] = {}
        if len(ids) < want:
            for channel, p in q(
                "WITH RECURSIVE ch(c) AS ("
                " SELECT MIN(channel) FROM outbox WHERE peer = ? AND delivered IS NULL"
                " UNION ALL SELECT (SELECT MIN(channel) FROM outbox WHERE peer = ?"
                "  AND delivered IS NULL AND channel > ch.c) FROM ch WHERE ch.c IS NOT NULL)"
                " SELECT c, (SELECT MIN(prio) FROM outbox WHERE peer = ? AND delivered IS NULL"
                "  AND channel = ch.c) FROM ch WHERE ch.c IS NOT NULL",
                peer, peer, peer,
            ):  # fmt: skip
                groups.setdefault(int(p), []).append(channel)
        for p in sorted(groups):
            more = want - len(ids)
            if more <= 0:
                break
            firsts = [self._chain_pending(q, channel, peer, more) for channel in groups[p]]
            ids.extend(list(heapq.merge(*firsts))[:more])
        if skip:
            ids = [i for i in ids if i not in skip]
        ids = ids[:limit]
        if not ids:
            return []
        rows = q(
            f"SELECT {_ENV_COLS} FROM envelopes WHERE id IN ({', '.join('?' * len(ids))})", *ids
        )
        by_id = {int(r[0]): r for r in rows}
        return [_env(by_id[i]) for i in ids if i in by_id]

    @staticmethod
    def _chain_pending(
        q: Callable[..., list[tuple[Any, ...]]], channel: str, peer: str, limit: int
    ) -> list[int]:
        rows = q(
            "SELECT envelope_id FROM outbox WHERE channel = ? AND peer = ?"
            " AND delivered IS NULL AND prio != 0 ORDER BY seq LIMIT ?",
            channel, peer, limit,
        )  # fmt: skip
        return [int(r[0]) for r in rows]

    # --- held (ahead of their chain) -------------------------------------------------------------
    def hold(
        self, channel: str, sender: str, seq: int, h: bytes, raw: bytes, prec: str,
        early_body: str | None, now_ms: int, limit: int,
    ) -> bool:  # fmt: skip
        """Keep an envelope that arrived before its predecessors; False if the chain already has
        `limit` held or that seq is held (the first copy stays: equivocation shows on apply).
        The counts are kept beside the rows (`held_usage`), so a hold costs the same however
        many are held."""
        with self.tx():
            n = self.q("SELECT n FROM held_usage WHERE sender = ? AND channel = ?", sender, channel)
            if (n and n[0][0] >= limit) or self.q(
                "SELECT 1 FROM held WHERE channel = ? AND sender = ? AND seq = ?",
                channel, sender, seq,
            ):  # fmt: skip
                return False
            self.q(
                "INSERT INTO held (channel, sender, seq, hash, raw, prec, early_body, received)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                channel, sender, seq, h, raw, prec, early_body, now_ms,
            )  # fmt: skip
            self.q(
                "INSERT INTO held_usage (sender, channel, n, bytes) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (sender, channel) DO UPDATE"
                " SET n = held_usage.n + 1, bytes = held_usage.bytes + excluded.bytes",
                sender, channel, len(raw),
            )  # fmt: skip
        return True

    def held_usage(self, sender: str) -> tuple[int, int]:
        """(count, bytes) of the envelopes held from `sender` over all channels."""
        row = self.q(
            "SELECT COALESCE(SUM(n), 0), COALESCE(SUM(bytes), 0) FROM held_usage WHERE sender = ?",
            sender,
        )[0]
        return int(row[0]), int(row[1])

    def held_next(self, channel: str) -> list[tuple[str, int, bytes]]:
        """(sender, seq, raw) of held envelopes of a channel, lowest seq per sender first."""
        rows = self.q(
            "SELECT sender, seq, raw FROM held WHERE channel = ? ORDER BY sender, seq", channel
        )
        return [(r[0], int(r[1]), bytes(r[2])) for r in rows]

    def drop_held(self, channel: str, sender: str, seq: int) -> None:
        with self.tx():
            size = self.q(
                "SELECT LENGTH(raw) FROM held WHERE channel = ? AND sender = ? AND seq = ?",
                channel, sender, seq,
            )  # fmt: skip
            if not size:
                return
            self.q(
                "DELETE FROM held WHERE channel = ? AND sender = ? AND seq = ?",
                channel, sender, seq,
            )  # fmt: skip
            self.q(
                "UPDATE held_usage SET n = n - 1, bytes = bytes - ?"
                " WHERE sender = ? AND channel = ?",
                int(size[0][0]), sender, channel,
            )  # fmt: skip

    def early(self) -> list[tuple[str, str, int, bytes, str, str, int]]:
        """Held envelopes shown early: (channel, sender, seq, hash, prec, body, received)."""
        rows = self.q(
            "SELECT channel, sender, seq, hash, prec, early_body, received FROM held"
            " WHERE early_body IS NOT NULL ORDER BY received"
        )
        return [(r[0], r[1], int(r[2]), bytes(r[3]), r[4], r[5], int(r[6])) for r in rows]

    def peers_with_pending(self) -> list[str]:
        return [r[0] for r in self.q("SELECT DISTINCT peer FROM outbox WHERE delivered IS NULL")]

    def mark_delivered(self, channel: str, peer: str, upto_seq: int, now_ms: int) -> int:
        """Mark `peer`'s rows of a chain up to `upto_seq` delivered; how many were pending."""
        with self.tx():
            return self.changed(
                "UPDATE outbox SET delivered = ? WHERE channel = ? AND peer = ? AND seq <= ?"
                " AND delivered IS NULL",
                now_ms, channel, peer, upto_seq,
            )  # fmt: skip

    def requeue_from(self, channel: str, peer: str, seq: int) -> int:
        """Mark delivered rows from `seq` on pending again; returns how many changed."""
        with self.tx():
            n = self.q(
                "SELECT COUNT(*) FROM outbox WHERE channel = ? AND peer = ? AND seq >= ?"
                " AND delivered IS NOT NULL",
                channel, peer, seq,
            )[0][0]  # fmt: skip
            self.q(
                "UPDATE outbox SET delivered = NULL WHERE channel = ? AND peer = ? AND seq >= ?",
                channel, peer, seq,
            )  # fmt: skip
        return int(n)

    def outbox_counts(self, peer: str) -> tuple[int, int]:
        """(delivered, pending) for a peer."""
        rows = self.q(
            "SELECT SUM(CASE WHEN delivered IS NULL THEN 0 ELSE 1 END),"
            " SUM(CASE WHEN delivered IS NULL THEN 1 ELSE 0 END) FROM outbox WHERE peer = ?",
            peer,
        )
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    # --- receipts, evidence, alarms --------------------------------------------------------------
    def add_receipt(
        self, channel: str, of: str, by: str, seq: int, h: bytes, ts: int, raw: bytes
    ) -> None:
        """Keep a receipt; the first one kept for its (channel, of, by, seq) stays."""
        with self.tx():
            self.q(
                "INSERT INTO receipts (channel, of_station, by_station, seq, hash, ts, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                channel, of, by, seq, h, ts, raw,
            )  # fmt: skip

    def last_receipt(
        self, by: str, exclude: Sequence[str] = ()
    ) -> tuple[str, int, int, bytes] | None:
        """(channel, seq, ts, raw) of the newest receipt signed by `by`, on any channel but those
        in `exclude`."""
        skip = f" AND channel NOT IN ({', '.join('?' * len(exclude))})" if exclude else ""
        rows = self.q(
            f"SELECT channel, seq, ts, raw FROM receipts WHERE by_station = ?{skip}"
            " ORDER BY ts DESC, seq DESC LIMIT 1",
            by, *exclude,
        )  # fmt: skip
        return (rows[0][0], int(rows[0][1]), int(rows[0][2]), bytes(rows[0][3])) if rows else None

    def receipts_for(self, channel: str, by: str) -> list[tuple[int, bytes]]:
        rows = self.q(
            "SELECT seq, raw FROM receipts WHERE channel = ? AND by_station = ? ORDER BY seq",
            channel, by,
        )  # fmt: skip
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def add_evidence(
        self, channel: str, sender: str, seq: int, kind: str, raw: bytes, held: bytes | None,
        now_ms: int,
    ) -> Evidence:  # fmt: skip
        """Keep a conflicting item as evidence: KEPT; DUPLICATE if this exact one is kept
        already; FULL if EVIDENCE_LIMIT of that sender and kind are (nothing is stored)."""
        with self.tx():
            if self.q(
                "SELECT 1 FROM evidence WHERE sender = ? AND kind = ? AND channel = ?"
                " AND seq = ? AND raw = ?",
                sender, kind, channel, seq, raw,
            ):  # fmt: skip
                return Evidence.DUPLICATE
            n = self.q("SELECT COUNT(*) FROM evidence WHERE sender = ? AND kind = ?", sender, kind)
            if n[0][0] >= EVIDENCE_LIMIT:
                return Evidence.FULL
            self.q(
                "INSERT INTO evidence (channel, sender, seq, kind, raw, held_hash, detected)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                channel, sender, seq, kind, raw, held, now_ms,
            )  # fmt: skip
        return Evidence.KEPT

    def evidence(self) -> list[tuple[str, str, int, str, bytes, bytes | None, int]]:
        rows = self.q(
            "SELECT channel, sender, seq, kind, raw, held_hash, detected FROM evidence ORDER BY id"
        )
        return [
            (r[0], r[1], int(r[2]), r[3], bytes(r[4]), bytes(r[5]) if r[5] else None, int(r[6]))
            for r in rows
        ]

    def add_alarm(
        self, kind: str, severity: str, subject: str, message: str, now_ms: int, ref: str = ""
    ) -> int:
        with self.tx():
            return self._insert_id(
                self._sql(
                    "INSERT INTO alarms (ts, kind, severity, subject, message, ref)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (now_ms, kind, severity, subject, message, ref or None),
            )

    def alarms(self, include_cleared: bool = False, limit: int = 100_000) -> list[AlarmRow]:
        """Open alarms (or every alarm), newest first."""
        where = "" if include_cleared else " WHERE cleared IS NULL"
        rows = self.q(f"SELECT {_ALARM_COLS} FROM alarms{where} ORDER BY id DESC LIMIT ?", limit)
        return [_alarm(r) for r in rows]

    def alarm(self, alarm_id: int) -> AlarmRow | None:
        rows = self.q(f"SELECT {_ALARM_COLS} FROM alarms WHERE id = ?", alarm_id)
        return _alarm(rows[0]) if rows else None

    def clear_alarm(
        self, alarm_id: int, now_ms: int, by: str = "", resolution: str = "acknowledged",
        note: str = "",
    ) -> bool:  # fmt: skip
        """Close an open alarm, keeping it with who closed it, how and why; False if it was not
        open."""
        with self.tx():
            found = self.q("SELECT 1 FROM alarms WHERE id = ? AND cleared IS NULL", alarm_id)
            self.q(
                "UPDATE alarms SET cleared = ?, cleared_by = ?, resolution = ?, note = ?"
                " WHERE id = ? AND cleared IS NULL",
                now_ms, by or None, resolution, note or None, alarm_id,
            )  # fmt: skip
        return bool(found)

    def open_alarms(self, kinds: Sequence[str], ref: str) -> list[int]:
        """Ids of the open alarms of one of `kinds` that `ref` settles."""
        rows = self.q(
            f"SELECT id FROM alarms WHERE cleared IS NULL AND ref = ?"
            f" AND kind IN ({', '.join('?' * len(kinds))}) ORDER BY id",
            ref, *kinds,
        )  # fmt: skip
        return [int(r[0]) for r in rows]

    # --- idempotency, links, audit ---------------------------------------------------------------
    def idempotent(self, key: str) -> tuple[str, int, int, str] | None:
        """The channel, first seq and count of the sends `key` names (`remember` with `n`; one
        for `claim`), and the digest of the request it came with."""
        rows = self.q("SELECT channel, seq, n, request FROM idempotency WHERE key = ?", key)
        return (rows[0][0], int(rows[0][1]), int(rows[0][2]), rows[0][3]) if rows else None

    def claim(
        self, key: str, channel: str, seq: int, now_ms: int, request: str = ""
    ) -> tuple[str, int, int, str] | None:
        """Remember `key` for (channel, seq) and the request digest it came with, or answer what
        it already names (`idempotent`). One statement when the key is new, the usual case (a
        lookup first was 8% of a busy sender's time)."""
        with self.tx():
            if self.q(
                "INSERT INTO idempotency (key, channel, seq, created, request)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING key",
                key, channel, seq, now_ms, request,
            ):  # fmt: skip
                return None
            return self.idempotent(key)

    def remember(
        self, key: str, channel: str, seq: int, now_ms: int, n: int = 1, request: str = ""
    ) -> None:
        """`key` names our sends on `channel` from `seq`: `n` of them, one after another, made
        by the request with digest `request`."""
        with self.tx():
            self.q(
                "INSERT INTO idempotency (key, channel, seq, created, n, request)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                key, channel, seq, now_ms, n, request,
            )  # fmt: skip

    def prune_idempotency(self, before_ms: int, keep: int) -> int:
        """Forget keys first used before `before_ms`, then all but the `keep` newest. Returns
        how many were forgotten."""
        with self.tx():
            n = int(self.q("SELECT COUNT(*) FROM idempotency")[0][0])
            self.q("DELETE FROM idempotency WHERE created < ?", before_ms)
            left = int(self.q("SELECT COUNT(*) FROM idempotency")[0][0])
            if left > keep:
                edge = self.q(
                    "SELECT created FROM idempotency ORDER BY created DESC LIMIT 1 OFFSET ?", keep
                )[0][0]
                # Keys of the same millisecond as the edge go together: at most a few more.
                self.q("DELETE FROM idempotency WHERE created <= ?", edge)
            return n - int(self.q("SELECT COUNT(*) FROM idempotency")[0][0])

    def link(self, peer: str) -> LinkRow | None:
        rows = self.q(
            "SELECT peer, state, since, last_ok, last_error, failures, rtt_ms FROM links"
            " WHERE peer = ?",
            peer,
        )
        return LinkRow(*rows[0]) if rows else None

    def set_link(self, row: LinkRow) -> None:
        with self.tx():
            self.q("DELETE FROM links WHERE peer = ?", row.peer)
            self.q(
                "INSERT INTO links (peer, state, since, last_ok, last_error, failures, rtt_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                row.peer, row.state, row.since, row.last_ok, row.last_error, row.failures,
                row.rtt_ms,
            )  # fmt: skip

    def audit(self, actor: str, action: str, detail: dict[str, Any], now_ms: int) -> None:
        with self.tx():
            self.q(
                "INSERT INTO audit (ts, actor, action, detail) VALUES (?, ?, ?, ?)",
                now_ms, actor, action, json.dumps(detail, sort_keys=True),
            )  # fmt: skip

    def audit_log(self, limit: int = 200) -> list[tuple[int, str, str, str]]:
        rows = self.q("SELECT ts, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?", limit)
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]
