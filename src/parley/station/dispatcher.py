"""The dispatcher: one background task that moves envelopes to and from every peer, and keeps
link state and peers' prekeys current.

- At-least-once: an envelope stays pending until a signed receipt from that peer covers it,
  whichever path brought the receipt. With the receiver's idempotent apply, that is exactly-once.
- Per peer, batches go out in outbox order; a failure backs off exponentially with full jitter
  (retry_base_ms doubling up to retry_max_ms), and a new envelope or a success resets it.
- A `gap` answer re-queues the chain from the seq the peer asks for.

Each round, for every peer not in backoff (`_serve`, steps in this order):
1. Own outbox (`drain`). The peer's route decides the path: no route, direct push to its
   addresses; `parley peer route PEER --via R`, through relay station R (POST /peer/v1/relay)
   always; `--via R --fallback`, directly while the link is not down and through R when it is
   down or a direct push has just failed. A peer with no address and no route pulls from us, so
   nothing is pushed to it. Relayed envelopes are receipted by the destination; the relay hands
   those receipts back with the answer to our next relay request, so a relayed batch without
   receipts yet backs off like a push without progress and is offered again (the relay keeps
   one copy).
2. Relay queue (`forward`): envelopes other stations asked us to relay to this peer, pushed as
   they arrived; the peer's receipts are kept for their senders (station/paths.py).
3. Pull (`pull`), only when this station accepts no inbound connections (config `inbound:
   false`): fetch what the peer holds for us, apply it with receive_batch, and send our answer
   (results, receipts) with the next pull request; a final request with max 0 carries the last
   answer. It runs right after a push (answers come back soon) and instead of the heartbeat.
4. Heartbeat: a signed ping when the direct link has been quiet for heartbeat_ms (never for a
   peer routed through a relay always, nor for one without address).
5. Prekeys (`refresh_prekeys`): when the newest prekey we know of the peer began more than half
   a rotation period ago, or the peer rejected an envelope with `unknown_key`, fetch its current
   signed records — from the peer, else from the relay it is routed through — at most once per
   `refresh_s` per peer. A pulling peer sends its records with each pull instead.
Every loop is bounded: at most MAX_ROUNDS batches per step before the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace

from parley.errors import Code
from parley.station import paths
from parley.station.node import Station
from parley.store import paths as db
from parley.store.base import PeerRow
from parley.transport.http import PeerClient, PullResponse, PushResponse, TransportError

log = logging.getLogger("parley.dispatcher")
BATCH = 128
MAX_ROUNDS = 64  # batches per step and peer before other peers get their turn


class Dispatcher:
    def __init__(self, station: Station, client: PeerClient) -> None:
        self.station = station
        self.client = client
        self.wake = asyncio.Event()
        self.next_try: dict[str, float] = {}
        self.delay: dict[str, float] = {}
        self.last_contact: dict[str, float] = {}
        self.next_refresh: dict[str, float] = {}
        self.alarmed_rejects: set[str] = set()
        # Between two prekey fetches for one peer: a 48th of a rotation (30 min by default).
        self.refresh_s = max(1.0, station.cfg.timings.prekey_rotation_ms / 48_000)
        station.on_queued = self._poke

    def _poke(self) -> None:
        self.next_try.clear()
        self.delay.clear()
        self.wake.set()

    async def run(self) -> None:
        t = self.station.cfg.timings
        while True:
            self.wake.clear()
            now = time.monotonic()
            pending = set(self.station.store.peers_with_pending())
            relayed = set(db.relay_dests(self.station.store))
            tasks = [
                self._serve(p, p.station in pending, p.station in relayed)
                for p in self.station.store.list_peers()
                if now >= self.next_try.get(p.station, 0)
            ]
            if tasks and any(await asyncio.gather(*tasks)):
                await asyncio.sleep(0)  # a step stopped at MAX_ROUNDS: go on without waiting
                continue
            waits = [max(0.0, v - time.monotonic()) for v in self.next_try.values()]
            timeout = min([t.heartbeat_ms / 1000, *waits]) if waits else t.heartbeat_ms / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=max(timeout, 0.01))

    async def _serve(self, p: PeerRow, pending: bool, relayed: bool) -> bool:
        """One round for one peer; True if a step stopped with work left."""
        peer = p.station
        more = False
        route = db.route(self.station.store, peer)
        quiet = time.monotonic() - self.last_contact.get(peer, 0) >= (
            self.station.cfg.timings.heartbeat_ms / 1000
        )
        if pending and (p.addresses or route is not None):
            more |= await self.drain(peer)
        if relayed:
            more |= await self.forward(peer)
        direct = bool(p.addresses) and (route is None or route.fallback)
        if not self.station.cfg.inbound and p.addresses:
            if (pending or quiet) and time.monotonic() >= self.next_try.get(peer, 0):
                await self.pull(peer)
        elif direct and quiet and not pending:
            await self.heartbeat(peer)
        if self._refresh_due(p, route is not None):
            await self.refresh_prekeys(peer)
        return more

    # --- heartbeats and link state ---------------------------------------------------------------
    async def heartbeat(self, peer: str) -> None:
        row = self.station.store.get_peer(peer)
        if row is None:
            return
        for addr in row.addresses:
            try:
                _, rtt = await self.client.ping(addr)
            except TransportError as exc:
                self._failed(peer, exc)
                continue
            self._ok(peer, rtt)
            return

    # --- own outbox ------------------------------------------------------------------------------
    async def drain(self, peer: str) -> bool:
        """Send batches until the peer's queue is empty, a send fails, or a batch makes no
        progress (then back off). True if it stopped at MAX_ROUNDS with more to send."""
        st = self.station
        row = st.store.get_peer(peer)
        if row is None:
            return False
        route = db.route(st.store, peer)
        for _ in range(MAX_ROUNDS):
            batch = st.store.pending(peer, BATCH)
            if not batch:
                return False
            raws = [b.raw for b in batch]
            progressed: bool | None = None
            direct = bool(row.addresses) and (
                route is None or (route.fallback and not self._down(peer))
            )
            if direct:
                resp = await self._push(peer, row, raws)  # a failure has backed off already
                if resp is not None:
                    progressed = self._apply(peer, resp.results, resp.receipts)
            if progressed is None and route is not None:
                progressed = await self._relay(peer, route.via, raws)
                if progressed:
                    self.delay.pop(peer, None)
                    self.next_try.pop(peer, None)
            if not progressed:
                if progressed is not None or not direct:
                    self._backoff(peer)
                return False
        return True

    async def _push(self, peer: str, row: PeerRow, raws: list[bytes]) -> PushResponse | None:
        for addr in row.addresses:
            try:
                resp = await self.client.push(addr, raws)
            except TransportError as exc:
                self._failed(peer, exc)
                continue
            self._ok(peer, resp.rtt_ms)
            return resp
        return None

    async def _relay(self, peer: str, via: str, raws: list[bytes]) -> bool | None:
        """Hand `raws` to the relay `via` for `peer`; the answer's receipts (from any
        destination) are applied. None if the relay could not be reached."""
        relay = self.station.store.get_peer(via)
        for addr in relay.addresses if relay else []:
            try:
                resp = await self.client.relay(addr, peer, raws)
            except TransportError as exc:
                log.warning("relay %s for %s: %s", via, peer, exc.message)
                paths.record_link(self.station, via, None, exc.message, None)
                continue
            paths.record_link(self.station, via, "up", None, resp.rtt_ms)
            progressed = paths.apply_relay_response(
                self.station, via, resp.results, resp.receipts, self.alarmed_rejects
            )
            return progressed > 0
        return None

    def _apply(
        self, peer: str, results: Sequence[dict[str, object]], receipts: Sequence[object]
    ) -> bool:
        """Store receipts, mark what they cover delivered. Returns True if anything progressed."""
        for res in results:
            if res.get("status") == "rejected" and res.get("code") == str(Code.UNKNOWN_KEY):
                self.next_refresh[peer] = 0.0  # our key for it is gone: refresh on this round
        return paths.apply_answer(self.station, peer, results, receipts, self.alarmed_rejects) > 0

    # --- relaying for others ---------------------------------------------------------------------
    async def forward(self, dest: str) -> bool:
        """Push envelopes queued for `dest` by the stations we relay for, oldest first. True if
        it stopped at MAX_ROUNDS with more to push."""
        st = self.station
        row = st.store.get_peer(dest)
        if row is None:
            return False
        for _ in range(MAX_ROUNDS):
            items = db.relay_pending(st.store, dest, BATCH)
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
        row = st.store.get_peer(peer)
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
                resp = await self.client.pull(addr, answer.to_json())
            except TransportError as exc:
                self._failed(peer, exc)
                continue
            self._ok(peer, resp.rtt_ms)
            self._apply(peer, [], resp.receipts)  # the peer's receipts of our chains
            return resp
        return None

    # --- prekeys ---------------------------------------------------------------------------------
    def _refresh_due(self, p: PeerRow, routed: bool) -> bool:
        if not p.addresses and not routed:
            return False  # a pulling peer brings its prekeys itself
        if time.monotonic() < self.next_refresh.get(p.station, 0.0):
            return False
        return self.next_refresh.get(p.station) == 0.0 or paths.prekeys_stale(
            self.station, p.station
        )

    async def refresh_prekeys(self, peer: str) -> int:
        """Fetch `peer`'s current prekeys (directly, else from its relay) and keep the new ones.
        Returns how many were new."""
        st = self.station
        self.next_refresh[peer] = time.monotonic() + self.refresh_s
        row = st.store.get_peer(peer)
        if row is None:
            return 0
        route = db.route(st.store, peer)
        sources: list[tuple[str, str | None]] = []
        if route is None or route.fallback:
            sources += [(a, None) for a in row.addresses]
        relay = st.store.get_peer(route.via) if route else None
        if relay is not None:
            sources += [(a, peer) for a in relay.addresses]
        for addr, via_for in sources:
            try:
                records = await self.client.prekeys(addr, via_for)
            except TransportError as exc:
                log.warning("prekeys of %s from %s: %s", peer, addr, exc.message)
                continue
            return paths.merge_prekeys(st, peer, records)
        return 0

    # --- bookkeeping -----------------------------------------------------------------------------
    def _down(self, peer: str) -> bool:
        link = self.station.store.link(peer)
        return link is not None and link.state == "down"

    def _ok(self, peer: str, rtt_ms: int) -> None:
        self.last_contact[peer] = time.monotonic()
        self.delay.pop(peer, None)
        self.next_try.pop(peer, None)
        paths.record_link(self.station, peer, "up", None, rtt_ms)

    def _failed(self, peer: str, exc: TransportError) -> None:
        self.last_contact[peer] = time.monotonic()
        self._backoff(peer)
        paths.record_link(self.station, peer, None, exc.message, None)

    def _backoff(self, peer: str) -> None:
        t = self.station.cfg.timings
        d = min(self.delay.get(peer, t.retry_base_ms / 2000) * 2, t.retry_max_ms / 1000)
        self.delay[peer] = d
        self.next_try[peer] = time.monotonic() + random.uniform(d / 2, d)
