"""Group commit (station/writer.py) on both stores: sends queued together share one transaction,
a bad send fails alone, a failed commit answers nobody "queued", a send inside a transaction joins
it, and the counters show the grouping. Threads are real; every wait is bounded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.domain.liveness import LinkState
from parley.errors import Code, LocalError, ParleyError
from parley.protocol import crypto
from parley.protocol.envelope import parse_envelope
from parley.station import features, paths, vigil
from parley.station.config import Config, Timings
from parley.station.node import Accepted, Station
from parley.store.base import EnvelopeRow, LinkRow, SqlStore
from parley.store.cache import LRU
from parley.store.postgres import PostgresStore
from parley.store.sqlite import SqliteStore
from tests.net import LIVENESS_S, wait
from tests.pair import Clock, Net, introduce, make_station, open_channel

pytest_plugins = ["tests.stores"]  # the `store` fixture: SQLite and PostgreSQL

TEXT = {"type": "text", "text": "", "lang": "en"}


def text(t: str) -> dict[str, Any]:
    return {**TEXT, "text": t}


@pytest.fixture
def pair(store: SqlStore, tmp_path: Path) -> Iterator[tuple[Station, Station, str]]:
    """A on the parametrized store, B on SQLite, an open hotline between them."""
    clock = Clock()
    cfg = Config(name="South", lang="en", listen="127.0.0.1:9", timings=Timings())
    a = features.install(Station(cfg, store, crypto.SigningKey.generate(), clock))
    a.rotate_prekeys()
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(a, b)
    ch = open_channel(Net(), a, b)
    yield a, b, ch
    b.store.close()


class Burst:
    """Sends on threads of their own while the writer is held inside a transaction, so that all
    of them are queued together before the first is committed."""

    def __init__(self, st: Station) -> None:
        self.st = st
        self.release = threading.Event()
        self.entered = threading.Event()
        self.threads: list[threading.Thread] = []
        self.results: dict[str, tuple[EnvelopeRow, bool] | BaseException] = {}

    def hold(self) -> None:
        def block() -> None:
            self.entered.set()
            assert self.release.wait(30)

        self._spawn("blocker", lambda: self.st.writer.run(block))
        wait(self.entered.is_set, what="the writer to hold its transaction", every_s=0.005)

    def send(self, name: str, channel: str, body: dict[str, Any], key: str = "") -> None:
        self._spawn(name, lambda: self.st.send(channel, body, "ROUTINE", key))

    def _spawn(self, name: str, fn: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                self.results[name] = fn()
            except BaseException as exc:
                self.results[name] = exc

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)

    def go(self, queued: int) -> None:
        wait(
            lambda: len(self.st.writer._queue) == queued,
            what=f"{queued} queued sends",
            every_s=0.005,
        )
        self.release.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()


def chain(st: Station, channel: str) -> list[EnvelopeRow]:
    return st.store.envelopes(channel, st.id)


def test_sends_queued_together_share_one_commit(pair: tuple[Station, Station, str]) -> None:
    a, _, ch = pair
    before = a.store.counters()
    burst = Burst(a)
    burst.hold()
    for i in range(40):
        burst.send(f"s{i}", ch, text(f"m{i}"), key=f"k{i}")
    burst.go(40)
    after = a.store.counters()
    # The held group (one job) and then all 40 in one transaction.
    assert after["writer.groups"] - before["writer.groups"] == 2
    assert after["writer.sends"] - before["writer.sends"] == 41
    rows = {name: r for name, r in burst.results.items() if name != "blocker"}
    assert all(isinstance(r, tuple) and r[1] for r in rows.values()), rows
    held = chain(a, ch)
    # Each answer is exactly what is stored, and the chain has no gap.
    stored = {r.seq: r for r in held}
    for r in rows.values():
        assert isinstance(r, tuple)
        assert stored[r[0].seq] == r[0]
    assert [r.seq for r in held] == list(range(1, len(held) + 1))
    texts = sorted(a.store.body(r.hash).body.get("text", "") for r in held)  # type: ignore[union-attr]
    assert [t for t in texts if t.startswith("m")] == sorted(f"m{i}" for i in range(40))


def test_async_sends_share_one_commit_with_thread_sends_and_each_gets_its_answer(
    pair: tuple[Station, Station, str],
) -> None:
    """run_async (the API's sends): coroutines queued while a thread holds the writer are
    committed in one group with the threads' sends, by the holder as it steps down or by a
    drain; each coroutine gets its own row or its own error, and a failing job fails alone."""
    a, _, ch = pair
    before = a.store.counters()
    burst = Burst(a)
    burst.hold()
    for i in range(5):
        burst.send(f"t{i}", ch, text(f"t{i}"))
    loop = asyncio.new_event_loop()

    def bad() -> tuple[EnvelopeRow, bool]:
        raise LocalError(Code.INVALID_REQUEST, "refused on purpose")

    async def sends() -> list[Any]:
        jobs = [a.writer.run_async(lambda i=i: a.send(ch, text(f"c{i}"))) for i in range(20)]
        jobs.append(a.writer.run_async(bad))
        tasks = [asyncio.ensure_future(j) for j in jobs]
        await asyncio.sleep(0)  # every job is queued before the holder lets go
        await asyncio.to_thread(burst.go, 26)
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), LIVENESS_S)

    try:
        answers = loop.run_until_complete(sends())
    finally:
        loop.close()
    assert isinstance(answers[-1], LocalError)
    rows = [r[0] for r in answers[:-1]]
    assert all(isinstance(r, EnvelopeRow) for r in rows), answers
    stored = {r.seq: r for r in chain(a, ch)}
    assert all(stored[r.seq] == r for r in rows)  # each answer is exactly what is stored
    after = a.store.counters()
    # The held job's group, then the 5 thread sends and 20 coroutine sends in one group (the
    # failing one is not counted).
    assert after["writer.groups"] - before["writer.groups"] == 2
    assert after["writer.sends"] - before["writer.sends"] == 26


def test_async_sends_queued_behind_a_thread_s_lead_are_committed_after_it(
    pair: tuple[Station, Station, str],
) -> None:
    """Coroutines queue while a thread leads and no other thread waits: the leader, stepping
    down with their jobs queued, starts a drain for them (else they would wait forever)."""
    a, _, ch = pair
    burst = Burst(a)
    burst.hold()

    async def sends() -> list[tuple[EnvelopeRow, bool]]:
        tasks = [
            asyncio.ensure_future(a.writer.run_async(lambda i=i: a.send(ch, text(f"q{i}"))))
            for i in range(3)
        ]
        await asyncio.sleep(0)
        await asyncio.to_thread(burst.go, 3)
        return await asyncio.wait_for(asyncio.gather(*tasks), LIVENESS_S)

    rows = asyncio.run(sends())
    assert sorted(r[0].seq for r in rows) == [r.seq for r in chain(a, ch)][-3:]


def test_an_async_send_alone_is_committed_by_a_drain(pair: tuple[Station, Station, str]) -> None:
    """Nobody is committing: the coroutine's job starts a drain on the writer's pool, and its
    answer comes back once the row is durable; many in a row each get theirs."""
    a, _, ch = pair

    async def one_by_one() -> list[tuple[EnvelopeRow, bool]]:
        out = []
        for i in range(10):
            job = a.writer.run_async(
                lambda i=i: a.send(ch, text(f"solo{i}"), idempotency_key=f"s{i}")
            )
            out.append(await asyncio.wait_for(job, LIVENESS_S))
        return out

    rows = asyncio.run(one_by_one())
    assert [r[0].seq for r in rows] == [r.seq for r in chain(a, ch)][-10:]
    assert all(created for _, created in rows)
    # Nothing left behind: the drain steps down once the queue is empty (just after answering).
    wait(lambda: not (a.writer._leading or a.writer._draining), what="the drain to end")


def test_a_bad_send_fails_alone_and_leaves_nothing(pair: tuple[Station, Station, str]) -> None:
    a, b, ch = pair

    def poison(st: Station, acc: Accepted) -> None:
        # Runs after the envelope, body and outbox rows are written: the savepoint undoes them.
        if acc.local and acc.body.get("text") == "poison":
            raise LocalError(Code.INVALID_REQUEST, "poisoned")

    a.observers.append(poison)
    burst = Burst(a)
    burst.hold()
    burst.send("first", ch, text("first"))
    burst.send("poison", ch, text("poison"))
    burst.send("nochannel", "no-such-channel", text("lost"))
    burst.send("badbody", ch, {"type": "text"})
    burst.go(4)
    burst.send("last", ch, text("last"))
    for t in burst.threads:
        t.join(30)
    assert isinstance(burst.results["poison"], LocalError)
    assert isinstance(burst.results["nochannel"], ParleyError)
    assert isinstance(burst.results["badbody"], ParleyError)
    first, last = burst.results["first"], burst.results["last"]
    assert isinstance(first, tuple) and isinstance(last, tuple)
    held = chain(a, ch)
    texts = [a.store.body(r.hash).body.get("text") for r in held]  # type: ignore[union-attr]
    assert "poison" not in texts and "lost" not in texts
    assert texts[-2:] == ["first", "last"]
    assert [r.seq for r in held] == list(range(1, len(held) + 1))
    # The peer takes the chain as it is: no gap, no hole left by the undone send.
    results = Net().deliver(a, b)
    assert {r.status for r in results} == {"accepted"}
    assert b.store.head_seq(ch, a.id) == held[-1].seq


def test_a_failed_commit_answers_nobody_queued(
    pair: tuple[Station, Station, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, ch = pair
    head = a.store.head_seq(ch, a.id)
    burst = Burst(a)
    burst.hold()
    for i in range(5):
        burst.send(f"s{i}", ch, text(f"m{i}"))
    real_commit = type(a.store)._commit
    calls = {"n": 0}

    def failing_commit(self: SqlStore) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the group of five, after the held one
            raise OSError("disk full")
        real_commit(self)  # type: ignore[arg-type]

    monkeypatch.setattr(type(a.store), "_commit", failing_commit)
    burst.go(5)
    monkeypatch.undo()
    errors = [burst.results[f"s{i}"] for i in range(5)]
    assert all(isinstance(e, OSError) for e in errors), errors
    assert a.store.head_seq(ch, a.id) == head + 0  # the held job stored nothing either
    row, created = a.send(ch, text("after"))
    assert created and row.seq == head + 1


def test_a_failed_commit_answers_no_coroutine_queued(
    pair: tuple[Station, Station, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_async: a group whose COMMIT fails answers every waiting coroutine with that error,
    and the next send still works (the drain stepped down)."""
    a, _, ch = pair
    head = a.store.head_seq(ch, a.id)
    real_commit = type(a.store)._commit

    def failing_commit(self: SqlStore) -> None:
        raise OSError("disk full")

    async def sends() -> list[Any]:
        jobs = [a.writer.run_async(lambda i=i: a.send(ch, text(f"f{i}"))) for i in range(4)]
        return await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), LIVENESS_S)

    monkeypatch.setattr(type(a.store), "_commit", failing_commit)
    answers = asyncio.run(sends())
    monkeypatch.setattr(type(a.store), "_commit", real_commit)
    assert all(isinstance(e, OSError) for e in answers), answers
    assert a.store.head_seq(ch, a.id) == head  # nothing of theirs is stored
    row, created = asyncio.run(a.writer.run_async(lambda: a.send(ch, text("after"))))
    assert created and row.seq == head + 1


def test_a_send_inside_a_transaction_joins_it(pair: tuple[Station, Station, str]) -> None:
    a, _, ch = pair
    groups = a.store.counters()["writer.groups"]
    with a.store.tx():
        row, _ = a.send(ch, text("inside"))
        row2, _ = a.send(ch, text("inside 2"))
    assert row2.seq == row.seq + 1
    assert a.store.counters()["writer.groups"] == groups  # not through a group
    with pytest.raises(RuntimeError), a.store.tx():
        a.send(ch, text("undone"))
        raise RuntimeError("the outer transaction fails")
    assert a.store.head_seq(ch, a.id) == row2.seq


def test_a_repeated_key_in_one_group_makes_one_envelope(
    pair: tuple[Station, Station, str],
) -> None:
    a, _, ch = pair
    burst = Burst(a)
    burst.hold()
    for i in range(6):
        burst.send(f"s{i}", ch, text("same"), key="one-key")
    burst.go(6)
    answers = [burst.results[f"s{i}"] for i in range(6)]
    assert all(isinstance(r, tuple) for r in answers), answers
    rows = {r[0] for r in answers if isinstance(r, tuple)}
    assert len(rows) == 1
    assert sum(1 for r in answers if isinstance(r, tuple) and r[1]) == 1


# --- cached state: chain heads, channel states, idempotency keys ---------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def workers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Station, Station, Station, str]]:
    """Two stations on one database with one identity (two workers of one station), and a
    peer on SQLite with an open hotline: (worker 1, worker 2, peer, channel)."""
    if request.param == "sqlite":
        path = tmp_path / "a.db"

        def opener() -> SqlStore:
            return SqliteStore(path)
    else:
        dsn = request.getfixturevalue("pg_db")

        def opener() -> SqlStore:
            return PostgresStore(dsn)

    clock = Clock()
    cfg = Config(name="South", lang="en", listen="127.0.0.1:9", timings=Timings())
    key = crypto.SigningKey.generate()
    w1 = features.install(Station(cfg, opener(), key, clock))
    w1.rotate_prekeys()
    w2 = features.install(Station(cfg, opener(), key, clock))
    b = make_station(tmp_path / "b", "North", "ko", clock)
    introduce(w1, b)
    ch = open_channel(Net(), w1, b)
    yield w1, w2, b, ch
    for st in (w1, w2, b):
        st.store.close()


def test_two_workers_send_on_one_chain_without_a_stale_head(
    workers: tuple[Station, Station, Station, str],
) -> None:
    w1, w2, b, ch = workers
    seqs = []
    for i in range(6):  # each worker's cached head is stale after the other's send
        w = (w1, w2)[i % 2]
        row, created = w.send(ch, text(f"m{i}"), idempotency_key=f"k{i}")
        assert created
        seqs.append(row.seq)
    assert seqs == list(range(seqs[0], seqs[0] + 6))
    # A key used on one worker is known on the other.
    again, created = w2.send(ch, text("m0"), idempotency_key="k0")
    assert not created and again.seq == seqs[0]
    results = Net().deliver(w1, b)
    assert {r.status for r in results} == {"accepted"}
    assert b.store.head_seq(ch, w1.id) == seqs[-1]


def test_a_control_message_on_one_worker_is_seen_by_the_other(
    workers: tuple[Station, Station, Station, str],
) -> None:
    w1, w2, _, ch = workers
    assert w2.channel_state(ch).is_open  # cached on w2
    w2.send(ch, text("before"))
    w1.control(ch, "suspend", "maintenance")
    assert w2.channel_state(ch).state == "suspended"
    with pytest.raises(ParleyError) as err:
        w2.send(ch, text("while suspended"))
    assert err.value.code == Code.CHANNEL_NOT_OPEN
    # And the other way round, inside the writer's transaction this time.
    w2.channel_state(ch)
    w1.control(ch, "close")
    with pytest.raises(ParleyError):
        w2.send_many(ch, [(text("closed"), "ROUTINE")])
    assert w2.channel_state(ch).state == "closed"


def test_a_peer_envelope_received_by_one_worker_moves_the_other_workers_heads(
    workers: tuple[Station, Station, Station, str],
) -> None:
    w1, w2, b, ch = workers
    row, _ = w2.send(ch, text("from south"))  # w2 caches the heads it sealed against
    Net().deliver(w1, b)
    b.send(ch, text("from north"))
    Net().deliver(b, w1)  # received by worker 1
    row2, _ = w2.send(ch, text("answer"))
    env = parse_envelope(row2.raw)
    assert env.seen[b.id].seq == b.store.head_seq(ch, b.id)  # not the stale head
    assert row2.seq == row.seq + 1


def test_a_rolled_back_receive_leaves_no_cached_head(pair: tuple[Station, Station, str]) -> None:
    a, b, ch = pair
    b.send(ch, text("one"))
    Net().deliver(b, a)
    before = a.store.head(ch, b.id)
    b.send(ch, text("two"))
    raw = b.store.pending(a.id, 10)[0].raw
    with pytest.raises(RuntimeError), a.store.tx():
        assert a.receive(raw).status == "accepted"
        assert a.store.head_seq(ch, b.id) == before.seq + 1  # type: ignore[union-attr]
        raise RuntimeError("the batch fails after the envelope was applied")
    assert a.store.head(ch, b.id) == before
    assert a.receive(raw).status == "accepted"


def test_caches_stay_bounded() -> None:
    lru: LRU[int, int] = LRU(3)
    for i in range(10):
        lru.put(i, i)
        lru.get(0)
    assert len(lru) == 3 and 0 in lru and 7 not in lru and lru.get(9) == 9  # 0: used last


def test_a_busy_link_is_not_written_on_every_exchange(pair: tuple[Station, Station, str]) -> None:
    """Link state after each push was a durable commit per push; within a quarter heartbeat of
    the last record, an up link's record stands."""
    a, b, _ = pair
    clock = a.clock
    assert isinstance(clock, Clock)
    paths.record_link(a, b.id, "up", None, 10)
    first = a.store.link(b.id)
    clock.advance(a.cfg.timings.heartbeat_ms // 8)
    paths.record_link(a, b.id, "up", None, 20)
    assert a.store.link(b.id) == first
    clock.advance(a.cfg.timings.heartbeat_ms // 4)
    paths.record_link(a, b.id, "up", None, 30)
    later = a.store.link(b.id)
    assert later is not None and later.last_ok == clock.now and later.rtt_ms == 30
    paths.record_link(a, b.id, None, "refused", None)  # a failure is always written
    assert a.store.link(b.id).failures == 1  # type: ignore[union-attr]


def test_a_long_round_of_pushes_keeps_the_stored_link_fresh(
    pair: tuple[Station, Station, str],
) -> None:
    """A dispatcher round defers an up link's unchanged record to its end; a drain's round
    lasts many heartbeats, so a peer's second answer in the round is written at once (the link
    watch judges the stored row, and showed a peer answering all along as down)."""
    a, b, _ = pair
    clock = a.clock
    assert isinstance(clock, Clock)
    beat = a.cfg.timings.heartbeat_ms
    paths.record_link(a, b.id, "up", None, 10)
    deferred: dict[str, LinkRow] = {}
    for _ in range(20):  # five heartbeats of push answers in one round
        clock.advance(beat // 4)
        paths.record_link(a, b.id, "up", None, 10, deferred)
        stored = a.store.link(b.id)
        assert stored is not None and clock.now - (stored.last_ok or 0) <= beat // 4
        assert vigil.judge(a, b.id, clock.now)[0] is LinkState.UP


def _durability(store: SqlStore) -> object:
    sql = "PRAGMA synchronous" if isinstance(store, SqliteStore) else "SHOW synchronous_commit"
    return store.q(sql)[0][0]


def test_link_rows_commit_without_waiting_for_the_disk(store: SqlStore) -> None:
    """A link row is soft state: its own transaction does not wait for the disk (it held the
    store, on the push path, for a sync), is atomic all the same, joins an enclosing
    transaction, and leaves every later commit durable, also when it fails."""
    durable = _durability(store)
    row = LinkRow("peer-a", "up", 1, 1, None, 0, 5)
    with store.soft_tx():
        assert _durability(store) in (1, "off")  # SQLite NORMAL, PostgreSQL off
        store.set_link(row)
    assert store.link("peer-a") == row and _durability(store) == durable
    with pytest.raises(RuntimeError), store.soft_tx():
        store.set_link(LinkRow("peer-b", "up", 1, 1, None, 0, 5))
        raise RuntimeError("undone")
    assert store.link("peer-b") is None and _durability(store) == durable
    with pytest.raises(RuntimeError), store.tx():
        with store.soft_tx():  # joins: durable with the outer one, undone with it
            assert _durability(store) == durable
            store.set_link(LinkRow("peer-c", "up", 1, 1, None, 0, 5))
        raise RuntimeError("undone")
    assert store.link("peer-c") is None


def test_a_group_of_soft_jobs_alone_does_not_wait_for_the_disk(
    pair: tuple[Station, Station, str],
) -> None:
    """Receipts settling our outbox are soft (the peer gives them again): alone, their group
    commits without waiting for the disk; grouped with a send, the send makes it durable."""
    a, _, ch = pair
    durable = _durability(a.store)
    assert a.writer.run(lambda: _durability(a.store), durable=False) in (1, "off")
    assert _durability(a.store) == durable
    burst = Burst(a)
    burst.hold()
    burst._spawn("soft", lambda: a.writer.run(lambda: _durability(a.store), durable=False))
    burst.send("send", ch, text("with a receipt"))
    burst.go(2)
    assert burst.results["soft"] == durable
    assert isinstance(burst.results["send"], tuple)


def _batch(tag: str, n: int) -> list[tuple[dict[str, Any], str]]:
    return [(text(f"{tag}{i}"), "ROUTINE") for i in range(n)]


def test_a_group_holds_at_most_max_group_sends_a_batch_counting_its_messages(
    pair: tuple[Station, Station, str],
) -> None:
    """Three batches of 100 queued together: two share a group (200 sends), the third would
    make it 300 of MAX_GROUP 256 and goes in the next. Counted in jobs, all three were one group
    and held the store for every message of it."""
    a, _, ch = pair
    before = a.store.counters()
    burst = Burst(a)
    burst.hold()
    for tag in "xyz":
        burst._spawn(tag, lambda tag=tag: a.send_many(ch, _batch(tag, 100), f"k-{tag}"))
    burst.go(3)
    after = a.store.counters()
    assert after["writer.groups"] - before["writer.groups"] == 3  # the held one, then two
    assert all(isinstance(burst.results[t], tuple) for t in "xyz"), burst.results
    assert len(chain(a, ch)) >= 300


def test_a_job_queued_ahead_goes_before_the_sends_queued_before_it(
    pair: tuple[Station, Station, str],
) -> None:
    """A peer's receipts settling our outbox (paths.apply_answer) do not wait behind a queue of
    batches: the job is in the first group after the one being committed."""
    a, _, ch = pair
    stored = len(chain(a, ch))
    burst = Burst(a)
    burst.hold()
    for tag in "xyz":
        burst._spawn(tag, lambda tag=tag: a.send_many(ch, _batch(tag, 100), f"k-{tag}"))
    wait(lambda: len(a.writer._queue) == 3, what="three queued batches", every_s=0.005)
    burst._spawn(
        "ahead", lambda: a.writer.run(lambda: len(chain(a, ch)), durable=False, ahead=True)
    )
    burst._spawn("behind", lambda: a.writer.run(lambda: len(chain(a, ch)), durable=False))
    burst.go(5)
    assert burst.results["ahead"] == stored  # before any of the batches
    assert burst.results["behind"] >= stored + 300  # queued last, committed last (and checkpoints)
