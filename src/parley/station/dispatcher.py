"""The dispatcher: one background task that drains the outbox to every peer, and keeps link state.

- At-least-once: an envelope stays pending until a signed receipt from that peer covers it.
  With the receiver's idempotent apply, that is exactly-once.
- Per peer, batches go out in chain order; a failure backs off exponentially with full jitter
  (retry_base_ms doubling up to retry_max_ms), and a new envelope or a success resets it.
- A `gap` answer re-queues the chain from the seq the peer asks for.
- Heartbeats (signed pings) run when a link has been quiet for `heartbeat_ms`, so link state
  is known even with nothing to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence

from parley.errors import ParleyError
from parley.protocol.receipt import parse_receipt, verify_receipt
from parley.station.node import Station
from parley.store.base import LinkRow
from parley.transport.http import PeerClient, TransportError

log = logging.getLogger("parley.dispatcher")
BATCH = 128


class Dispatcher:
    def __init__(self, station: Station, client: PeerClient) -> None:
        self.station = station
        self.client = client
        self.wake = asyncio.Event()
        self.next_try: dict[str, float] = {}
        self.delay: dict[str, float] = {}
        self.last_contact: dict[str, float] = {}
        self.alarmed_rejects: set[str] = set()
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
            tasks = []
            pending = set(self.station.store.peers_with_pending())
            for p in self.station.store.list_peers():
                if now < self.next_try.get(p.station, 0):
                    continue
                if p.station in pending:
                    tasks.append(self.drain(p.station))
                elif now - self.last_contact.get(p.station, 0) >= t.heartbeat_ms / 1000:
                    tasks.append(self.heartbeat(p.station))
            if tasks:
                await asyncio.gather(*tasks)
            waits = [max(0.0, v - time.monotonic()) for v in self.next_try.values()]
            timeout = min([t.heartbeat_ms / 1000, *waits]) if waits else t.heartbeat_ms / 1000
            if not tasks or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=max(timeout, 0.01))

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

    async def drain(self, peer: str) -> None:
        """Push batches until the peer's queue is empty or a push fails to make progress."""
        st = self.station
        row = st.store.get_peer(peer)
        if row is None:
            return
        while True:
            batch = st.store.pending(peer, BATCH)
            if not batch:
                return
            resp = None
            for addr in row.addresses:
                try:
                    resp = await self.client.push(addr, [b.raw for b in batch])
                    break
                except TransportError as exc:
                    self._failed(peer, exc)
            if resp is None:
                return
            self._ok(peer, resp.rtt_ms)
            if not self._apply(peer, resp.results, resp.receipts):
                self._backoff(peer)
                return

    def _apply(
        self, peer: str, results: Sequence[dict[str, object]], receipts: Sequence[object]
    ) -> bool:
        """Store receipts, mark what they cover delivered. Returns True if anything progressed."""
        st = self.station
        pub = st.store.get_peer(peer)
        assert pub is not None
        progressed = 0
        now = st.clock()
        receipted: dict[str, int] = {}
        for raw in receipts:
            try:
                r = parse_receipt(raw)
                verify_receipt(r, pub.identity)
            except ParleyError as exc:
                log.warning("bad receipt from %s: %s", peer, exc.message)
                continue
            if r.by != peer or r.of != st.id:
                continue
            held = st.store.hash_at(r.channel, st.id, r.seq)
            if held != r.hash:
                st._alarm(
                    "divergence", "critical", peer,
                    f"{pub.name} acknowledges seq {r.seq} on {r.channel} with a hash we never sent",
                )  # fmt: skip
                continue
            receipted[r.channel] = max(receipted.get(r.channel, 0), r.seq)
            with st.store.tx():
                progressed += st.store.mark_delivered(r.channel, peer, r.seq, now)
                st.store.add_receipt(r.channel, r.of, r.by, r.seq, r.hash, r.ts, r.encode())
        for res in results:
            status = res.get("status")
            if status == "gap" and isinstance(res.get("expected_seq"), int):
                # A receipt in the same answer may already cover the seq asked for: the gap was
                # filled later in the batch (e.g. a FLASH sent ahead of its chain).
                ch, want = str(res["channel"]), int(str(res["expected_seq"]))
                if want > receipted.get(ch, 0):
                    progressed += st.store.requeue_from(ch, peer, want)
            elif (
                status in ("rejected", "equivocation")
                and str(res["hash"]) not in self.alarmed_rejects
            ):
                self.alarmed_rejects.add(str(res["hash"]))
                st._alarm(
                    "rejected", "high", peer,
                    f"{pub.name} rejected envelope {res['hash']}: {res.get('code')}: "
                    f"{res.get('message')}",
                )  # fmt: skip
        return progressed > 0

    def _ok(self, peer: str, rtt_ms: int) -> None:
        self.last_contact[peer] = time.monotonic()
        self.delay.pop(peer, None)
        self.next_try.pop(peer, None)
        self._set_link(peer, "up", None, rtt_ms)

    def _failed(self, peer: str, exc: TransportError) -> None:
        self.last_contact[peer] = time.monotonic()
        self._backoff(peer)
        self._set_link(peer, None, exc.message, None)

    def _backoff(self, peer: str) -> None:
        t = self.station.cfg.timings
        d = min(self.delay.get(peer, t.retry_base_ms / 2000) * 2, t.retry_max_ms / 1000)
        self.delay[peer] = d
        self.next_try[peer] = time.monotonic() + random.uniform(d / 2, d)

    def _set_link(
        self, peer: str, ok_state: str | None, error: str | None, rtt: int | None
    ) -> None:
        st = self.station
        now = st.clock()
        old = st.store.link(peer)
        failures = 0 if ok_state else (old.failures + 1 if old else 1)
        if ok_state:
            state = ok_state
        else:
            state = "down" if failures >= st.cfg.timings.down_after_failures else "degraded"
        since = old.since if old and old.state == state else now
        st.store.set_link(
            LinkRow(
                peer, state, since,
                now if ok_state else (old.last_ok if old else None),
                error, failures, rtt if rtt is not None else (old.rtt_ms if old else None),
            )
        )  # fmt: skip
        if old is None or old.state == state:
            return
        name = st.peer_name(peer)
        if state == "down":
            st._alarm("link_down", "high", peer, f"link to {name} is down: {error}")
        elif old.state == "down" and state == "up":
            st._alarm("link_up", "info", peer, f"link to {name} is up again")
