"""The store contract, run against both backends: SQLite (a file) and PostgreSQL (a real server).

PostgreSQL tests get a fresh database each from tests/pgserver.py and skip when no server binaries
are installed (but fail on CI). Backend-specific behaviour (the dispatcher lock, the dialect
rewrites) is tested at the end.
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.domain.precedence import Pending, Precedence, outbox_order
from parley.errors import Code, LocalError
from parley.store import sqlite as sqlite_store
from parley.store.base import EVIDENCE_LIMIT, Evidence, LinkRow, PeerRow, SqlStore
from parley.store.paths import relay_add, relay_usage
from parley.store.postgres import PostgresStore, lock_key
from parley.store.schema import LATEST, MIGRATIONS
from parley.store.sqlite import BACKSTOP_PAGES, SqliteStore
from tests.holding import held_elsewhere

pytest_plugins = ["tests.pgserver"]  # the pg_dsn and pg_db fixtures

IntegrityError = (sqlite3.IntegrityError, psycopg.IntegrityError)
NOW = 1_790_000_000_000
H1, H2, H3, H4 = (bytes([i]) * 32 for i in range(1, 5))

Opener = Callable[[], SqlStore]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a new store on this test's database; every store opened is closed afterwards."""
    if request.param == "sqlite":

        def make() -> SqlStore:
            return SqliteStore(tmp_path / "parley.db")
    else:
        dsn = request.getfixturevalue("pg_db")

        def make() -> SqlStore:
            return PostgresStore(dsn)

    opened: list[SqlStore] = []

    def tracked() -> SqlStore:
        s = make()
        opened.append(s)
        return s

    yield tracked
    for s in opened:
        s.close()


@pytest.fixture
def store(opener: Opener) -> SqlStore:
    return opener()


def count(store: SqlStore, table: str) -> int:
    return int(store.q(f"SELECT COUNT(*) FROM {table}")[0][0])


# --- schema --------------------------------------------------------------------------------------
def test_migrations_apply_and_record_the_version(store: SqlStore, opener: Opener) -> None:
    assert store.get_meta("schema_version") == str(LATEST)
    for table in ("meta", "prekeys", "peers", "channels", "envelopes", "bodies", "outbox",
                  "receipts", "evidence", "alarms", "idempotency", "links", "audit"):  # fmt: skip
        assert store._table_exists(table), table
    assert not store._table_exists("no_such_table")
    again = opener()  # reopening applies nothing twice
    assert again.get_meta("schema_version") == str(LATEST)
    assert len(MIGRATIONS) == LATEST


def test_a_database_newer_than_the_code_is_refused(store: SqlStore, opener: Opener) -> None:
    store.set_meta("schema_version", str(LATEST + 1))
    with pytest.raises(LocalError) as exc:
        opener()
    assert exc.value.code == Code.SCHEMA_TOO_NEW


# --- meta and keys -------------------------------------------------------------------------------
def test_meta_is_set_and_overwritten(store: SqlStore) -> None:
    assert store.get_meta("station") is None
    store.set_meta("station", "a")
    store.set_meta("station", "b")
    assert store.get_meta("station") == "b"


def test_prekeys_records_secrets_and_erasure(store: SqlStore) -> None:
    assert store.newest_prekey_start() is None
    store.add_prekey("k1", b"\x01pub", b"\x00sec1", 100, 200, json.dumps({"kid": "k1"}))
    store.add_prekey("k2", b"\x02pub", b"\x00sec2", 150, 400, json.dumps({"kid": "k2"}))
    assert store.prekey_records(150) == [{"kid": "k2"}, {"kid": "k1"}]
    assert store.prekey_records(300) == [{"kid": "k2"}]  # k1 expired
    secret = store.prekey_secret("k1")
    assert secret == b"\x00sec1" and type(secret) is bytes
    assert store.prekey_secret("nope") is None
    assert store.newest_prekey_start() == 150

    assert store.delete_prekey_secrets(expired_before=201, now_ms=500) == ["k1"]
    assert store.prekey_secret("k1") is None
    assert store.prekey_secret("k2") == b"\x00sec2"
    assert store.delete_prekey_secrets(expired_before=201, now_ms=600) == []
    assert store.q("SELECT retired_at FROM prekeys WHERE kid = ?", "k1") == [(500,)]
    assert store.prekey_records(0) == [{"kid": "k2"}]  # no records without the private half


def test_peers_are_added_replaced_and_listed(store: SqlStore) -> None:
    a = PeerRow("st-a", "Bravo", "en", b"\x00id-a", ["https://a"], [{"kid": "x"}], NOW)
    b = PeerRow("st-b", "Alpha", "ko", b"\x00id-b", [], [], NOW + 1)
    store.add_peer(a)
    store.add_peer(b)
    got = store.get_peer("st-a")
    assert got == a and type(got.identity) is bytes
    assert store.get_peer("nope") is None
    assert [p.name for p in store.list_peers()] == ["Alpha", "Bravo"]
    store.add_peer(PeerRow("st-a", "Charlie", "en", b"id", [], [], NOW))
    assert [p.name for p in store.list_peers()] == ["Alpha", "Charlie"]
    store.set_peer_prekeys("st-b", [{"kid": "y"}])
    assert store.get_peer("st-b") == PeerRow("st-b", "Alpha", "ko", b"\x00id-b", [], [{"kid": "y"}],
                                             NOW + 1)  # fmt: skip


def test_a_kept_peer_record_follows_every_change_and_another_connection(opener: Opener) -> None:
    """Peer records are kept in memory (every seal reads its recipients' prekeys): each write
    to the peers table, a rolled-back one and another connection's commit are seen at once."""
    store, other = opener(), opener()
    store.add_peer(PeerRow("st-a", "Alpha", "en", b"id-1", [], [{"kid": "x"}], NOW))
    assert store.get_peer("st-a") is not None and store.peer_record("st-z") is None
    store.set_peer_prekeys("st-a", [{"kid": "y"}])
    assert store.get_peer("st-a").prekeys == [{"kid": "y"}]  # type: ignore[union-attr]
    store.set_peer_identity("st-a", b"id-2", [{"kid": "z"}])
    assert store.peer_record("st-a").identity == b"id-2"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), store.tx():
        store.set_peer_prekeys("st-a", [{"kid": "undone"}])
        assert store.get_peer("st-a").prekeys == [{"kid": "undone"}]  # type: ignore[union-attr]
        raise RuntimeError("roll back")
    assert store.get_peer("st-a").prekeys == [{"kid": "z"}]  # type: ignore[union-attr]
    other.set_peer_state("st-a", removed=NOW, revoked=None)
    assert store.get_peer("st-a") is None and store.peer_record("st-a").removed == NOW  # type: ignore[union-attr]
    other.add_peer(PeerRow("st-z", "Zulu", "en", b"id-z", [], [], NOW))
    assert store.peer_record("st-z") is not None


def test_work_deferred_once_per_key_is_asked_again_after_an_undone_savepoint(
    store: SqlStore,
) -> None:
    ran: list[str] = []
    with store.tx():
        store.before_commit_once("k", lambda: ran.append("first"))
        store.before_commit_once("k", lambda: ran.append("second"))
        with pytest.raises(RuntimeError), store.savepoint():
            store.before_commit_once("j", lambda: ran.append("undone"))
            raise RuntimeError("undo")
        store.before_commit_once("j", lambda: ran.append("asked again"))
    assert ran == ["first", "asked again"]


# --- channels, envelopes, bodies -----------------------------------------------------------------
def test_channels_are_added_once_and_listed_in_creation_order(store: SqlStore) -> None:
    store.add_channel("zz", NOW)
    store.add_channel("aa", NOW + 1)
    store.add_channel("zz", NOW + 2)
    assert store.has_channel("zz") and not store.has_channel("yy")
    assert store.list_channels() == ["zz", "aa"]


def test_envelopes_heads_and_lookup(store: SqlStore) -> None:
    assert store.head("c", "a") is None
    assert store.heads("c") == {}
    i1 = store.insert_envelope("c", "a", 1, H1, b"\x00raw1", NOW, "ROUTINE", NOW + 5)
    i2 = store.insert_envelope("c", "a", 2, H2, b"raw2", NOW + 1, "FLASH", NOW + 6)
    i3 = store.insert_envelope("c", "b", 1, H3, b"raw3", NOW + 2, "ROUTINE", NOW + 7)
    assert i1 < i2 < i3
    head = store.head("c", "a")
    assert head is not None
    assert (head.id, head.seq, head.hash, head.raw, head.ts, head.prec, head.stored) == (
        i2, 2, H2, b"raw2", NOW + 1, "FLASH", NOW + 6,
    )  # fmt: skip
    assert type(head.hash) is bytes and type(head.raw) is bytes
    assert store.heads("c") == {"a": 2, "b": 1}
    assert store.hash_at("c", "a", 1) == H1
    assert store.hash_at("c", "a", 9) is None
    by_hash = store.envelope_by_hash(H3)
    assert by_hash is not None and (by_hash.sender, by_hash.raw) == ("b", b"raw3")
    assert store.envelope_by_hash(H4) is None
    assert [e.id for e in store.envelopes("c")] == [i1, i2, i3]
    assert [e.id for e in store.envelopes("c", limit=2)] == [i1, i2]
    assert [e.seq for e in store.envelopes("c", "a", after_seq=1)] == [2]
    assert store.envelopes("other") == []


def test_a_second_envelope_at_the_same_position_or_hash_is_refused(store: SqlStore) -> None:
    store.insert_envelope("c", "a", 1, H1, b"raw1", NOW, "ROUTINE", NOW)
    with pytest.raises(IntegrityError):
        store.insert_envelope("c", "a", 1, H2, b"other", NOW, "ROUTINE", NOW)
    with pytest.raises(IntegrityError):
        store.insert_envelope("c", "a", 2, H1, b"raw1", NOW, "ROUTINE", NOW)
    # the failed statements left the store usable and stored nothing
    store.insert_envelope("c", "a", 2, H2, b"raw2", NOW, "ROUTINE", NOW)
    assert [e.hash for e in store.envelopes("c")] == [H1, H2]


def test_bodies_and_channel_and_control_events(store: SqlStore) -> None:
    i1 = store.insert_envelope("c", "a", 1, H1, b"r1", NOW, "ROUTINE", NOW)
    i2 = store.insert_envelope("c", "a", 2, H2, b"r2", NOW, "ROUTINE", NOW)
    i3 = store.insert_envelope("c", "a", 3, H3, b"r3", NOW, "ROUTINE", NOW)
    i4 = store.insert_envelope("c", "a", 4, H4, b"r4", NOW, "ROUTINE", NOW)
    store.put_body(H1, "channel.open", json.dumps({"type": "channel.open"}), b"\x00salt1")
    store.put_body(H2, "note", json.dumps({"type": "note", "text": "100%"}), b"salt2")
    store.put_body(H4, "channelX", json.dumps({"type": "channelX"}), b"salt4")  # not channel.*
    body = store.body(H1)
    assert body is not None and body.body == {"type": "channel.open"} and body.salt == b"\x00salt1"
    assert type(body.salt) is bytes
    assert store.body(H3) is None

    events = store.channel_events("c")
    assert [(e.id, b.body["type"] if b else None) for e, b in events] == [
        (i1, "channel.open"), (i2, "note"), (i3, None), (i4, "channelX"),
    ]  # fmt: skip
    assert [e.id for e, _ in store.channel_events("c", after_id=i2, limit=1)] == [i3]
    assert [(e.id, b.body["type"]) for e, b in store.control_events("c")] == [(i1, "channel.open")]
    assert store.control_events("other") == []


# --- outbox --------------------------------------------------------------------------------------
def test_outbox_orders_by_channel_precedence_then_envelope(store: SqlStore) -> None:
    ids = {}
    for ch, seq, h, prec in [("slow", 1, H1, "ROUTINE"), ("slow", 2, H2, "ROUTINE"),
                             ("fast", 1, H3, "ROUTINE"), ("fast", 2, H4, "FLASH")]:  # fmt: skip
        ids[(ch, seq)] = store.insert_envelope(ch, "me", seq, h, b"r", NOW, prec, NOW)
        store.enqueue(ch, seq, "p", ids[(ch, seq)], prec)
    store.enqueue("slow", 1, "q", ids[("slow", 1)], "ROUTINE")

    # The FLASH goes first on its own (the peer holds it ahead of its chain and shows it early);
    # then "fast", which holds a FLASH, goes in chain order before "slow"
    order = [(e.channel, e.seq) for e in store.pending("p", 10)]
    assert order == [("fast", 2), ("fast", 1), ("slow", 1), ("slow", 2)]
    assert [(e.channel, e.seq) for e in store.pending("p", 3)] == order[:3]
    assert sorted(store.peers_with_pending()) == ["p", "q"]
    assert store.outbox_counts("p") == (0, 4)
    assert store.outbox_counts("nobody") == (0, 0)

    assert store.mark_delivered("fast", "p", 2, NOW) == 2
    assert store.mark_delivered("fast", "p", 2, NOW) == 0
    assert [(e.channel, e.seq) for e in store.pending("p", 10)] == [("slow", 1), ("slow", 2)]
    assert store.outbox_counts("p") == (2, 2)

    store.requeue_from("fast", "p", 2)
    assert [(e.channel, e.seq) for e in store.pending("p", 10)] == [
        ("fast", 2), ("slow", 1), ("slow", 2),
    ]  # fmt: skip
    assert store.outbox_counts("p") == (1, 3)
    store.mark_delivered("slow", "q", 5, NOW)
    assert store.peers_with_pending() == ["p"]


def test_outbox_statements_read_only_undelivered_rows(tmp_path: Path) -> None:
    """Issue 14: a receipt's mark and the next batch's choice go through the partial indexes on
    undelivered rows, so their cost follows what is pending or marked, not the outbox's history
    (through the primary key a 100,000 catch-up cost O(n^2))."""
    s = SqliteStore(tmp_path / "plan.db")
    s.migrate()

    def plan(sql: str) -> str:
        return " ".join(str(r[3]) for r in s.conn.execute("EXPLAIN QUERY PLAN " + sql, ()))

    where = "channel = 'c' AND peer = 'p' AND seq <= 9 AND delivered IS NULL"
    assert "outbox_undelivered" in plan(f"UPDATE outbox SET delivered = 1 WHERE {where}")
    assert "outbox_undelivered" in plan(f"SELECT COUNT(*) FROM outbox WHERE {where}")
    chain = (
        "SELECT envelope_id FROM outbox WHERE channel = 'c' AND peer = 'p'"
        " AND delivered IS NULL AND prio != 0 ORDER BY seq LIMIT 5"
    )
    assert "outbox_undelivered" in plan(chain) and "TEMP B-TREE" not in plan(chain)
    s.close()


def test_sqlite_checkpoints_the_wal_on_its_own_thread_not_in_a_commit(tmp_path: Path) -> None:
    """Issue 14: the commit that crossed SQLite's 1,000-page default also copied the WAL into
    the database file under the store's lock; now a thread of the store's does it after
    commits, and the committing connection only past the backstop."""
    s = SqliteStore(tmp_path / "wal.db")
    s.migrate()
    assert s.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    for i in range(20):
        s.set_meta(f"k{i}", "v" * 3000)
    deadline = time.monotonic() + 60
    while s.checkpointer.runs == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.checkpointer.runs > 0 and s.checkpointer.running
    s.close()
    assert not s.checkpointer.running  # close() ends it
    with sqlite3.connect(tmp_path / "wal.db") as c:  # everything committed is there
        assert c.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0] == 20


def test_an_idle_store_keeps_no_checkpoint_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "IDLE_S", 0.05)
    s = SqliteStore(tmp_path / "idle.db")
    s.set_meta("k", "v")
    deadline = time.monotonic() + 60
    while s.checkpointer.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not s.checkpointer.running
    runs = s.checkpointer.runs
    s.set_meta("k", "w")  # the next commit starts another
    while s.checkpointer.runs == runs and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.checkpointer.runs > runs
    s.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(st.sampled_from("xyz"), st.sampled_from(list(Precedence)), st.booleans()),
        min_size=1, max_size=14,
    )
)  # fmt: skip
def test_outbox_sql_follows_the_domain_rule(
    store: SqlStore, queued: list[tuple[str, Precedence, bool]]
) -> None:
    """`pending` orders exactly as domain/precedence.outbox_order, whatever is queued and
    whichever rows a receipt already covered."""
    run = next(_RUNS)  # each example on channels and a peer of its own
    peer, seqs, expected = f"p{run}", dict.fromkeys("xyz", 0), []
    for name, prec, delivered in queued:
        ch = f"{name}{run}"
        seqs[name] += 1
        h = run.to_bytes(4, "big") + len(expected).to_bytes(4, "big") + bytes(24)
        row = store.insert_envelope(ch, "me", seqs[name], h, b"r", NOW, prec.value, NOW)
        store.enqueue(ch, seqs[name], peer, row, prec.value)
        if delivered:  # a receipt covers it (and, cumulative, what came before on its chain)
            store.mark_delivered(ch, peer, seqs[name], NOW)
        expected.append(Pending(ch, prec, row))
    pending_ids = {e.id for e in store.pending(peer, 100)}
    rule = outbox_order(p for p in expected if p.created in pending_ids)
    assert [e.id for e in store.pending(peer, 100)] == [p.created for p in rule]


_RUNS = itertools.count(1)


# --- receipts, evidence, alarms ------------------------------------------------------------------
def test_receipts_are_kept_once_and_the_newest_is_found(store: SqlStore) -> None:
    assert store.last_receipt("b") is None
    store.add_receipt("c", "a", "b", 1, H1, NOW, b"\x00rc1")
    store.add_receipt("c", "a", "b", 1, H1, NOW + 9, b"dupe")  # same position: ignored
    store.add_receipt("c", "a", "b", 2, H2, NOW + 1, b"rc2")
    store.add_receipt("d", "a", "b", 7, H3, NOW + 1, b"rd7")
    assert store.last_receipt("b") == ("d", 7, NOW + 1, b"rd7")
    assert store.receipts_for("c", "b") == [(1, b"\x00rc1"), (2, b"rc2")]
    assert store.receipts_for("c", "a") == []


def test_evidence_is_deduplicated_by_raw_bytes(store: SqlStore) -> None:
    assert store.add_evidence("c", "a", 3, "equivocation", b"\x00ev", H1, NOW) is Evidence.KEPT
    again = store.add_evidence("c", "a", 3, "equivocation", b"\x00ev", H1, NOW + 1)
    assert again is Evidence.DUPLICATE
    assert store.add_evidence("c", "a", 4, "broken_chain", b"ev2", None, NOW + 2) is Evidence.KEPT
    assert store.evidence() == [
        ("c", "a", 3, "equivocation", b"\x00ev", H1, NOW),
        ("c", "a", 4, "broken_chain", b"ev2", None, NOW + 2),
    ]


def test_alarms_are_raised_listed_and_cleared(store: SqlStore) -> None:
    a1 = store.add_alarm("divergence", "critical", "p", "bad hash", NOW)
    a2 = store.add_alarm("link", "warning", "q", "down 50%", NOW + 1)
    assert a1 < a2
    assert [(a.id, a.message) for a in store.alarms()] == [(a2, "down 50%"), (a1, "bad hash")]
    assert store.clear_alarm(a1, NOW + 2)
    assert [a.id for a in store.alarms()] == [a2]
    assert [(a.id, a.cleared) for a in store.alarms(include_cleared=True)] == [
        (a2, None), (a1, NOW + 2),
    ]  # fmt: skip
    assert not store.clear_alarm(a1, NOW + 3)  # already cleared


# --- idempotency, links, audit -------------------------------------------------------------------
def test_idempotency_keys(store: SqlStore) -> None:
    assert store.idempotent("k") is None
    store.remember("k", "c", 3, NOW)
    assert store.idempotent("k") == ("c", 3, 1, "")
    store.remember("r", "c", 4, NOW, 2, "d1")  # a run of two, made by request digest d1
    assert store.idempotent("r") == ("c", 4, 2, "d1")
    assert store.claim("r", "c", 9, NOW) == ("c", 4, 2, "d1")
    with pytest.raises(IntegrityError):
        store.remember("k", "c", 4, NOW)


def test_idempotency_keys_are_pruned_by_age_then_count(store: SqlStore) -> None:
    for i in range(10):
        assert store.claim(f"k{i}", "c", i, NOW + i) is None
    assert store.claim("k3", "c", 99, NOW + 50) == ("c", 3, 1, "")  # a retry: the first answer
    assert store.prune_idempotency(NOW + 2, 100) == 2  # k0, k1: older than the bound
    assert store.idempotent("k1") is None and store.idempotent("k2") == ("c", 2, 1, "")
    assert store.prune_idempotency(0, 3) == 5  # only the 3 newest stay
    assert [store.idempotent(f"k{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3
    assert store.prune_idempotency(0, 3) == 0


def test_links_are_set_and_replaced(store: SqlStore) -> None:
    assert store.link("p") is None
    row = LinkRow("p", "up", NOW, NOW, None, 0, 12)
    store.set_link(row)
    assert store.link("p") == row
    row2 = LinkRow("p", "down", NOW + 1, NOW, "timeout", 3, None)
    store.set_link(row2)
    assert store.link("p") == row2


def test_audit_log_newest_first(store: SqlStore) -> None:
    store.audit("admin", "peer.add", {"z": 1, "a": 2}, NOW)
    store.audit("op", "send", {}, NOW + 1)
    assert store.audit_log() == [
        (NOW + 1, "op", "send", "{}"),
        (NOW, "admin", "peer.add", '{"a": 2, "z": 1}'),
    ]
    assert len(store.audit_log(limit=1)) == 1


# --- transactions --------------------------------------------------------------------------------
def test_an_exception_rolls_the_whole_transaction_back(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.tx():
        store.add_channel("c", NOW)
        store.insert_envelope("c", "a", 1, H1, b"r", NOW, "ROUTINE", NOW)
        store.set_meta("x", "y")
        with store.tx():
            store.audit("a", "b", {}, NOW)
        raise RuntimeError("boom")
    assert store.list_channels() == []
    assert store.envelopes("c") == []
    assert store.get_meta("x") is None
    assert store.audit_log() == []
    store.add_channel("c", NOW)  # and the store works afterwards
    assert store.list_channels() == ["c"]


def test_an_inner_failure_rolls_back_the_outer_transaction(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.tx():
        store.add_channel("outer", NOW)
        with store.tx():
            store.add_channel("inner", NOW)
            raise RuntimeError("boom")
    assert store.list_channels() == []


def test_nested_transactions_commit_only_with_the_outer_one(
    store: SqlStore, opener: Opener
) -> None:
    other = opener()
    with store.tx():
        store.add_channel("c", NOW)
        with store.tx():
            store.add_channel("d", NOW + 1)
        assert store.list_channels() == ["c", "d"]  # our own writes are visible to us
        assert other.list_channels() == []  # and to nobody else until the outer commit
    assert other.list_channels() == ["c", "d"]


def test_concurrent_writers_do_not_interleave_check_then_insert(opener: Opener) -> None:
    stores = [opener(), opener()]
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def work(s: SqlStore) -> None:
        barrier.wait()
        for i in range(20):
            got = s.add_evidence("c", "a", i, "k", b"ev%d" % i, None, NOW)
            results.append(got is Evidence.KEPT)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 20
    assert count(stores[0], "evidence") == 20


# --- PostgreSQL specifics ------------------------------------------------------------------------
def test_postgres_dialect_rewrites() -> None:
    s = object.__new__(PostgresStore)
    assert s._sql("SELECT 1 WHERE t LIKE 'channel.%' AND x = ? AND y = ?") == (
        "SELECT 1 WHERE t LIKE 'channel.%%' AND x = %s AND y = %s"
    )
    ddl = s._ddl("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, blobby TEXT)")
    assert ddl == "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, b BYTEA, blobby TEXT)"


def test_lock_keys_are_signed_64_bit() -> None:
    assert lock_key(7) == 7
    k = lock_key("parley.dispatcher")
    assert k == lock_key("parley.dispatcher") and -(2**63) <= k < 2**63
    with pytest.raises(ValueError):
        lock_key(2**63)


def test_postgres_refuses_to_commit_an_aborted_transaction(pg_db: str) -> None:
    store = PostgresStore(pg_db)
    try:
        store.insert_envelope("c", "a", 1, H1, b"r", NOW, "ROUTINE", NOW)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction), store.tx():
            store.add_channel("c", NOW)
            with pytest.raises(psycopg.IntegrityError):
                store.insert_envelope("c", "a", 1, H2, b"r", NOW, "ROUTINE", NOW)
            # the caller swallowed the error; every later statement fails too...
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                store.add_channel("d", NOW)
        # ...and the transaction did not pretend to commit
        assert store.list_channels() == []
    finally:
        store.close()


def test_postgres_workers_starting_together_migrate_once(pg_db: str) -> None:
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        try:
            stores.append(PostgresStore(pg_db))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert [s.get_meta("schema_version") for s in stores] == [str(LATEST)] * 4
    finally:
        for s in stores:
            s.close()


def test_exactly_one_store_holds_the_dispatcher_lock(pg_db: str) -> None:
    a, b = PostgresStore(pg_db), PostgresStore(pg_db)
    try:
        assert a.try_dispatcher_lock()
        assert a.try_dispatcher_lock()  # asking again while holding it is fine
        assert a.holds_dispatcher_lock()
        assert not b.try_dispatcher_lock()
        assert not b.holds_dispatcher_lock()
        assert b.try_dispatcher_lock("another.role")  # other keys are independent
        b.release_dispatcher_lock()

        with a.tx():  # transactions on the main connection do not touch the lock
            a.set_meta("x", "1")
        assert not b.try_dispatcher_lock()

        a.close()  # the holder's connections close: the lock is free
        assert b.try_dispatcher_lock()
        c = PostgresStore(pg_db)
        try:
            assert not c.try_dispatcher_lock()
            b.release_dispatcher_lock()
            assert c.try_dispatcher_lock()
        finally:
            c.close()
    finally:
        a.close()
        b.close()


def test_a_dead_lock_connection_frees_the_lock_and_is_noticed(pg_db: str, pg_dsn: str) -> None:
    a, b = PostgresStore(pg_db), PostgresStore(pg_db)
    try:
        assert a.try_dispatcher_lock()
        assert a._lock_conn is not None
        pid = a._lock_conn.info.backend_pid
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        assert b.try_dispatcher_lock()
        assert not a.holds_dispatcher_lock()
        assert not a.try_dispatcher_lock()
    finally:
        a.close()
        b.close()


def test_after_commit_runs_once_after_the_commit_and_never_after_a_rollback(
    store: SqlStore,
) -> None:
    ran: list[int] = []

    def hook() -> None:
        # Runs outside the transaction: the meta written in it is committed by now.
        ran.append(int(store.get_meta("k") or 0))

    with store.tx():
        store.set_meta("k", "1")
        store.after_commit(hook)
        store.after_commit(hook)  # a group of sends asks once each: it runs once
        assert ran == []
    assert ran == [1]
    with pytest.raises(RuntimeError), store.tx():
        store.after_commit(hook)
        raise RuntimeError("rolled back")
    assert ran == [1]
    store.after_commit(hook)  # no transaction open: at once
    assert ran == [1, 1]


def test_after_commit_on_a_thread_without_a_transaction_does_not_wait_for_another_threads(
    store: SqlStore,
) -> None:
    # The dispatcher's wake-up asks after_commit on the event loop while the writer may be in
    # its next group: it has no transaction of its own, so it runs at once instead of holding
    # the loop until that group commits; the other thread's own hook still waits for its commit.
    ran: list[str] = []

    def writing() -> None:
        store.set_meta("k", "2")
        store.after_commit(lambda: ran.append("writer's, after its commit"))

    with held_elsewhere(store.tx, writing):
        store.after_commit(lambda: ran.append("at once"))
        assert ran == ["at once"]
    assert ran == ["at once", "writer's, after its commit"]


def test_a_remembered_credential_is_answered_while_another_thread_is_inside_a_transaction(
    opener: Opener,
) -> None:
    # An operator's token during a burst of sends: the writer holds the store in a transaction
    # most of the time. That transaction holds the database's write lock and looked for other
    # connections' commits when it began, so the remembered credential is answered without
    # waiting for its commit. A thread holding the store outside a transaction (a read) gives
    # no such assurance: then None at once, as before, and the caller looks it up.
    store, key = opener(), b"t" + bytes(32)
    store.keep_credential(key, "kim", NOW + 5_000, store.credentials_version())
    with held_elsewhere(store.tx):
        assert store.credential(key, NOW, wait=False) == "kim"
        assert store.credential(key, NOW) == "kim"  # nor does a waiting caller wait
        assert store.credential(key, NOW + 5_000, wait=False) is None  # expired, still
    with held_elsewhere(lambda: store.lock):
        assert store.credential(key, NOW, wait=False) is None
    # Withdrawn inside the other thread's transaction, before it commits: at once.
    with held_elsewhere(store.tx, store.credentials_withdrawn):
        assert store.credential(key, NOW, wait=False) is None
    # Another connection's withdrawal committed before the transaction began: seen at its start.
    store.keep_credential(key, "kim", NOW + 5_000, store.credentials_version())
    other = opener()
    with other.tx():
        other.set_meta("roles", "changed")
        other.credentials_withdrawn()
    with held_elsewhere(store.tx):
        assert store.credential(key, NOW, wait=False) is None
    assert store.credential(key, NOW, wait=False) is None


# --- held ahead of their chains ------------------------------------------------------------------
def _recount(store: SqlStore, sender: str) -> tuple[int, int]:
    row = store.q(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(raw)), 0) FROM held WHERE sender = ?", sender
    )[0]
    return int(row[0]), int(row[1])


def test_held_usage_follows_every_hold_and_drop(store: SqlStore) -> None:
    """The counts kept beside the held rows (migration 20) equal a count of the rows after any
    mix of holds, refused holds (a seq held already, a full chain) and drops; the chain limit
    reads them too."""
    rng = random.Random(20)
    senders, chans = ["s1", "s2"], ["c1", "c2", "c3"]
    held: set[tuple[str, str, int]] = set()
    for _ in range(300):
        ch, sender, seq = rng.choice(chans), rng.choice(senders), rng.randint(1, 12)
        if rng.random() < 0.6:
            raw = bytes(rng.randint(1, 300))
            n_chain = sum(1 for c, s, _ in held if (c, s) == (ch, sender))
            kept = store.hold(ch, sender, seq, bytes(32), raw, "ROUTINE", None, NOW, limit=8)
            assert kept == ((ch, sender, seq) not in held and n_chain < 8)
            if kept:
                held.add((ch, sender, seq))
        else:
            store.drop_held(ch, sender, seq)  # dropping what is not held changes nothing
            held.discard((ch, sender, seq))
        for s in senders:
            assert store.held_usage(s) == _recount(store, s)
    assert store.held_usage("nobody") == (0, 0)


def test_migrations_20_and_22_count_what_was_held_and_queued_before_them(opener: Opener) -> None:
    s = opener()
    for seq, size in ((2, 100), (3, 50), (7, 9)):
        s.hold("c1", "s1", seq, bytes(32), bytes(size), "ROUTINE", None, NOW, limit=99)
    s.hold("c2", "s1", 4, bytes(32), bytes(1), "ROUTINE", None, NOW, limit=99)
    relay_add(s, "s1", "d1", bytes(32), bytes(70), NOW)
    relay_add(s, "s1", "d1", bytes(31) + b"x", bytes(5), NOW)
    with s.tx():  # back to version 19: the rows without their counts (21, 23, 24 undone too)
        s.q("DROP TABLE held_usage")
        s.q("DROP INDEX evidence_source")
        s.q("DROP TABLE relay_usage")
        s.q("ALTER TABLE idempotency DROP COLUMN n")
        s.q("ALTER TABLE idempotency DROP COLUMN request")
        s.q("UPDATE meta SET value = '19' WHERE key = 'schema_version'")
    again = opener()
    assert again.get_meta("schema_version") == str(LATEST)
    assert again.held_usage("s1") == (4, 160) == _recount(again, "s1")
    assert relay_usage(again, "s1", "d1") == (2, 75)  # migration 22 counted the queue too
    assert not again.hold("c1", "s1", 9, bytes(32), b"x", "ROUTINE", None, NOW, limit=3)


def test_evidence_is_bounded_per_sender_and_kind(store: SqlStore) -> None:
    """A hostile peer signs conflicting envelopes without end: at most EVIDENCE_LIMIT pieces
    per sender and kind are kept, and the lookup reads that sender's of that kind only."""
    for i in range(EVIDENCE_LIMIT):
        assert store.add_evidence("c", "a", i, "equivocation", b"x%d" % i, None, NOW).name == "KEPT"
    assert store.add_evidence("c", "a", 999, "equivocation", b"more", None, NOW) is Evidence.FULL
    assert store.add_evidence("c", "a", 1, "equivocation", b"x1", None, NOW) is Evidence.DUPLICATE
    # Another sender, another kind: counted apart.
    assert store.add_evidence("c", "b", 1, "equivocation", b"more", None, NOW) is Evidence.KEPT
    assert store.add_evidence("c", "a", 1, "divergence", b"more", None, NOW) is Evidence.KEPT
    assert count(store, "evidence") == EVIDENCE_LIMIT + 2
