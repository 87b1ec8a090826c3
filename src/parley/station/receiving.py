"""Receiving: envelopes from any path (push, pull, relay, bundle) checked and applied.

A batch goes in two phases (docs/protocol.md §6):
1. `prepare`, outside the store's transaction: parse, known sender, signature, recipient, and the
   body opened for every envelope that may be new (the crypto, so other requests are not kept
   waiting behind it). A failure here is kept and reported in order; nothing is written.
2. `apply`, in ONE transaction: the delivery machine (protocol/delivery.py) decides each envelope
   against what is held, and this module applies the effects it names: store (after the body
   checks, steps 10–13), receipt, hold, re-request, evidence, alarm. Only a stored body can be
   refused after its insert (what it means locally, an observer's work): the batch is applied
   under one savepoint, and if an observer refuses a body, undone and applied again with a
   savepoint per stored envelope, so that only that one is refused (one each always cost ~20%
   of the apply, and observers on the receive path alarm rather than refuse). The other
   outcomes write at most one row. Held envelopes whose predecessors arrived are then applied
   in order, and one receipt per touched chain covers its held head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.domain import channels, records
from parley.errors import Code, Conflict, ParleyError, RejectedInput
from parley.protocol import crypto, delivery
from parley.protocol.delivery import ChainHead, ChainState, Decision, Effect, Facts, Verdict
from parley.protocol.encoding import b64e, canonical
from parley.protocol.envelope import (
    ENVELOPE_LABEL,
    Envelope,
    Opened,
    parse_envelope,
    signing_input,
    verify_signature,
)
from parley.protocol.receipt import Receipt
from parley.station import cryptopool, peerstate
from parley.station.config import Config
from parley.station.cryptopool import CryptoPool, Job, Ticket
from parley.store.base import SqlStore

# A batch this large has its crypto done by the worker processes, in chunks of these bounds
# (smaller ones start the workers sooner; each costs a trip).
POOL_MIN = 32
POOL_CHUNK_MIN, POOL_CHUNK_MAX = 16, 64
HOLD_LIMIT = 4096  # envelopes held ahead of one chain; beyond it they are re-requested instead


@dataclass(frozen=True)
class ReceiveResult:
    hash: str
    status: Verdict
    code: Code | None = None
    message: str = ""
    expected_seq: int = 0
    receipt: Receipt | None = None
    channel: str = ""
    sender: str = ""
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hash": self.hash, "status": str(self.status)}
        if self.code is not None:
            out["code"] = str(self.code)
            out["message"] = self.message
        if self.expected_seq:
            out["expected_seq"] = self.expected_seq
        if self.channel:
            out.update(channel=self.channel, sender=self.sender, seq=self.seq)
        return out


@dataclass
class Arrival:
    """One envelope after the crypto phase: parsed and signature-checked (`env`), or refused
    (`refused`); its body opened in advance when it may be new (`opened` or `open_error`)."""

    raw: bytes
    hash: str
    env: Envelope | None = None
    refused: ParleyError | None = None
    opened: Opened | None = None
    open_error: ParleyError | None = None

    def result(self, status: Verdict, code: Code | None = None, message: str = "",
               expected: int = 0) -> ReceiveResult:  # fmt: skip
        e = self.env
        assert e is not None
        return ReceiveResult(
            self.hash, status, code, message, expected, None, e.channel, e.sender, e.seq
        )


@dataclass
class _Keys:
    """The peers' identity keys and our prekeys as one batch has read them: its envelopes
    mostly share both. Dropped with the batch, so neither a removed peer nor an erased prekey
    lives on here."""

    identities: dict[str, bytes | None] = field(default_factory=dict)
    prekeys: dict[str, crypto.KemKey] = field(default_factory=dict)
    # A sender seals a batch with one ephemeral key (§4.5): one X25519 opens all of it.
    wrap_keys: crypto.WrapKeys = field(default_factory=crypto.WrapKeys)
    # Chain heads as the batch's first look found them: outside a transaction each store read
    # first asks SQLite whether another connection wrote (issue 14: 4% of a receiver's CPU,
    # per envelope). Only a hint for what to open (`_may_be_new`), so staleness costs at most
    # an open, done again or skipped in `apply`.
    heads: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class _Batch:
    keys: _Keys = field(default_factory=_Keys)
    results: list[ReceiveResult] = field(default_factory=list)
    touched: set[tuple[str, str]] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)
    # Channels found stored: one stays stored for the rest of the transaction, so it is not
    # asked for again per envelope (a query each, issue 14).
    known: set[str] = field(default_factory=set)
    # Each stored envelope in a savepoint of its own; False: an observer's refusal raises
    # `_Undo` for the whole run (`Receiver._apply_run`).
    alone: bool = True
    # Hashes held below a chain's head, as `delivery.lookups` asked for them: one stays what
    # it is, and a batch's envelopes mostly name the same one of ours in `seen` (a query
    # each, issue 14). A run applied again starts a new batch, and with it a new memo.
    below: dict[tuple[str, str, int], bytes] = field(default_factory=dict)


class _Undo(Exception):
    """An observer refused a stored body inside a run without savepoints per envelope. Not a
    ParleyError: it passes `_apply` and undoes the run."""


class Host(Protocol):
    """What receiving needs of its station (station/node.py `Station`, which holds it)."""

    id: str
    cfg: Config
    store: SqlStore
    clock: Callable[[], int]

    def peer_name(self, station: str) -> str: ...

    def signer_keys(self, station: str, ts: int) -> list[bytes]: ...

    def _open(
        self,
        env: Envelope,
        prekeys: dict[str, crypto.KemKey] | None = None,
        wrap_keys: crypto.WrapKeys | None = None,
    ) -> Opened: ...

    def prekey(
        self, kid: str, prekeys: dict[str, crypto.KemKey] | None = None
    ) -> crypto.KemKey | None: ...

    def alarm(self, kind: str, severity: str, subject: str, message: str, ref: str = "") -> int: ...

    def keep_evidence(
        self, channel: str, sender: str, seq: int, kind: str, raw: bytes, held: bytes | None
    ) -> bool: ...

    def _control(
        self, channel: str
    ) -> tuple[tuple[channels.Event, ...], channels.ChannelState | None]: ...

    def _receipt(self, channel: str, sender: str) -> Receipt: ...

    def notify_received(self, env: Envelope, h: str, body: dict[str, Any]) -> None: ...


class Receiver:
    def __init__(self, station: Host) -> None:
        self.st = station
        # Peers that reached the held bound (cfg.limits.held_*): alarmed once until below it.
        self.held_full: set[str] = set()
        # Worker processes for the crypto of large batches (station/cryptopool.py).
        self.pool: CryptoPool | None = CryptoPool.for_cores()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    # --- phase 1: crypto, outside the transaction ------------------------------------------------
    def prepare(self, raw: bytes, keys: _Keys | None = None) -> Arrival:
        keys = keys if keys is not None else _Keys()
        a, env, identity = self._read(raw, keys)
        if env is None:
            return a
        try:
            self._verify(env, identity)
            self._addressed(env)
        except ParleyError as exc:
            a.refused = exc
            return a
        a.env = env
        if self._may_be_new(env, keys):
            self._open_into(a, keys)
        return a

    def _read(self, raw: bytes, keys: _Keys) -> tuple[Arrival, Envelope | None, bytes]:
        """Parse, and the sender's current identity key: the envelope and its key, or a refusal
        kept in the arrival (and no envelope)."""
        a = Arrival(raw, "")  # its hash: the parsed envelope's, else computed on refusal
        store = self.st.store
        try:
            env = parse_envelope(raw)
            a.hash = b64e(env.hash)
            if env.sender not in keys.identities:
                peer = store.get_peer(env.sender)
                keys.identities[env.sender] = peer.identity if peer is not None else None
            identity = keys.identities[env.sender]
            if identity is None:
                raise peerstate.stranger(store, env.sender)
        except ParleyError as exc:
            a.refused = exc
            a.hash = a.hash or b64e(crypto.sha256(raw))
            return a, None, b""
        return a, env, identity

    def _addressed(self, env: Envelope) -> None:
        if self.st.id not in env.recipients:
            raise RejectedInput(Code.NOT_A_RECIPIENT, "this station is not a recipient")

    def _may_be_new(self, env: Envelope, keys: _Keys) -> bool:
        """Open only what may be new: a re-sent envelope is answered duplicate without it. The
        head read here may be stale by the time the batch applies; `apply` opens then if so."""
        chain = (env.channel, env.sender)
        head = keys.heads.get(chain)
        if head is None:
            head = keys.heads[chain] = self.st.store.head_seq(env.channel, env.sender)
        return env.seq > head

    def prepare_all(self, raws: list[bytes], keys: _Keys) -> list[Arrival]:
        """`prepare` for each, the crypto in worker processes when the batch is large enough
        to pay for the trip (a small push stays here: its latency) and the workers are up."""
        if self.pool is not None and len(raws) >= POOL_MIN and self.pool.ready():
            arrivals = self._prepare_pooled(self.pool, raws, keys)
            if arrivals is not None:
                return arrivals
        return [self.prepare(raw, keys) for raw in raws]

    def _prepare_pooled(
        self, pool: CryptoPool, raws: list[bytes], keys: _Keys
    ) -> list[Arrival] | None:
        """`prepare` with the signatures and bodies done by the pool; None if the pool broke
        (nothing was decided yet: the caller starts again serially)."""
        arrivals: list[Arrival] = []
        sent: list[tuple[Ticket, list[tuple[Arrival, Envelope, bytes, bool]]]] = []
        size = max(POOL_CHUNK_MIN, min(POOL_CHUNK_MAX, len(raws) // (2 * pool.workers)))
        for start in range(0, len(raws), size):
            items: list[tuple[Arrival, Envelope, bytes, bool]] = []
            jobs: list[Job] = []
            for raw in raws[start : start + size]:
                a, env, identity = self._read(raw, keys)
                arrivals.append(a)
                if env is None:
                    continue
                mine = env.key_for(self.st.id)
                wanted = mine is not None and self._may_be_new(env, keys)
                kem = (
                    self.st.prekey(mine.kid, keys.prekeys)
                    if wanted and mine and pool.opens
                    else None
                )
                items.append((a, env, identity, wanted))
                jobs.append(cryptopool.job(env, self.st.id, identity, kem))
            if not jobs:
                continue
            ticket = pool.submit(jobs)
            if ticket is None:
                return None
            sent.append((ticket, items))
        for ticket, items in sent:
            outs = pool.result(ticket)
            if outs is None:
                return None
            for (a, env, identity, wanted), (verified, opened) in zip(items, outs, strict=True):
                try:
                    if not verified:
                        self._verify(env, identity)  # a hand-over's old key, or the refusal
                    self._addressed(env)
                except ParleyError as exc:
                    a.refused = exc
                    continue
                a.env = env
                if isinstance(opened, Opened):
                    a.opened = opened
                elif opened is not None:
                    a.open_error = cryptopool.refusal(opened)
                elif wanted:
                    self._open_into(a, keys)  # the prekey is unknown: the refusal, as serially
        return arrivals

    def _verify(self, env: Envelope, current: bytes) -> None:
        """The signature, by the sender's current key, else by a key it held at the envelope's
        time: after an identity hand-over (§3.6) its old key only up to the end of the grace
        (looked up only then, so the usual case costs no store read)."""
        if crypto.verify(current, ENVELOPE_LABEL, signing_input(env), env.sig):
            return
        for key in self.st.signer_keys(env.sender, env.ts):
            if key != current and crypto.verify(key, ENVELOPE_LABEL, signing_input(env), env.sig):
                return
        verify_signature(env, current)  # raises bad_signature

    def _open_into(self, a: Arrival, keys: _Keys | None = None) -> None:
        assert a.env is not None
        try:
            if keys is None:
                a.opened = self.st._open(a.env)
            else:
                a.opened = self.st._open(a.env, keys.prekeys, keys.wrap_keys)
        except ParleyError as exc:
            a.open_error = exc

    # --- phase 2: one transaction ----------------------------------------------------------------
    def batch(self, raws: list[bytes]) -> tuple[list[ReceiveResult], list[Receipt]]:
        """Apply a batch in one transaction; receipts cover the highest seq held per chain."""
        keys = _Keys()
        arrivals = self.prepare_all(raws, keys)
        with self.st.store.tx():
            b = self._apply_run(arrivals, keys)
            self._drain_held(b)
            receipts = [self.st._receipt(ch, sender) for ch, sender in sorted(b.touched)]
        return b.results, receipts

    def _apply_run(self, arrivals: list[Arrival], keys: _Keys) -> _Batch:
        """Apply in order under one savepoint; if an observer refuses a stored body, undo all
        of it and apply it again with a savepoint per stored envelope (the batch as it was)."""
        if len(arrivals) > 1:
            b, held_full = _Batch(keys, alone=False), set(self.held_full)
            try:
                with self.st.store.savepoint():
                    for a in arrivals:
                        self._one(a, b)
                b.alone = True  # for the held envelopes applied after the run
                return b
            except _Undo:
                self.held_full = held_full
        b = _Batch(keys)
        for a in arrivals:
            self._one(a, b)
        return b

    def receive(self, raw: bytes) -> ReceiveResult:
        """One envelope, in a transaction of its own."""
        b = _Batch()
        a = self.prepare(raw)
        with self.st.store.tx():
            return self._one(a, b)

    def _one(self, a: Arrival, b: _Batch) -> ReceiveResult:
        res, decision = self._apply(a, b)
        b.results.append(res)
        if res.channel:
            b.channels.add(res.channel)
        if decision is not None and Effect.RECEIPT in decision.effects:
            b.touched.add((res.channel, res.sender))
        return res

    def _apply(self, a: Arrival, b: _Batch) -> tuple[ReceiveResult, Decision | None]:
        """The result for one prepared envelope, and the decision that applied (None when it
        was refused: nothing was written then)."""
        try:
            if a.refused is not None:
                raise a.refused
            return self._decide_and_apply(a, b)
        except ParleyError as exc:
            return ReceiveResult(a.hash, Verdict.REJECT, exc.code, exc.message), None

    def _decide_and_apply(self, a: Arrival, b: _Batch) -> tuple[ReceiveResult, Decision | None]:
        st, env = self.st, a.env
        assert env is not None
        now = st.clock()
        known = env.channel in b.known or st.store.has_channel(env.channel)
        if known:
            b.known.add(env.channel)
        events, state = st._control(env.channel) if known else ((), None)
        chain = self._chain_state(env, frozenset(state.members) if state else None, b)
        d = delivery.decide(Facts.of(env), chain, now_ms=now, skew_ms=st.cfg.timings.skew_ms)
        if d.verdict is Verdict.REJECT:
            return ReceiveResult(a.hash, Verdict.REJECT, d.code, d.reason), None
        if Effect.EVIDENCE in d.effects:
            # The other half of the proof: our envelope at that seq or, when the fork is a
            # wrong `prev`, the one at seq - 1 that `prev` should have named.
            head = chain.heads.get(env.sender)
            held = st.store.hash_at(env.channel, env.sender, env.seq) or (
                head.hash if head is not None else None
            )
            kept = st.keep_evidence(env.channel, env.sender, env.seq, "equivocation", a.raw, held)
            if kept and Effect.ALARM in d.effects:
                st.alarm("equivocation", "critical", env.sender, d.reason)
        if Effect.HOLD in d.effects:
            self._hold(a, state, d.expected_seq)
        if Effect.STORE in d.effects:
            body = self._checked_body(a, events, state)
            # Only what the body means locally (an observer) can still refuse it after the
            # insert: that part alone is undone (module docstring).
            if b.alone:
                with st.store.savepoint():
                    self._store(a, body, now, new_channel=state is None)
            else:
                try:
                    self._store(a, body, now, new_channel=state is None)
                except ParleyError as exc:
                    raise _Undo from exc
        return a.result(d.verdict, d.code, d.reason if d.code else "", d.expected_seq), d

    def _chain_state(self, env: Envelope, members: frozenset[str] | None, b: _Batch) -> ChainState:
        store = self.st.store
        heads: dict[str, ChainHead] = {}
        for m in members if members is not None else (env.sender, self.st.id):
            row = store.head(env.channel, m)
            if row is not None:
                heads[m] = ChainHead(row.seq, row.hash, row.ts)
        facts = Facts.of(env)
        wanted = delivery.lookups(facts, self.st.id, heads)
        hashes: dict[tuple[str, int], bytes | None] = {}
        for s, q in wanted:
            h = b.below.get((env.channel, s, q))
            if h is None:
                h = store.hash_at(env.channel, s, q)
                if h is not None:  # a hole may still be filled within the batch
                    b.below[(env.channel, s, q)] = h
            hashes[(s, q)] = h
        return ChainState(self.st.id, members, heads, hashes)

    def _checked_body(
        self,
        a: Arrival,
        events: tuple[channels.Event, ...],
        state: channels.ChannelState | None,
    ) -> dict[str, Any]:
        """§6 steps 9–13 for an envelope the rules accept: its body, or a refusal."""
        env = a.env
        assert env is not None
        if a.opened is None and a.open_error is None:
            self._open_into(a)
        if a.open_error is not None:
            raise a.open_error
        assert a.opened is not None
        body = a.opened.body
        records.check(body)
        members = env.recipients | {env.sender}
        if state is None:
            if body.get("type") != "channel.propose" or sorted(members) != body.get("members"):
                raise RejectedInput(
                    Code.UNKNOWN_CHANNEL, "the first envelope must propose the channel"
                )
            # Every member must be a peer here: a channel with a station whose key this one
            # does not hold could be neither verified nor exported (docs/protocol.md §6 step 11).
            store = self.st.store
            strangers = [m for m in members if m != self.st.id and store.get_peer(m) is None]
            if strangers:
                raise RejectedInput(
                    Code.UNKNOWN_MEMBER,
                    f"the proposal names {', '.join(strangers)}, not a known peer of this"
                    " station; add it (`parley peer add`) and the proposal is accepted when"
                    " offered again",
                )
        else:
            # Judge the envelope by what its sender knew (its causal past), not by what we know
            # now: a concurrent suspend elsewhere must not make a legitimately sent one illegal.
            cut = {m: r.seq for m, r in env.seen.items()} | {env.sender: env.seq - 1}
            past = channels.in_cut(env.channel, events, cut, whole=state)
            if channels.is_control(body):
                ev = channels.Event(env.sender, env.seq, env.ts, a.hash, body, cut)
                try:
                    channels.apply(past, ev, env.channel)
                except Conflict as exc:
                    raise RejectedInput(Code.CHANNEL_NOT_OPEN, exc.message) from exc
            elif past is None or not past.is_open:
                raise RejectedInput(
                    Code.CHANNEL_NOT_OPEN, "the channel was not open for the sender"
                )
        return body

    def _store(self, a: Arrival, body: dict[str, Any], now: int, new_channel: bool) -> None:
        """§6 step 14: store the envelope and its body and tell the observers."""
        st, env = self.st, a.env
        assert env is not None and a.opened is not None
        if new_channel:  # its proposal (steps 11): the channel is new here
            st.store.add_channel(env.channel, now)
        st.store.insert_envelope(
            env.channel, env.sender, env.seq, env.hash, a.raw, env.ts, env.prec, now
        )
        st.store.put_body(
            env.hash, str(body.get("type", "")), a.opened.body_bytes.decode(), a.opened.salt
        )
        st.notify_received(env, a.hash, body)

    # --- held aside ------------------------------------------------------------------------------
    def _hold(self, a: Arrival, state: channels.ChannelState | None, expected: int) -> None:
        """Keep an envelope that is ahead of its chain until its predecessors arrive (they are
        applied in order then). A FLASH one is opened now and shown early, marked as such: the
        transcript order is unchanged, but a person sees it ahead of the backlog."""
        st, env = self.st, a.env
        assert env is not None
        early: str | None = None
        if env.prec == "FLASH" and state is not None and state.is_open:
            if a.opened is None and a.open_error is None:
                self._open_into(a)
            try:
                if a.opened is not None:
                    records.check(a.opened.body)
                    early = canonical(a.opened.body).decode()
            except ParleyError:
                early = None
        lim = st.cfg.limits
        count, size = st.store.held_usage(env.sender)
        adm = delivery.admit_hold(
            count, size, len(a.raw),
            delivery.HoldLimits(lim.held_per_peer, lim.held_bytes_per_peer),
            env.sender in self.held_full,
        )  # fmt: skip
        if adm.alarm:
            self.held_full.add(env.sender)
            st.alarm(
                "held_limit", "high", env.sender,
                f"{st.peer_name(env.sender)} sent more envelopes ahead of their chains"
                f" than this station holds ({count} held, {size} bytes; limits"
                f" {lim.held_per_peer}, {lim.held_bytes_per_peer} bytes); the rest are"
                " asked for again instead",
            )  # fmt: skip
        if adm.rearm:
            self.held_full.discard(env.sender)
        if not adm.keep:
            return
        kept = st.store.hold(
            env.channel, env.sender, env.seq, env.hash, a.raw, env.prec, early, st.clock(),
            HOLD_LIMIT,
        )  # fmt: skip
        if kept and early is not None:
            st.alarm(
                "flash", "high", env.channel,
                f"FLASH from {st.peer_name(env.sender)} arrived ahead of "
                f"{env.seq - expected} earlier message(s); shown early, applied in order",
            )  # fmt: skip

    def _drain_held(self, b: _Batch) -> None:
        """Apply held envelopes whose predecessors are now here, until nothing moves."""
        store = self.st.store
        progress = True
        while progress:
            progress = False
            for ch in sorted(b.channels):
                held = {(s, q): raw for s, q, raw in store.held_next(ch)}
                if not held:
                    continue  # the usual case: no chain heads to read
                tops = store.heads(ch)
                for sender, seq in delivery.ready(held, tops):
                    if seq > store.head_seq(ch, sender) + 1:
                        continue  # an earlier one of this chain stayed held in this round
                    res, d = self._apply(self.prepare(held[(sender, seq)], b.keys), b)
                    if delivery.stays_held(d):
                        continue
                    store.drop_held(ch, sender, seq)
                    if d is not None and Effect.RECEIPT in d.effects:
                        b.touched.add((ch, sender))
                    if res.status is Verdict.ACCEPT:
                        progress = True
