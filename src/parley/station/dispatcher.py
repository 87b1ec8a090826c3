"""The dispatcher: one background task that moves envelopes to and from every peer, and keeps
link state and peers' prekeys current. It speaks to peers only through a `Transport`
(transport/base.py: HTTP in a running station, in memory in tests), and takes its retry, probe,
path and batch rules from transport/policy.py.

- At-least-once: an envelope stays pending until a signed receipt from that peer covers it,
  whichever path brought the receipt. With the receiver's idempotent apply, that is exactly-once.
- Per peer, batches go out in outbox order; a failure, or an answer that moved nothing, backs off
  (policy.Backoff), and a new envelope, an answered ping or any progress resets it.
- A `gap` answer re-queues the chain from the seq the peer asks for.

Each round, for every peer (`_serve`, steps in this order):
1. Probe a peer we are backing off from: when its probe interval has passed, ping it; an answer
   ends the backoff at once, so a restarted peer gets its backlog within one heartbeat.
2. Own outbox (`drain`), unless backing off. The peer's route decides the path (policy.push_paths):
   no route, direct push to its addresses; `parley peer route PEER --via R`, through relay station
   R (POST /peer/v1/relay) always; `--via R --fallback`, directly while the link is not down and
   through R when it is down or a direct push has just failed. A peer with no address and no
   route pulls from us, so nothing is pushed to it. Relayed envelopes are receipted by the
   destination; the relay hands those receipts back with the answer to our next relay request,
   so a relayed batch without receipts yet backs off like a push without progress and is offered
   again (the relay keeps one copy).
   Pipelined: once batch N is answered, batch N+1 goes on the wire while N's answer is applied (on a
   worker thread), so the two stations work at the same time and the peer still receives the batches
   in order; what was queued while batch N was on the wire is picked as soon as N is answered, not
   after N's answer is applied and a new round begins. Each push is on the wire before the drain
   hands anything (the next read, a settle) to a worker thread. A batch is read with store.pushable
   (committed rows, on SQLite by a connection of its own that waits for no group of sends), and a
   clean answer with the next push already on the wire settles behind it (`_Lag`: up to LAG_ROWS
   rows, the answers come meanwhile settled together, in order); its rows stay out of the next
   batches until then. A group of sends holds the store while it is sealed and committed, and the
   peer would wait with the settle (issue 14). Batches grow from 128 to 512 envelopes while the
   backlog fills them. Sends committed while a batch is on the wire (and nothing else queued) go
   out at once beside it (`_beside`): at most two pushes in flight per peer, the second with only
   envelopes after the first's; answers are applied in the order the pushes left, and a `gap` in
   the second's answer that names a seq the first carried is set aside (the peer holds what came
   early and applies it with the first), and counts as progress; the outbox is read again after it
   (for a channel the peer does not have yet, it holds nothing). Both failing is one outage, one
   failure of the link; an answer applied after a later failure was recorded is older news, and
   ends no backoff. Sends committed while an answer is applied, with nothing in flight, go out
   before that answer's commit (`_while_settling`): it may wait behind a group of sends going to
   disk. A round's plan reads each ready peer's first batch with the rest of the plan, so a
   wake-up's sends are one read from the wire: on the event loop itself while the store is free
   (station/onloop.py).
3. Relay queue (`forward`): envelopes other stations asked us to relay to this peer, pushed as
   they arrived; the peer's receipts are kept for their senders (station/paths.py).
4. Pull (`pull`), only when this station accepts no inbound connections (config `inbound:
   false`): fetch what the peer holds for us, apply it with receive_batch, and send our answer
   (results, receipts) with the next pull request; a final request with max 0 carries the last
   answer. It runs when something is pending and instead of the heartbeat. A peer reached
   through a shared folder (config `folders`: its only address is then `file://<folder>`) is
   pulled from whatever `inbound` says, and right after each offer, since a folder answers
   nothing on the spot.
5. Heartbeat: a signed ping when nothing was exchanged with the direct link for its probe interval
   (policy.probe_interval_ms: one heartbeat; a quarter of one after a failure, until the link is
   down), up to an eighth of it early (policy.probe_due), so the probes of all peers fall into
   one round per heartbeat rather than one round, over every peer, per peer. An answer that
   leaves an up link as it was is written with the round's others in one transaction at the
   round's end (a failure or a change at once, and judged at once).
   Never for a peer routed through a relay always, nor for one without address.
6. Prekeys (`refresh_prekeys`): when the newest prekey we know of the peer began more than half
   a rotation period ago, or the peer rejected an envelope with `unknown_key`, fetch its current
   signed records — from the peer, else from the relay it is routed through — at most once per
   `refresh_s` per peer. A pulling peer sends its records with each pull instead.
Every loop is bounded: at most MAX_ROUNDS batches per step before the next round.
The event loop also serves the APIs: store work on the send path (the next batch, link state
after each exchange) runs on a worker thread, since a store call waits for the store's lock
while another thread's commit is on its way to disk; a round's plan only while another thread
holds the store (`_read`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from parley.domain.precedence import Precedence
from parley.errors import Code
from parley.station import paths
from parley.station.node import Station
from parley.station.onloop import run_unless_held
from parley.store import paths as db
from parley.store.base import EnvelopeRow, LinkRow, PeerRow
from parley.transport import policy
from parley.transport.base import PullResponse, PushResponse, Transport, TransportError
from parley.transport.bundle import SCHEME as FOLDER

T = TypeVar("T")
log = logging.getLogger("parley.dispatcher")
MAX_ROUNDS = 64  # batches per step and peer before other peers get their turn
FLASH = Precedence.FLASH.value


def monotonic_ms() -> float:
    return time.monotonic() * 1000


class Dispatcher:
    def __init__(
        self, station: Station, transport: Transport, now_ms: Callable[[], float] = monotonic_ms
    ) -> None:
        """`now_ms`: a monotonic clock in ms (tests hand in one they move)."""
        self.station = station
        self.transport = transport
        self.now_ms = now_ms
        self.wake = asyncio.Event()
        t = station.cfg.timings
        self.retry = policy.RetryPolicy(t.retry_base_ms, t.retry_max_ms)
        self.backoffs: dict[str, policy.Backoff] = {}
        self.last_contact: dict[str, float] = {}  # monotonic ms of the last exchange, ok or not
        self.next_refresh: dict[str, float] = {}
        self.alarmed_rejects: set[str] = set()
        # Failed contacts per peer, counted: an answer applied after a later failure was
        # recorded (the push after it, with two in flight) must not undo that failure.
        self.failures: dict[str, int] = {}
        # A settle's "no failure since this answer left" and its link record are one step
        # against a failure's record: else a failure written between them is overwritten "up".
        self.contact_lock = threading.Lock()
        # Between two prekey fetches for one peer: a 48th of a rotation (30 min by default).
        self.refresh_s = max(1.0, t.prekey_rotation_ms / 48_000)
        # During a round: answered contacts that changed nothing but the time, written together
        # at its end (paths.record_link `defer`).
        self.links: dict[str, LinkRow] | None = None
        # Drains with a push on the wire, told of sends committed meanwhile (`_beside`).
        self.listeners: set[asyncio.Future[None]] = set()
        # Once the send has committed: a push reads committed rows only (store.pushable).
        station.on_queued = lambda: station.store.after_commit(self._poke)

    def _poke(self) -> None:
        for b in self.backoffs.values():
            b.reset()
        self.wake.set()
        for fut in self.listeners:
            if not fut.done():
                fut.set_result(None)

    def backoff(self, peer: str) -> policy.Backoff:
        b = self.backoffs.get(peer)
        if b is None:
            b = self.backoffs[peer] = policy.Backoff(self.retry)
        return b

    async def run(self) -> None:
        while True:
            self.wake.clear()
            if await self.round():
                await asyncio.sleep(0)  # a step stopped at MAX_ROUNDS: go on without waiting
                continue
            if self.wake.is_set():
                continue  # something was queued during the round: no wait to work out
            idle_ms = await asyncio.to_thread(self.idle_ms)
            # Not wait_for: it waits in a task of its own, and a wake-up (a send's commit) took
            # two more turns of the event loop to reach this one, behind the send's answer.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle_ms / 1000):
                    await self.wake.wait()

    async def round(self) -> bool:
        """Serve every peer once (module rules); True if some step stopped with work left."""
        views = await self._read(self._plan)
        tasks = [self._serve(v) for v in views]
        self.links = {}
        try:
            return bool(tasks) and any(await asyncio.gather(*tasks))
        finally:
            rows, self.links = self.links, None
            if rows:
                await asyncio.to_thread(paths.write_links, self.station, list(rows.values()))

    async def _read(self, fn: Callable[[], T]) -> T:
        """A round's store reads (`_plan`): on the event loop while the store is free, on a
        worker thread while another thread holds it (station/onloop.py: the loop, which also
        serves the APIs, would wait with it); always there on PostgreSQL, where each read is a
        round trip to the server that the loop would wait for."""
        store = self.station.store
        if store.dialect != "sqlite":
            return await asyncio.to_thread(fn)
        return await run_unless_held(store.lock, fn)

    def _plan(self) -> list[_PeerView]:
        """What a round needs from the store (`_read`)."""
        store = self.station.store
        pending = set(store.peers_with_pending())
        relayed = set(db.relay_dests(store))
        views = [
            _PeerView(
                p, p.station in pending, p.station in relayed, db.route(store, p.station),
                store.link(p.station),
            )
            for p in self.peers()
        ]  # fmt: skip
        for v in views:
            b = self.backoffs.get(v.row.station)
            if v.pending and (b is None or not b.backing_off):
                # The drain's first batch in the same trip: a wake-up's sends are one hop from
                # the wire, not two (issue 14, latency). Not while backing off: a probe or the
                # backoff's end comes first, and the batch is read then.
                v.first = self._first(v.row, v.route, v.link, policy.MIN_BATCH)
        return views

    def peers(self) -> list[PeerRow]:
        return [self._reached(p) for p in self.station.store.list_peers()]

    def peer_row(self, station: str) -> PeerRow | None:
        row = self.station.store.get_peer(station)
        return self._reached(row) if row is not None else None

    def _reached(self, row: PeerRow) -> PeerRow:
        """`row` with the addresses it is reached at: its shared folder alone if station.json
        names one for it (config `folders`), else those of its invitation."""
        folder = self.station.cfg.folder_for(row.station, row.name)
        return replace(row, addresses=[FOLDER + folder]) if folder else row

    def idle_ms(self) -> float:
        """How long the dispatcher may wait for a wake-up before something is due."""
        t = self.station.cfg.timings
        now = self.now_ms()
        waits = [float(t.heartbeat_ms)]
        for p in self.peers():
            b = self.backoffs.get(p.station)
            if b is not None and b.backing_off:
                waits.append(b.next_try_ms - now)
            last = self.last_contact.get(p.station)
            if last is not None and p.addresses:
                waits.append(last + self._probe_interval(p.station) - now)
        return max(min(waits), 10.0)

    def _probe_interval(self, peer: str) -> float:
        return self._interval(self.station.store.link(peer))

    def _interval(self, link: LinkRow | None) -> float:
        t = self.station.cfg.timings
        failures = link.failures if link else 0
        return policy.probe_interval_ms(t.heartbeat_ms, failures, t.down_after_failures)

    def probe_due(self, peer: str) -> bool:
        return self._probe_due(peer, self.station.store.link(peer))

    def _probe_due(self, peer: str, link: LinkRow | None) -> bool:
        t = self.station.cfg.timings
        return policy.probe_due(
            self.now_ms(), self.last_contact.get(peer), t.heartbeat_ms,
            link.failures if link else 0, t.down_after_failures,
        )  # fmt: skip

    async def _serve(self, v: _PeerView) -> bool:
        """One round for one peer; True if a step stopped with work left."""
        p, route, link = v.row, v.route, v.link
        peer = p.station
        more = False
        b = self.backoff(peer)
        direct = bool(p.addresses) and (route is None or route.fallback)
        # A folder answers nothing on the spot: its receipts and envelopes are collected.
        pulls = bool(p.addresses) and (not self.station.cfg.inbound or _in_folder(p))
        # An answer to this probe ends the backoff: deliver now.
        probing = direct and not pulls and b.backing_off and self._probe_due(peer, link)
        if probing and await self.heartbeat(peer, p):
            link = None  # it was just recorded up: the probe interval is the full one
        offered = False
        if b.ready(self.now_ms()):
            if v.pending and (p.addresses or route is not None):
                more |= await self.drain(peer, v.first)
                offered = True
            if v.relayed:
                more |= await self.forward(peer)
        if pulls:
            due = self._probe_due(peer, link)
            # After offering a folder our batch, look for the peer's files at once: the offer
            # had no answer on the spot, so it backed off, and the pull is where answers arrive.
            collect = offered and _in_folder(p)
            if (v.pending or due) and (b.ready(self.now_ms()) or due or collect):
                await self.pull(peer)
        elif direct and self._probe_due(peer, link):
            await self.heartbeat(peer, p)
        if self.refresh_due(p, route is not None):
            await self.refresh_prekeys(peer)
        return more

    # --- heartbeats and link state ---------------------------------------------------------------
    async def heartbeat(self, peer: str, row: PeerRow | None = None) -> bool:
        """Ping the peer's addresses until one answers; True if one did."""
        if row is None:
            row = await asyncio.to_thread(self.peer_row, peer)
        if row is None:
            return False
        for addr in row.addresses:
            try:
                pong = await self.transport.ping(addr)
            except TransportError as exc:
                await asyncio.to_thread(self.contact_failed, peer, exc)
                continue
            await asyncio.to_thread(self.contact_ok, peer, pong.rtt_ms)
            return True
        return False

    # --- own outbox ------------------------------------------------------------------------------
    def _next_batch(self, peer: str, size: int, skip: set[int]) -> list[EnvelopeRow]:
        rows = self.station.store.pushable(peer, size, skip)
        return rows[: policy.fitting([len(r.raw) for r in rows])]

    async def drain(self, peer: str, first: _First | None = None) -> bool:
        """Send batches until the peer's queue is empty, a send fails, or a batch makes no
        progress (then back off). True if it stopped at MAX_ROUNDS with more to send.
        `first`: the peer, its paths and first batch if the round's plan read them."""
        lag = _Lag(peer, self._settle_all)
        try:
            more = await self._drain(peer, first, lag)
        except BaseException:
            await lag.done()
            raise
        if not await lag.flush():
            b = self.backoff(peer)
            if not b.backing_off:  # the drain stopped for it, or saw it too late to
                b.failed(self.now_ms(), random.random())
            return False
        return more

    async def _drain(self, peer: str, first: _First | None, lag: _Lag) -> bool:
        size = policy.MIN_BATCH
        found = first or await asyncio.to_thread(self._start, peer, size)
        if found is None:
            return False
        row, ways, batch = found
        sending: asyncio.Task[_Answer | None] | None
        sending = await self._offered(peer, row, ways, batch)
        ahead: list[EnvelopeRow] = []  # what was on the wire when `batch` was sent
        for _ in range(MAX_ROUNDS):
            # Pipelining: while a batch is on the wire, the one after it is picked (skipping
            # what is in flight); once answered, that one goes out while the answer is applied.
            size = policy.batch_size(size, len(batch) == size)
            if lag.stalled:  # a clean answer settled behind moved nothing: `drain` backs off
                if sending is not None:
                    await sending  # its rows stay pending: offered again after the backoff
                return False
            skip = {r.id for r in batch} | lag.ids
            queued = self._listen()  # before the read: a send committed after it still counts
            try:
                nxt = await asyncio.to_thread(self._next_batch, peer, size, skip)
                beside = None
                if not nxt and ways == (policy.Path.DIRECT,):
                    beside = await self._beside(peer, row, ways, size, skip, sending, queued)
                answer = await sending if sending is not None else None
                if answer is not None and ahead:
                    answer.explained_by(ahead)
                if answer is None:
                    if beside is not None:  # the peer holds it, if it got it; still pending here
                        later = await beside[1]
                        if later is not None:
                            later.explained_by(batch)
                            await self._settle_after(lag, peer, later)
                    return False  # unreachable: backed off already
                if beside is not None:
                    nxt, sending = beside
                    ahead = batch
                else:
                    ahead = []
                    if not answer.clean:
                        nxt = []  # a gap re-queued a chain, or some waited: the outbox decides
                    elif not nxt and queued.done():
                        # What was queued while the batch was on the wire goes out now, while
                        # the answer is settled: waiting for that commit and a new round would
                        # add both to its latency (issue 14). Nothing queued: nothing to read.
                        self._unlisten(queued)
                        queued = self._listen()
                        nxt = await asyncio.to_thread(self._next_batch, peer, size, skip)
                    sending = await self._offered(peer, row, ways, nxt) if nxt else None
                if beside is None and sending is not None and answer.clean and lag.room():
                    # Settled behind the push after it: while a group of sends holds the
                    # store, the settle waits for it, and the peer would wait with it (issue
                    # 14, delivery --batch). Its rows stay out of the next batches until then.
                    lag.add(answer, batch)
                    batch = nxt
                    continue
                settling = asyncio.create_task(self._settle_after(lag, peer, answer))
                if sending is None and answer.clean:
                    sending, nxt = await self._while_settling(
                        peer, row, ways, size, skip, settling, queued
                    )
                # An answer whose envelopes the peer holds behind the first push is no failure:
                # that push's receipts moved them already.
                progressed = await settling or answer.held
            finally:
                self._unlisten(queued)
            if not progressed:
                later = await sending if sending is not None else None
                if later is not None and ahead:
                    later.explained_by(ahead)
                if later is None or not (await self._settle_after(lag, peer, later) or later.held):
                    self.backoff(peer).failed(self.now_ms(), random.random())
                return False
            if sending is None:
                # A set-aside gap is no proof the peer keeps what it named: for a channel it
                # does not have yet it keeps nothing, so the outbox decides then.
                if answer.clean and not answer.held:
                    return False  # everything went: the queue is empty
                nxt = await asyncio.to_thread(self._next_batch, peer, size, set())
                if not nxt:
                    return False
                sending = await self._offered(peer, row, ways, nxt)
            batch = nxt
        last = await sending if sending is not None else None
        if last is not None:
            if ahead:
                last.explained_by(ahead)
            await self._settle_after(lag, peer, last)
        return True

    async def _beside(
        self,
        peer: str,
        row: PeerRow,
        ways: tuple[policy.Path, ...],
        size: int,
        skip: set[int],
        sending: asyncio.Task[_Answer | None] | None,
        queued: asyncio.Future[None],
    ) -> tuple[list[EnvelopeRow], asyncio.Task[_Answer | None]] | None:
        """A second push beside the one on the wire, for sends committed while it flies: they
        would otherwise wait for its answer (issue 14, latency p99). At most two pushes are in
        flight per peer, the second carrying only envelopes after the first's, and never a
        FLASH one (the peer would show it early, ahead of the first push's envelopes). The peer
        may apply the second first: it holds what comes after a missing seq and applies it with
        the first push (its answer is then `gap`, which `_Answer.explained_by` sets aside)."""
        if sending is None:
            return None
        # None if it was answered first: the usual path sends what queued meanwhile.
        rows = await self._queued_before(sending, queued, peer, size, skip)
        if not rows or sending.done() or any(r.prec == FLASH for r in rows):
            return None
        return rows, await self._offered(peer, row, ways, rows)

    async def _while_settling(
        self,
        peer: str,
        row: PeerRow,
        ways: tuple[policy.Path, ...],
        size: int,
        skip: set[int],
        settling: asyncio.Task[bool],
        queued: asyncio.Future[None],
    ) -> tuple[asyncio.Task[_Answer | None] | None, list[EnvelopeRow]]:
        """Sends committed while an answer is applied, with nothing else to send: they go at
        once, not after the answer's commit (which may wait behind a group of sends going to
        disk) and a new round (issue 14, latency p99). The answered batch (`skip`) is still
        pending until the settling commits; the peer has it, so nothing is sent twice."""
        rows = await self._queued_before(settling, queued, peer, size, skip)
        return (await self._offered(peer, row, ways, rows) if rows else None), rows

    async def _queued_before(
        self,
        task: asyncio.Task[Any],
        queued: asyncio.Future[None],
        peer: str,
        size: int,
        skip: set[int],
    ) -> list[EnvelopeRow]:
        """The next batch (after `skip`) if a send is queued before `task` ends, else none."""
        await asyncio.wait((task, queued), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return []
        return await asyncio.to_thread(self._next_batch, peer, size, skip)

    def _listen(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.listeners.add(fut)
        return fut

    def _unlisten(self, fut: asyncio.Future[None]) -> None:
        self.listeners.discard(fut)
        fut.cancel()

    def _start(self, peer: str, size: int) -> _First | None:
        """The peer, its paths and the first batch, in one trip to a worker thread (each trip
        is on the way of a message's latency). None if there is nothing to send or no way."""
        row = self.peer_row(peer)
        if row is None:
            return None
        store = self.station.store
        return self._first(row, db.route(store, peer), store.link(peer), size)

    def _first(
        self, row: PeerRow, route: db.Route | None, link: LinkRow | None, size: int
    ) -> _First | None:
        ways = policy.push_paths(
            bool(row.addresses), route.via if route else None,
            bool(route and route.fallback), link is not None and link.state == "down",
        )  # fmt: skip
        batch = self._next_batch(row.station, size, set()) if ways else []
        return (row, ways, batch) if batch else None

    async def _offered(
        self, peer: str, row: PeerRow, ways: Sequence[policy.Path], batch: list[EnvelopeRow]
    ) -> asyncio.Task[_Answer | None]:
        """`_offer` in a task of its own, once its request is on the wire. The drain goes on
        with a read or a settle on a worker thread, and that thread, started first, held the
        interpreter while the loop waited to write the push: 0.1-0.7 ms of a paced message's
        way from the wake-up to the peer, in ten alternating runs (bench/stages.py, issue 14)."""
        task = asyncio.create_task(self._offer(peer, row, ways, batch))
        try:
            await asyncio.sleep(0)  # the task's first step (up to its request written) runs first
        except asyncio.CancelledError:
            task.cancel()  # nobody would await it: its rows stay pending, offered again
            raise
        return task

    async def _offer(
        self, peer: str, row: PeerRow, ways: Sequence[policy.Path], batch: list[EnvelopeRow]
    ) -> _Answer | None:
        """Offer `batch` on the first path that can be reached; None if none could."""
        raws = [b.raw for b in batch]
        for way in ways:
            if way is policy.Path.DIRECT:
                # A failure has backed off already; the contact is recorded with the answer,
                # in one worker-thread trip (`_settle`) off the way of the next batch.
                resp = await self._push(peer, row, raws, record=False)
                if resp is not None:
                    return _Answer(peer, resp, None, self.failures.get(peer, 0))
            else:
                route = db.route(self.station.store, peer)
                if route is None:
                    continue
                resp = await self._relay(peer, route.via, raws)
                if resp is not None:
                    return _Answer(peer, resp, route.via)
        if policy.Path.DIRECT not in ways:
            self.backoff(peer).failed(self.now_ms(), random.random())
        return None

    def _settle(self, peer: str, answer: _Answer) -> bool:
        """Apply a push or relay answer; True if any outbox row changed."""
        if answer.via is None:
            with self.contact_lock:
                if self.failures.get(peer, 0) == answer.failures:  # else older than a failure
                    self.contact_ok(peer, answer.resp.rtt_ms)
            return self.answered(peer, answer.resp.results, answer.resp.receipts)
        progressed = paths.apply_relay_response(
            self.station, answer.via, answer.resp.results, answer.resp.receipts,
            self.alarmed_rejects,
        )  # fmt: skip
        if progressed:
            self.backoff(peer).reset()
        return progressed > 0

    async def _settle_after(self, lag: _Lag, peer: str, answer: _Answer) -> bool:
        """`_settle` once the answers settling behind have settled (in the order they came)."""
        if not await lag.flush():
            return False
        return await asyncio.to_thread(self._settle, peer, answer)

    def _settle_all(self, peer: str, answers: Sequence[_Answer]) -> bool:
        """Clean direct answers that came while the ones before them settled, as one: one trip
        through the writer, one link record for the last (`_settle`'s rules)."""
        last = answers[-1]
        with self.contact_lock:
            if self.failures.get(peer, 0) == last.failures:
                self.contact_ok(peer, last.resp.rtt_ms)
        results = [r for a in answers for r in a.resp.results]
        return self.answered(peer, results, [r for a in answers for r in a.resp.receipts])

    async def _push(
        self, peer: str, row: PeerRow, raws: list[bytes], record: bool = True
    ) -> PushResponse | None:
        """`record`: write the contact here (else the caller does, with the answer)."""
        known = self.failures.get(peer, 0)
        for addr in row.addresses:
            try:
                resp = await self.transport.push(addr, raws)
            except TransportError as exc:
                if self.failures.get(peer, 0) != known:
                    continue  # the other push in flight failed meanwhile: one outage, one failure
                # Counted here, on the event loop: two pushes failing at once both see it.
                self.failures[peer] = known = known + 1
                await asyncio.to_thread(self.contact_failed, peer, exc, True)
                continue
            if record:
                await asyncio.to_thread(self.contact_ok, peer, resp.rtt_ms)
            return resp
        return None

    async def _relay(self, peer: str, via: str, raws: list[bytes]) -> PushResponse | None:
        """Hand `raws` to the relay `via` for `peer`. None if the relay could not be reached."""
        relay = self.peer_row(via)
        for addr in relay.addresses if relay else []:
            try:
                resp = await self.transport.relay(addr, peer, raws)
            except TransportError as exc:
                log.warning("relay %s for %s: %s", via, peer, exc.message)
                paths.record_link(self.station, via, None, exc.message, None, self.links)
                continue
            paths.record_link(self.station, via, "up", None, resp.rtt_ms, self.links)
            return resp
        return None

    def answered(
        self, peer: str, results: Sequence[dict[str, object]], receipts: Sequence[object]
    ) -> bool:
        """A peer's answer to what we sent it (results and receipts, from any path): receipts
        mark outbox rows delivered, `gap` re-queues, `unknown_key` asks for its new prekeys.
        True if anything progressed."""
        for res in results:
            if res.get("status") == "rejected" and res.get("code") == str(Code.UNKNOWN_KEY):
                self.next_refresh[peer] = 0.0  # our key for it is gone: refresh on this round
        return paths.apply_answer(self.station, peer, results, receipts, self.alarmed_rejects) > 0

    # --- relaying for others ---------------------------------------------------------------------
    async def forward(self, dest: str) -> bool:
        """Push envelopes queued for `dest` by the stations we relay for, oldest first. True if
        it stopped at MAX_ROUNDS with more to push."""
        st = self.station
        row = self.peer_row(dest)
        if row is None:
            return False
        for _ in range(MAX_ROUNDS):
            items = db.relay_pending(st.store, dest, policy.MIN_BATCH)
            items = items[: policy.fitting([len(i.raw) for i in items])]
            if not items:
                return False
            resp = await self._push(dest, row, [i.raw for i in items])
            if resp is None:
                return False  # unreachable (backed off) or no address
            paths.relay_answered(st, dest, items, resp.receipts)
        return True

    # --- pull ------------------------------------------------------------------------------------
    async def pull(self, peer: str) -> None:
        """Fetch and apply what `peer` holds for us, answering each batch with the next request."""
        st = self.station
        row = self.peer_row(peer)
        if row is None or not row.addresses:
            return
        answer = paths.PullRequest([], [], paths.MAX_PULL, st.prekeys()[:4])
        for _ in range(MAX_ROUNDS):
            resp = await self._pull_once(peer, row, answer)
            if resp is None or not resp.envelopes:
                return  # failed (and backed off), or nothing more: our answer has arrived
            results, receipts = st.receive_batch(resp.envelopes)
            answer = paths.PullRequest(
                [r.to_json() for r in results], [r.to_json() for r in receipts], paths.MAX_PULL
            )
            if not any(r.status in ("accepted", "duplicate") for r in results):
                break  # all wait, gap or rejected: asking again would bring the same batch
        # The last answer still has to arrive, or the peer would hand out the batch again.
        await self._pull_once(peer, row, replace(answer, max=0))

    async def _pull_once(
        self, peer: str, row: PeerRow, answer: paths.PullRequest
    ) -> PullResponse | None:
        for addr in row.addresses:
            try:
                resp = await self.transport.pull(addr, answer.to_json())
            except TransportError as exc:
                self.contact_failed(peer, exc)
                continue
            self.contact_ok(peer, resp.rtt_ms)
            self.answered(peer, [], resp.receipts)  # the peer's receipts of our chains
            return resp
        return None

    # --- prekeys ---------------------------------------------------------------------------------
    def refresh_due(self, p: PeerRow, routed: bool) -> bool:
        """Whether `p`'s prekeys should be fetched now (see the module rules)."""
        if not p.addresses and not routed:
            return False  # a pulling peer brings its prekeys itself
        if self.now_ms() < self.next_refresh.get(p.station, 0.0):
            return False
        return self.next_refresh.get(p.station) == 0.0 or paths.prekeys_stale(
            self.station, p.station
        )

    async def refresh_prekeys(self, peer: str) -> int:
        """Fetch `peer`'s current prekeys (directly, else from its relay) and keep the new ones.
        Returns how many were new."""
        st = self.station
        self.next_refresh[peer] = self.now_ms() + self.refresh_s * 1000
        row = self.peer_row(peer)
        if row is None:
            return 0
        route = db.route(st.store, peer)
        sources: list[tuple[str, str | None]] = []
        if route is None or route.fallback:
            sources += [(a, None) for a in row.addresses]
        relay = self.peer_row(route.via) if route else None
        if relay is not None:
            sources += [(a, peer) for a in relay.addresses]
        for addr, via_for in sources:
            try:
                records = await self.transport.prekeys(addr, via_for)
            except TransportError as exc:
                log.warning("prekeys of %s from %s: %s", peer, addr, exc.message)
                continue
            return paths.merge_prekeys(st, peer, records)
        return 0

    # --- bookkeeping -----------------------------------------------------------------------------
    def contact_ok(self, peer: str, rtt_ms: int) -> None:
        """A round trip with `peer` succeeded: the link is up and any backoff ends."""
        self.last_contact[peer] = self.now_ms()
        self.backoff(peer).reset()
        paths.record_link(self.station, peer, "up", None, rtt_ms, self.links)

    def contact_failed(self, peer: str, exc: TransportError, counted: bool = False) -> None:
        """A round trip with `peer` failed: one more consecutive failure, and back off.
        `counted`: the caller has counted it in `failures` already."""
        with self.contact_lock:
            if not counted:
                self.failures[peer] = self.failures.get(peer, 0) + 1
            self.last_contact[peer] = self.now_ms()
            self.backoff(peer).failed(self.now_ms(), random.random())
            paths.record_link(self.station, peer, None, exc.message, None, self.links)


class _PeerView:
    """One peer as a round sees it (read together, off the event loop)."""

    __slots__ = ("first", "link", "pending", "relayed", "route", "row")

    def __init__(
        self, row: PeerRow, pending: bool, relayed: bool, route: db.Route | None,
        link: LinkRow | None,
    ) -> None:  # fmt: skip
        self.row = row
        self.pending = pending
        self.relayed = relayed
        self.route = route
        self.link = link
        self.first: _First | None = None  # the drain's first batch, read with the rest


_First = tuple[PeerRow, tuple[policy.Path, ...], list[EnvelopeRow]]

LAG_ROWS = 2 * policy.MAX_BATCH  # answered rows a drain may push past before they settle


class _Lag:
    """Clean answers of one drain settling behind the pushes after them, on one task that takes
    all that came meanwhile at each trip (`Dispatcher._settle_all`), in the order they came.
    Their rows (`ids`) stay out of the next batches until their settle has committed."""

    def __init__(self, peer: str, settle: Callable[[str, Sequence[_Answer]], bool]) -> None:
        self.peer = peer
        self.settle = settle
        self.ids: set[int] = set()
        self.queue: list[tuple[_Answer, list[int]]] = []
        self.task: asyncio.Task[None] | None = None
        self.stalled = False  # a settle moved no row
        self.error: BaseException | None = None

    def room(self) -> bool:
        return len(self.ids) < LAG_ROWS and not self.stalled and self.error is None

    def add(self, answer: _Answer, batch: Sequence[EnvelopeRow]) -> None:
        ids = [r.id for r in batch]
        self.ids.update(ids)
        self.queue.append((answer, ids))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.queue and self.error is None:  # bounded: each trip takes the whole queue
            taken, self.queue = self.queue, []
            try:
                moved = await asyncio.to_thread(self.settle, self.peer, [a for a, _ in taken])
            except Exception as exc:  # raised where the drain waits for it (`flush`)
                self.error = exc
                return
            self.stalled |= not moved
            for _, ids in taken:
                self.ids.difference_update(ids)

    async def done(self) -> None:
        """Wait until nothing settles behind (an error stays for `flush`)."""
        while self.task is not None and not self.task.done():  # bounded: the queue empties
            await asyncio.wait((self.task,))

    async def flush(self) -> bool:
        """Wait until every answer added has settled; False if one moved no row."""
        await self.done()
        if self.error is not None:
            raise self.error
        return not self.stalled


def _in_folder(row: PeerRow) -> bool:
    return any(a.startswith(FOLDER) for a in row.addresses)


class _Answer:
    """A push or relay answer not yet applied; `clean` when every envelope was taken (accepted
    or duplicate), so the next batch can follow it without waiting for the answer's effects."""

    def __init__(self, peer: str, resp: PushResponse, via: str | None, failures: int = 0) -> None:
        self.peer = peer
        self.failures = failures  # the peer's failed contacts when it arrived (`_settle`)
        self.resp = resp
        self.via = via
        self.clean = _clean(via, resp.results)
        self.held = False  # some of its envelopes wait at the peer for the push before it

    def explained_by(self, ahead: Sequence[EnvelopeRow]) -> None:
        """Set aside the `gap` results that name a seq of `ahead`, the push that was on the wire
        when this one was sent: the peer applied this one first and holds its envelopes until
        that seq arrives, with `ahead` (or again, if `ahead` failed: its rows are still pending).
        Re-queued, the rows `ahead` delivered would be pushed twice."""
        flying = {(r.channel, r.seq) for r in ahead}
        kept = [
            r for r in self.resp.results
            if r.get("status") != "gap" or (r.get("channel"), r.get("expected_seq")) not in flying
        ]  # fmt: skip
        if len(kept) < len(self.resp.results):
            self.held = True
            self.resp = replace(self.resp, results=kept)
            self.clean = _clean(self.via, kept)


def _clean(via: str | None, results: Sequence[dict[str, Any]]) -> bool:
    """A direct answer in which every envelope was taken (accepted or a duplicate)."""
    return via is None and all(r.get("status") in ("accepted", "duplicate") for r in results)
