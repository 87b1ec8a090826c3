"""A second push beside the one on the wire (station/dispatcher.py `_beside`): sends committed
while a push flies go out at once, and whatever the peer does with the two pushes (the second
applied first, the first lost) nothing is lost, duplicated or reordered, and nobody alarms.

Real stations and the real receive path over the in-memory transport; the first push is held on
the wire until the second has started, so the order the peer sees is the test's choice."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parley.domain import channels
from parley.errors import Code
from parley.station.dispatcher import Dispatcher, _Answer
from parley.store.base import EnvelopeRow
from parley.transport.base import PushResponse, TransportError
from tests.holding import held_elsewhere
from tests.net import LIVENESS_S
from tests.test_transport import World, texts


class Held:
    """The dispatcher's transport, with its first push held on the wire: while it is held, the
    test sends `later` (once the dispatcher has looked for a next batch and found none); the
    held push goes on once a second push has reached the peer (`first` "after"), or before it
    ("before"), or fails ("lost")."""

    def __init__(self, w: World, ch: str, later: str | Callable[[], object], first: str) -> None:
        self.w, self.ch, self.later, self.first = w, ch, later, first
        self.inner = w.da.transport
        self.pushes: list[list[bytes]] = []
        self.reads = 0
        self.second = asyncio.Event()
        self.released = asyncio.Event()
        real = w.da._next_batch

        def counted(peer: str, size: int, skip: set[int]) -> list[EnvelopeRow]:
            self.reads += 1
            return real(peer, size, skip)

        w.da._next_batch = counted  # type: ignore[method-assign]  # an observed seam
        w.da.transport = self  # type: ignore[assignment]  # the same calls, one held

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
        self.pushes.append(raws)
        if len(self.pushes) > 1:
            if self.first == "before":
                await asyncio.wait_for(self.released.wait(), LIVENESS_S)
            resp = await self.inner.push(addr, raws)
            self.second.set()
            return resp
        # Two reads: the drain's first batch, and its look for the next while this one flies.
        for _ in range(int(LIVENESS_S * 100)):
            if self.reads >= 2:
                break
            await asyncio.sleep(0.01)
        if callable(self.later):
            self.later()
        else:
            self.w.a.send(self.ch, channels.text_body(self.later, "en"))
        if self.first == "before":
            resp = await self.inner.push(addr, raws)
            self.released.set()
            await asyncio.wait_for(self.second.wait(), LIVENESS_S)
            return resp
        await asyncio.wait_for(self.second.wait(), LIVENESS_S)
        if self.first == "lost":
            raise TransportError(Code.STATION_UNREACHABLE, f"{addr}: cut while answering")
        return await self.inner.push(addr, raws)


def run_drain(w: World) -> None:
    async def go() -> None:
        await w.da.drain(w.b.id)

    asyncio.run(go())


@pytest.mark.parametrize("first", ["after", "before", "lost"])
def test_a_send_committed_during_a_push_goes_beside_it_and_arrives_once_in_order(
    tmp_path: Path, first: str
) -> None:
    w = World(tmp_path)
    ch = w.open()
    w.rounds()
    w.a.send(ch, channels.text_body("one", "en"))
    held = Held(w, ch, "two", first)
    run_drain(w)
    # The second push left while the first was on the wire, with only the later send in it.
    assert len(held.pushes) == 2 and len(held.pushes[1]) == 1
    if first == "lost":
        assert texts(w.b, ch) == []  # "two" is held aside at the peer, not applied
        w.mono += w.a.cfg.timings.retry_max_ms  # the backoff has run out
        w.rounds()
    assert texts(w.b, ch) == ["one", "two"]
    assert w.a.status()["peers"][0]["pending"] == 0
    # Neither push was offered again because of the other: a re-queued row would be pushed
    # twice (only a lost push is offered again, with what came after it).
    again = [held.pushes[0] + held.pushes[1]] if first == "lost" else []
    assert held.pushes[2:] == again
    assert not w.da.backoff(w.b.id).backing_off  # an answer the peer explained is no failure
    for st in (w.a, w.b):
        assert [a.kind for a in st.store.alarms() if a.kind != "link"] == []
    assert w.a.transcript_digest(ch)["digest"] == w.b.transcript_digest(ch)["digest"]


def test_a_new_channels_envelope_beside_its_proposal_goes_again_in_the_same_drain(
    tmp_path: Path,
) -> None:
    """The peer applies the second push first, and for a channel it does not have yet it holds
    nothing: its `gap` (unknown_channel) names seq 1, which the first push carries, so the answer
    is set aside, and the envelope it did not keep is offered again in the same drain, not left
    to the round after it."""
    w = World(tmp_path)
    w.rounds()
    ch = w.a.propose_channel("hotline", "Hotline", [w.b.id])
    held = Held(w, ch, lambda: w.a.control(ch, "close", "proposed by mistake"), "after")
    run_drain(w)
    assert len(held.pushes) == 3 and held.pushes[2] == held.pushes[1]
    assert w.a.status()["peers"][0]["pending"] == 0
    assert w.b.channel_state(ch).state == "closed"
    for st in (w.a, w.b):
        assert [a.kind for a in st.store.alarms() if a.kind != "link"] == []
    assert w.a.transcript_digest(ch)["digest"] == w.b.transcript_digest(ch)["digest"]


def test_a_lost_first_push_goes_again_after_its_backoff_when_the_second_was_answered(
    tmp_path: Path,
) -> None:
    """The first push fails after the second was answered: its rows, still pending, go again
    when its backoff runs out (the send that made the second push also woke the dispatcher for
    a new round), not a heartbeat later: longer than the test waits."""
    w = World(tmp_path)
    ch = w.open()
    w.rounds()
    w.a.cfg.timings.heartbeat_ms = 3_600_000
    w.a.send(ch, channels.text_body("one", "en"))
    w.da = Dispatcher(w.a, w.da.transport)  # the running station's clock: its backoff runs out
    held = Held(w, ch, "two", "lost")

    async def go() -> None:
        task = asyncio.create_task(w.da.run())
        try:
            for _ in range(int(LIVENESS_S * 20)):
                if not w.a.store.pending(w.b.id, 8) or task.done():
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()

    asyncio.run(go())
    assert len(held.pushes) == 3 and held.pushes[2] == held.pushes[0] + held.pushes[1]
    assert texts(w.b, ch) == ["one", "two"]
    assert w.a.status()["peers"][0]["pending"] == 0
    assert w.a.transcript_digest(ch)["digest"] == w.b.transcript_digest(ch)["digest"]


def test_a_send_committed_while_an_answer_is_applied_goes_out_before_that_ends(
    tmp_path: Path,
) -> None:
    """The answer's receipts commit through the writer, maybe behind a group of sends on its
    way to disk: a send committed meanwhile is not held back by it, nor by a new round."""
    w = World(tmp_path)
    ch = w.open()
    w.rounds()
    w.a.send(ch, channels.text_body("one", "en"))
    inner, real = w.da.transport, w.da._settle
    pushed: list[list[bytes]] = []
    second = threading.Event()
    settles: list[bool] = []

    class Seen:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
            pushed.append(raws)
            if len(pushed) == 2:
                second.set()
            return await inner.push(addr, raws)

    def settle(peer: str, answer: Any) -> bool:
        if not settles:  # the first answer: a send commits while it is applied
            w.a.send(ch, channels.text_body("two", "en"))
            settles.append(second.wait(LIVENESS_S))
        return real(peer, answer)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        # As app/serve.py wakes it: once the send has committed (a push reads committed rows).
        w.a.on_queued = lambda: w.a.store.after_commit(
            lambda: loop.call_soon_threadsafe(w.da._poke)
        )
        await w.da.drain(w.b.id)

    w.da.transport = Seen()  # type: ignore[assignment]  # the same calls, observed
    w.da._settle = settle  # type: ignore[method-assign]  # an observed seam
    asyncio.run(go())
    assert settles == [True] and len(pushed) == 2 and len(pushed[1]) == 1
    assert texts(w.b, ch) == ["one", "two"]
    assert w.a.status()["peers"][0]["pending"] == 0


def test_a_push_that_fails_while_the_answer_before_it_is_applied_stays_a_failure(
    tmp_path: Path,
) -> None:
    """The answer was applied after the next push's failure was recorded: its contact is older
    news, so it neither ends the backoff nor records the link up again (the peer died between
    the two: its next try comes after the backoff and a quarter heartbeat, not a whole one)."""
    w = World(tmp_path)
    ch = w.open()
    w.rounds()
    w.a.send(ch, channels.text_body("one", "en"))
    inner, real, real_failed = w.da.transport, w.da._settle, w.da.contact_failed
    pushed: list[list[bytes]] = []
    failed = threading.Event()
    settles: list[bool] = []

    class Cut:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
            pushed.append(raws)
            if len(pushed) == 2:
                raise TransportError(Code.STATION_UNREACHABLE, f"{addr}: connection refused")
            return await inner.push(addr, raws)

    def contact_failed(peer: str, exc: TransportError, counted: bool = False) -> None:
        real_failed(peer, exc, counted)
        failed.set()

    def settle(peer: str, answer: Any) -> bool:
        if not settles:  # the first answer: a send commits while it is applied, and fails
            w.a.send(ch, channels.text_body("two", "en"))
            settles.append(failed.wait(LIVENESS_S))
        return real(peer, answer)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        # As app/serve.py wakes it: once the send has committed (a push reads committed rows).
        w.a.on_queued = lambda: w.a.store.after_commit(
            lambda: loop.call_soon_threadsafe(w.da._poke)
        )
        await w.da.drain(w.b.id)

    w.da.transport = Cut()  # type: ignore[assignment]  # the same calls, the second refused
    w.da._settle = settle  # type: ignore[method-assign]  # an observed seam
    w.da.contact_failed = contact_failed  # type: ignore[method-assign]  # an observed seam
    asyncio.run(go())
    assert settles == [True] and len(pushed) == 2
    assert texts(w.b, ch) == ["one"] and w.a.status()["peers"][0]["pending"] == 1
    assert w.da.backoff(w.b.id).backing_off
    link = w.a.store.link(w.b.id)
    assert link is not None and (link.state, link.failures) == ("degraded", 1)


def test_a_failure_recorded_while_an_answer_is_settled_is_the_last_word(tmp_path: Path) -> None:
    """An answer's settle found no failure newer than it; the next push's failure is recorded
    before the settle writes the link up: the failure, the newer news, must stay (the link was
    written "up" over it, and the next probe came a heartbeat later instead of after the
    backoff)."""
    w = World(tmp_path)
    w.open()
    w.rounds()
    da, peer = w.da, w.b.id
    real_ok = da.contact_ok
    checked, failed = threading.Event(), threading.Event()

    def contact_ok(p: str, rtt_ms: int) -> None:
        checked.set()  # the settle saw no newer failure...
        failed.wait(0.5)  # ...and a failure recorded now, if it can be, goes first
        real_ok(p, rtt_ms)

    def fail() -> None:
        da.failures[peer] = da.failures.get(peer, 0) + 1  # as `_push` counts it, on the loop
        exc = TransportError(Code.STATION_UNREACHABLE, "connection refused")
        da.contact_failed(peer, exc, True)
        failed.set()

    da.contact_ok = contact_ok  # type: ignore[method-assign]  # an observed seam
    answer = _Answer(peer, PushResponse([], [], 1), None, da.failures.get(peer, 0))
    settling = threading.Thread(target=da._settle, args=(peer, answer))
    settling.start()
    assert checked.wait(LIVENESS_S)
    failing = threading.Thread(target=fail)
    failing.start()
    settling.join(LIVENESS_S)
    failing.join(LIVENESS_S)
    link = w.a.store.link(peer)
    assert link is not None and (link.state, link.failures) == ("degraded", 1)
    assert da.backoff(peer).backing_off


def test_two_pushes_in_flight_failing_together_are_one_failure_of_the_link(
    tmp_path: Path,
) -> None:
    """Both pushes on the wire fail (the peer restarts): one outage, one failure. Counted twice,
    the link would be down at the next failed probe, a quarter heartbeat later, instead of after
    two more (docs/protocol.md §10: down within one and a half heartbeats): a false alarm for a
    peer back within that time."""
    w = World(tmp_path)
    ch = w.open()
    w.rounds()
    w.a.send(ch, channels.text_body("one", "en"))
    held = Held(w, ch, "two", "lost")

    async def refused(addr: str, raws: list[bytes]) -> PushResponse:
        held.second.set()
        raise TransportError(Code.STATION_UNREACHABLE, f"{addr}: connection refused")

    inner, held.inner = held.inner, type("Cut", (), {"push": staticmethod(refused)})()
    run_drain(w)
    assert len(held.pushes) == 2 and len(held.pushes[1]) == 1
    assert w.da.backoff(w.b.id).backing_off
    link = w.a.store.link(w.b.id)
    assert link is not None and (link.state, link.failures) == ("degraded", 1)
    w.mono += w.a.cfg.timings.retry_max_ms  # the peer is back; the backoff has run out
    held.inner = inner
    w.rounds()
    assert texts(w.b, ch) == ["one", "two"]
    assert [a.kind for a in w.a.store.alarms() if a.kind == "link"] == []


@pytest.mark.parametrize("first", ["after", "lost"])
def test_two_channels_in_both_pushes_arrive_once_in_order(tmp_path: Path, first: str) -> None:
    """Each push carries two channels: the peer holds both of the second's behind the first's
    (or, the first lost, until it comes again), and each chain is applied once, in order."""
    w = World(tmp_path)
    x, y = w.open(), w.open()
    w.rounds()
    for ch in (x, y):
        w.a.send(ch, channels.text_body(f"{ch} one", "en"))

    def later() -> None:
        for ch in (x, y):
            w.a.send(ch, channels.text_body(f"{ch} two", "en"))

    held = Held(w, x, later, first)
    run_drain(w)
    assert len(held.pushes) == 2 and len(held.pushes[1]) == 2
    if first == "lost":
        w.mono += w.a.cfg.timings.retry_max_ms
        w.rounds()
        assert held.pushes[2:] == [held.pushes[0] + held.pushes[1]]
    else:
        assert held.pushes[2:] == []
    for ch in (x, y):
        assert texts(w.b, ch) == [f"{ch} one", f"{ch} two"]
        assert w.a.transcript_digest(ch)["digest"] == w.b.transcript_digest(ch)["digest"]
    assert w.a.status()["peers"][0]["pending"] == 0
    for st in (w.a, w.b):
        assert [a.kind for a in st.store.alarms() if a.kind != "link"] == []


def test_a_backlog_goes_out_while_a_group_of_sends_holds_the_store(tmp_path: Path) -> None:
    """A push reads committed rows on a connection of its own, and a clean answer settles
    behind the push after it: while another thread holds the store (as a group of sends does
    while it is sealed and committed), the peer still gets the whole backlog, in order; the
    answers settle once the store is free, and nothing is offered twice."""
    w = World(tmp_path)
    ch = w.open()
    w.rounds()
    n = 600  # three batches: 128, 256, the rest
    w.a.send_many(ch, [(channels.text_body(f"m{i}", "en"), "ROUTINE") for i in range(n)])
    inner = w.da.transport
    held, free = threading.Event(), threading.Event()
    pushed: list[bytes] = []

    def hold() -> None:
        with w.a.store.lock:
            held.set()
            free.wait(2 * LIVENESS_S)  # the test's own bound comes first

    class Holding:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
            first = not pushed
            pushed.extend(raws)
            if first:  # the drain has its paths: from now on the store is taken
                threading.Thread(target=hold, daemon=True).start()
                held.wait(LIVENESS_S)
            return await inner.push(addr, raws)

    arrived: list[int] = []

    async def go() -> None:
        drain = asyncio.create_task(w.da.drain(w.b.id))
        try:
            for _ in range(int(LIVENESS_S * 20)):
                if len(texts(w.b, ch)) == n or drain.done():
                    break
                await asyncio.sleep(0.05)
            arrived.append(len(texts(w.b, ch)))
        finally:
            free.set()
        await drain

    w.da.transport = Holding()  # type: ignore[assignment]  # the same calls, observed
    asyncio.run(go())
    assert arrived == [n] and len(set(pushed)) == len(pushed)  # none offered twice
    assert texts(w.b, ch) == [f"m{i}" for i in range(n)]
    assert w.a.status()["peers"][0]["pending"] == 0


def test_a_rounds_plan_is_read_on_the_loop_while_the_store_is_free_else_on_a_worker(
    tmp_path: Path,
) -> None:
    """A wake-up's plan (the peers, their paths, the first batch) is read on the event loop
    while the store is free: no hop to a worker thread and back on the way of a message (issue
    14). While another thread holds the store, it is read on a worker thread, and the loop goes
    on meanwhile (station/onloop.py)."""
    w = World(tmp_path)
    ch = w.open()
    read_on: list[int] = []
    real = w.da._plan

    def plan() -> Any:
        read_on.append(threading.get_ident())
        return real()

    w.da._plan = plan  # type: ignore[method-assign]  # an observed seam

    async def go() -> None:
        loop_thread = threading.get_ident()
        w.a.send(ch, channels.text_body("first", "en"))
        await w.da.round()
        assert read_on == [loop_thread]
        w.a.send(ch, channels.text_body("second", "en"))
        with held_elsewhere(lambda: w.a.store.lock):
            r = asyncio.create_task(w.da.round())
            await asyncio.sleep(0.05)  # the loop runs this while the plan waits for the store
            assert not r.done()
        await r
        assert len(read_on) == 2 and read_on[1] != loop_thread

    asyncio.run(go())
    assert texts(w.b, ch) == ["first", "second"]


def test_a_push_is_on_the_wire_before_the_drain_hands_anything_to_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push's request is written before the drain looks for the batch after it on a worker
    thread: that thread, started first, held the interpreter while the loop waited to write
    the push (issue 14, latency). So every look for a next batch that skips a batch's rows (the
    ones on the wire) comes after that batch's push was called, in a drain of several batches."""
    w = World(tmp_path)
    ch = w.open()
    w.rounds()
    inner, real_to_thread, real_next = w.da.transport, asyncio.to_thread, w.da._next_batch
    events: list[tuple[str, set[bytes]]] = []  # ("push", raws) or ("read", raws it skips)
    raw_of: dict[int, bytes] = {}

    class Seen:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        async def push(self, addr: str, raws: list[bytes]) -> PushResponse:
            events.append(("push", set(raws)))
            return await inner.push(addr, raws)

    def next_batch(peer: str, size: int, skip: set[int]) -> list[EnvelopeRow]:
        rows = real_next(peer, size, skip)
        raw_of.update((r.id, r.raw) for r in rows)
        return rows

    async def to_thread(fn: Callable[..., Any], /, *args: Any) -> Any:
        if fn == w.da._next_batch:  # asked on the loop: the order is the loop's
            events.append(("read", {raw_of[i] for i in args[2]}))
        return await real_to_thread(fn, *args)

    for i in range(300):  # two batches or more: 128 first, then larger ones
        w.a.send(ch, channels.text_body(f"m{i}", "en"))
    w.da.transport = Seen()  # type: ignore[assignment]  # the same calls, observed
    w.da._next_batch = next_batch  # type: ignore[method-assign]  # an observed seam
    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    asyncio.run(w.da.round())
    pushed: set[bytes] = set()
    for kind, raws in events:
        if kind == "push":
            pushed |= raws
        else:
            assert raws <= pushed, [(k, len(r)) for k, r in events]
    assert sum(k == "push" for k, _ in events) >= 2  # the texts, with a checkpoint every 64
    assert texts(w.b, ch) == [f"m{i}" for i in range(300)]
