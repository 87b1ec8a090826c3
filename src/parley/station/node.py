"""The station: wires identity, store, protocol and domain into the operations people and peers use.

Send path:    operator action -> domain body -> protocol.seal -> one transaction (envelope, body,
              outbox rows, idempotency key) -> "queued" is reported only after the commit.
Receive path: bytes -> protocol.parse/verify/decide -> domain checks -> one transaction
              (envelope, body, evidence, alarms) -> a signed receipt for what is now held.
Every check runs before anything is stored; a rejection changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.domain import channels, records, retries
from parley.errors import (
    Code,
    Conflict,
    Forbidden,
    LocalError,
    NotFound,
    ParleyError,
    RejectedInput,
)
from parley.protocol import crypto, handover
from parley.protocol.checkpoint import CHECKPOINT, COSIGN
from parley.protocol.encoding import b64e, canonical
from parley.protocol.envelope import (
    ZERO_HASH,
    Envelope,
    RecipientKey,
    Ref,
    SealBatch,
    open_envelope,
    parse_envelope,
    seal,
)
from parley.protocol.identity import (
    Invitation,
    Prekey,
    check_current,
    fingerprint,
    make_invitation,
    parse_prekey,
    sign_prekey,
    station_id,
)
from parley.protocol.receipt import Receipt, sign_receipt
from parley.station import peerstate
from parley.station.answers import Answers
from parley.station.config import Config
from parley.station.integrity import Checked, Integrity
from parley.station.receiving import Receiver, ReceiveResult
from parley.station.users import User
from parley.station.writer import Writer
from parley.store import integrity as integrity_db
from parley.store.base import EVIDENCE_LIMIT, EnvelopeRow, Evidence, PeerRow, SqlStore
from parley.store.cache import LRU, SEEN, STATES

Clock = Callable[[], int]
MAX_BATCH = 1000  # messages in one send_many
DIGEST_PAGE = 1000  # envelopes checked at a time for a transcript digest


@dataclass(frozen=True)
class Accepted:
    """A body just committed to a channel's transcript, ours (local) or a peer's."""

    channel: str
    sender: str
    seq: int
    hash: str  # base64url envelope hash
    ts: int
    prec: str
    body: dict[str, Any]
    local: bool


Observer = Callable[["Station", Accepted], None]


@dataclass
class Message:
    channel: str
    sender: str
    sender_name: str
    seq: int
    hash: str
    ts: int
    stored: int
    prec: str
    body: dict[str, Any]
    verified: bool = True  # the integrity check (station/integrity.py) passed in this read
    extra: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # why the check failed; the body is then withheld ({})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channel": self.channel,
            "sender": self.sender,
            "sender_name": self.sender_name,
            "seq": self.seq,
            "hash": self.hash,
            "ts": self.ts,
            "stored": self.stored,
            "precedence": self.prec,
            "body": self.body,
            "signature": "verified" if self.verified else "failed",
        }
        if not self.verified:
            out["problem"] = self.problem
        if self.extra.get("early"):
            out.update(early=True, awaiting=self.extra["awaiting"])
        return out


def queued(row: EnvelopeRow, created: bool) -> dict[str, Any]:
    """What a send answers once its envelope is committed to the outbox."""
    return {
        "channel": row.channel,
        "seq": row.seq,
        "hash": b64e(row.hash),
        "status": "queued",
        "created": created,
    }


class Station:
    def __init__(
        self, cfg: Config, store: SqlStore, identity: crypto.SigningKey, clock: Clock
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.identity = identity
        self.clock = clock
        # After an identity hand-over the id stays the first key's (docs/protocol.md §3.6).
        self.id = store.get_meta("station_id") or station_id(identity.public)
        # An identity rotation keeps the new key on disk (boot.py): called with it before the
        # hand-over is committed, with None after (config.stage_identity).
        self.stage_identity: Callable[[crypto.SigningKey | None], None] = lambda key: None
        self._epochs: dict[str, tuple[tuple[str, ...], list[handover.Epoch]]] = {}
        self.on_queued: Callable[[], None] = lambda: None
        self.on_alarm: Callable[[str, str], None] = lambda kind, msg: None
        # Called with (station, id, kind, severity, subject, message, ref) for each alarm raised,
        # in the caller's transaction when there is one (station/notify.py queues notifications).
        self.alarm_hooks: list[Callable[..., None]] = []
        # (sender, kind) pairs whose evidence reached EVIDENCE_LIMIT and were alarmed for.
        self._evidence_full: set[tuple[str, str]] = set()
        # Called when a link's recorded contact failed or its state changed (the link watch).
        self.on_link: Callable[[str], None] = lambda peer: None
        # Called inside the transaction that stores a body (sent or received). An observer may
        # append follow-up envelopes (a cosignature, an automatic answer) or raise an alarm; an
        # exception rolls the whole transaction back.
        self.observers: list[Observer] = []
        # Periodic work (check calls due, deadlines overdue, checkpoints): run by tick(now).
        self.scheduled: list[Callable[[Station, int], None]] = []
        # chain_root(channel, sender, size): the Merkle root of that chain 1..size as held, which
        # receipts carry and are checked against (station/checkpoints keeps the trees).
        self.chain_root: Callable[[str, str, int], bytes | None] = lambda ch, s, n: None
        # `seen` of stored envelopes that folds order (control, talks, crises …), by hash: they
        # never change, and every received envelope re-derives its channel's state from them.
        # Bounded: talks and crises fold their whole thread, so a long-lived station would
        # otherwise keep one map per envelope it ever ordered.
        self._seen: LRU[bytes, dict[str, int]] = LRU(SEEN)
        # Our prekeys' public halves by key id (public: nothing to erase with the secret).
        self._kem_publics: LRU[str, bytes] = LRU(64)
        # Channel -> (store epoch, control events, state): see _control.
        self._states: LRU[
            str, tuple[int, tuple[channels.Event, ...], channels.ChannelState | None]
        ] = LRU(STATES)
        # (store epoch, every channel's state): see channel_states.
        self._listed: tuple[int, tuple[channels.ChannelState, ...]] | None = None
        # Every stored body is checked against its signed envelope when it is read.
        self.integrity = Integrity(self)
        # Sends arriving together share one durable commit.
        self.writer = Writer(store)
        # Answers of the reads many people poll, kept while the store is unchanged.
        self.answers = Answers(store, clock)
        self.receiver = Receiver(self)

    def tick(self) -> None:
        """Run every scheduled task once at the current time. A failing task is an alarm, not a
        reason to skip the others."""
        for task in self.scheduled:
            try:
                task(self, self.clock())
            except ParleyError as exc:
                self.alarm("task", "warning", getattr(task, "__name__", "task"), exc.message)

    # --- identity and keys -----------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity.public)

    def epochs(self, station: str) -> list[handover.Epoch]:
        """The identity keys of `station` (ours or a peer's, in any state) and when each may
        sign, following its hand-overs from its first key (§3.6). [] for an unknown station."""
        records = tuple(self.store.handovers(station))
        hit = self._epochs.get(station)
        if hit is not None and hit[0] == records:
            return hit[1]
        chain = [handover.parse_handover(r.encode()) for r in records]
        if station == self.id:
            current = self.identity.public
        else:
            p = self.store.peer_record(station)
            if p is None:
                return []
            current = p.identity
        genesis = chain[0].old if chain else current
        epochs = handover.follow(genesis, station, chain)
        if epochs[-1].public != current:
            raise RuntimeError(f"the hand-overs held for {station} do not end at its key")
        self._epochs[station] = (records, epochs)
        return epochs

    def signer_keys(self, station: str, ts: int) -> list[bytes]:
        """The keys that may have signed what `station` dated `ts` (ts < 0: any of its keys)."""
        epochs = self.epochs(station)
        if ts < 0:
            return [e.public for e in reversed(epochs)]
        return handover.signers_at(epochs, ts)

    def rotate_prekeys(self) -> list[str]:
        """Make a new prekey when the newest is older than the rotation period; erase private
        halves whose validity ended more than the grace period ago. Returns erased key ids."""
        now = self.clock()
        t = self.cfg.timings
        newest = self.store.newest_prekey_start()
        if newest is None or now - newest >= t.prekey_rotation_ms:
            kem = crypto.KemKey.generate()
            # Valid for one rotation plus the grace period, so late senders still reach us.
            pk = sign_prekey(
                self.identity, kem.public, now, now + t.prekey_rotation_ms + t.prekey_grace_ms,
                self.id,
            )  # fmt: skip
            self.store.add_prekey(
                pk.kid, pk.public, kem.secret, pk.not_before, pk.not_after, json.dumps(pk.to_json())
            )
        # A prekey is valid for one rotation plus the grace period; its private half is erased
        # as soon as that window ends, so nothing on disk opens envelopes older than that.
        erased = self.store.delete_prekey_secrets(now, now)
        if erased:
            self.store.audit("station", "prekeys.erased", {"kids": erased}, now)
        return erased

    def prekeys(self) -> list[dict[str, Any]]:
        return self.store.prekey_records(self.clock())

    def invitation(self) -> Invitation:
        """Signed by the current key; after a rotation it carries the hand-over chain from the
        key our id derives from (§3.4, §3.6), so a new peer can be admitted after it."""
        chain = tuple(e.handover for e in self.epochs(self.id) if e.handover is not None)
        recs = [parse_prekey(p, self.identity.public, self.id) for p in self.prekeys()[:4]]
        addresses = [self.cfg.url] if self.cfg.inbound else []  # no address: peers wait for pulls
        return make_invitation(
            self.identity, self.cfg.name, self.cfg.lang, recs, addresses, self.clock(), chain
        )

    # --- peers -----------------------------------------------------------------------------------
    def add_peer(self, inv: Invitation, actor: str = "admin") -> PeerRow:
        if inv.station == self.id:
            raise LocalError(Code.INVALID_REQUEST, "that invitation is this station's own")
        old = self.store.peer_record(inv.station)
        if old is not None and old.revoked is not None:
            raise LocalError(
                Code.KEY_REVOKED,
                f"the key of {old.name} ({inv.station}) was revoked here; it cannot be added again",
            )
        now = self.clock()
        live = check_current(inv, now, self.cfg.timings.skew_ms)
        fresh = self._new_handovers(inv)
        row = PeerRow(
            inv.station, inv.name, inv.lang, inv.identity, list(inv.addresses),
            [p.to_json() for p in live], now,
        )  # fmt: skip
        with self.store.tx():
            for h in fresh:
                self.store.add_handover(inv.station, h.seq, h.raw.decode(), now)
            self.store.add_peer(row)
            detail: dict[str, Any] = {"peer": inv.station, "name": inv.name}
            if inv.handovers:
                detail["handovers"] = len(inv.handovers)
            if old is not None and old.removed is not None:
                detail["requeued"] = self._requeue(inv.station)
            self.store.audit(actor, "peer.add", detail, row.added)
        return row

    def _requeue(self, peer: str) -> int:
        """A removed peer added again gets what was dropped from its queue at the removal: our
        envelopes on every channel it is a member of that it never had an outbox row for, in
        chain order (docs/protocol.md §3.5). Its receipts then settle what it already holds."""
        member_of = [s.channel for s in self.channel_states() if peer in s.members]
        return self.store.requeue(peer, self.id, member_of)

    def _new_handovers(self, inv: Invitation) -> list[handover.Handover]:
        """The hand-overs of `inv` this station does not hold yet. Those it holds must be the
        invitation's first ones, the very same records: an invitation that knows fewer (one
        written before a rotation we followed) or other ones would put back a key the station
        handed over."""
        held = [handover.parse_handover(r.encode()) for r in self.store.handovers(inv.station)]
        if list(inv.handovers[: len(held)]) != held:
            raise RejectedInput(
                Code.BAD_INVITATION,
                f"invalid invitation: this station holds {len(held)} hand-over(s) of "
                f"{inv.station} that the invitation does not carry (it is older than the "
                "peer's current key, or not the peer's); ask the peer for a new one",
            )
        return list(inv.handovers[len(held) :])

    def update_peer_prekeys(self, peer: str, records: list[dict[str, Any]]) -> None:
        p = self._peer(peer)
        parsed = [parse_prekey(r, p.identity, peer) for r in records[:8]]
        self.store.set_peer_prekeys(peer, [k.to_json() for k in parsed])

    def _peer(self, station: str) -> PeerRow:
        p = self.store.get_peer(station)
        if p is None:
            if self.store.peer_record(station) is not None:
                raise peerstate.stranger(self.store, station)
            raise NotFound(
                Code.NOT_FOUND, f"{station} is not a known peer; add it with `parley peer add`"
            )
        return p

    def peer_id(self, ref: str) -> str:
        """The station id a person means by `ref`: a peer's id, or its name (exactly, else
        ignoring case) when exactly one peer has it. Operators know peers by name; the
        protocol knows them by id. Every use case that takes a peer from a person calls this."""
        if self.store.get_peer(ref) is not None:
            return ref
        peers = self.store.list_peers()
        found = [p for p in peers if p.name == ref] or [
            p for p in peers if p.name.casefold() == ref.strip().casefold()
        ]
        if len(found) == 1:
            return found[0].station
        if found:
            ids = ", ".join(p.station for p in found)
            raise LocalError(
                Code.INVALID_REQUEST, f"{len(found)} peers are named {ref!r} ({ids}): use the id"
            )
        names = ", ".join(f"{p.name} ({p.station})" for p in peers[:20]) or "none yet"
        raise NotFound(Code.NOT_FOUND, f"{ref!r} is not a known peer; known peers: {names}")

    def station_id(self, ref: str) -> str:
        """A member named by a person: this station (id, name or "me") or a peer (`peer_id`)."""
        return self.id if ref in (self.id, self.cfg.name, "me") else self.peer_id(ref)

    def peer_name(self, station: str) -> str:
        if station == self.id:
            return self.cfg.name
        # Removed and revoked peers keep their names (store.peer_names holds every peer).
        return self.store.peer_names().get(station, station)

    def recipient_key(self, station: str, now: int) -> RecipientKey:
        """The key an envelope sealed at `now` uses for member `station`: its newest usable
        prekey."""
        p = self._peer(station)
        best: Prekey | None = None
        for rec in p.prekeys:
            try:
                pk = parse_prekey(rec, p.identity, station)
            except RejectedInput:
                continue  # signed by a key the peer handed over since: its new records replace it
            # A peer's clock may run ahead of ours by up to the skew window: its newest key is
            # usable as soon as it would be at the peer.
            usable = pk.not_before <= now + self.cfg.timings.skew_ms and now <= pk.not_after
            if usable and (best is None or pk.not_before > best.not_before):
                best = pk
        if best is None:
            raise LocalError(
                Code.UNKNOWN_KEY,
                f"no valid key for {p.name}; refresh its keys (a new invitation or `peer refresh`)",
            )
        return RecipientKey(station, best.kid, best.public)

    # --- channels --------------------------------------------------------------------------------
    def _events(self, channel: str) -> list[channels.Event]:
        return list(self._control(channel)[0])

    def _control(
        self, channel: str
    ) -> tuple[tuple[channels.Event, ...], channels.ChannelState | None]:
        """A channel's control events and the state they derive, kept in memory until the
        store's epoch moves (a control body stored, a rollback, another worker's commit:
        store/cache.py); re-deriving them on every send was a fifth of a busy station's time."""
        store = self.store
        with store.lock:  # no other thread's transaction commits between the check and the fill
            epoch = store.cache_epoch()
            hit = self._states.get(channel)
            if hit is not None and hit[0] == epoch:
                return hit[1], hit[2]
            rows = self.integrity.verified_bodies(store.control_events(channel))
            events = tuple(self._event(e, body) for e, body in rows)
            state = channels.derive(channel, events)
            if store.cache_epoch() == epoch:  # the check itself may have recorded findings
                self._states.put(channel, (epoch, events, state))
            return events, state

    def _event(self, e: EnvelopeRow, body: dict[str, Any]) -> channels.Event:
        seen = self._seen.get(e.hash)
        if seen is None:
            seen = {m: r.seq for m, r in parse_envelope(e.raw).seen.items()}
            self._seen.put(e.hash, seen)
        return channels.Event(e.sender, e.seq, e.ts, b64e(e.hash), body, seen)

    def causal(self, rows: Iterable[tuple[EnvelopeRow, Mapping[str, Any]]]) -> list[channels.Event]:
        """One channel's stored bodies in the causal order every member computes alike (stored
        order differs between members when envelopes cross)."""
        return channels.causal_order(self._event(e, dict(b)) for e, b in rows)

    def channel_state(self, channel: str) -> channels.ChannelState:
        state = self._control(channel)[1]
        if state is None:
            raise NotFound(Code.NOT_FOUND, f"no channel {channel}")
        return state

    def visible(self, state: channels.ChannelState, user: User) -> bool:
        """A back channel exists only for the users its proposal names for this station, while
        they hold the representative role."""
        if state.kind != "backchannel":
            return True
        return user.name in state.representatives.get(self.id, ()) and user.has("representative")

    def named_on_backchannel(self, name: str) -> bool:
        """Whether any back channel, in any state, names user `name` for this station (then
        nobody else may set their password: station/users.py)."""
        return any(
            s.kind == "backchannel" and name in s.representatives.get(self.id, ())
            for s in self.channel_states()
        )

    def guard(self, channel: str, user: User) -> channels.ChannelState:
        """The channel's state if `user` may see it; Forbidden otherwise."""
        state = self.channel_state(channel)
        if not self.visible(state, user):
            raise Forbidden(
                Code.FORBIDDEN, "this back channel is readable only by its named representatives"
            )
        return state

    def hidden(self, user: User) -> frozenset[str]:
        """The back channels `user` is not named on."""
        return frozenset(s.channel for s in self.channel_states() if not self.visible(s, user))

    def channel_states(self, user: User | None = None) -> list[channels.ChannelState]:
        """Every channel; with `user`, only those that user may see.

        Every read of the operator API asks (which back channels to hide from its caller), so
        the list is kept until the store's epoch moves, as each state is (`_control`): a
        channel has a state only once a control body is stored, and storing one moves it."""
        store = self.store
        with store.lock:
            epoch = store.cache_epoch()
            if self._listed is not None and self._listed[0] == epoch:
                states = self._listed[1]
            else:
                states = tuple(
                    st for ch in store.list_channels() if (st := self._control(ch)[1]) is not None
                )
                if store.cache_epoch() == epoch:
                    self._listed = (epoch, states)
        return [st for st in states if user is None or self.visible(st, user)]

    def propose_channel(
        self, kind: str, title: str, peers: list[str], actor: str = "operator", **extra: Any
    ) -> str:
        for p in peers:
            self._peer(p)
        channel = b64e(crypto.random_bytes(16))
        while channel.startswith("-"):  # a command line would read it as an option
            channel = b64e(crypto.random_bytes(16))
        body = channels.propose_body(kind, title, [self.id, *peers], **extra)
        self.store.add_channel(channel, self.clock())
        with self.store.tx():
            self._append(channel, body, "ROUTINE", members=tuple(sorted({self.id, *peers})))
            self.store.audit(
                actor, "channel.propose", {"channel": channel, "kind": kind}, self.clock()
            )
        return channel

    def control(
        self, channel: str, kind: str, reason: str = "", actor: str = "operator"
    ) -> Envelope:
        state = self.channel_state(channel)
        target = state.pending if kind == "consent" else ""
        body = channels.control_body(kind, target, reason)
        ev = channels.Event(self.id, 1 << 50, self.clock(), "", body)
        channels.apply(state, ev, channel)  # raises Conflict for an illegal move
        peerstate.check_writable(self.store, self.id, state)
        with self.store.tx():
            env = self._append(channel, body, "IMMEDIATE", members=state.members)
            self.store.audit(actor, f"channel.{kind}", {"channel": channel}, self.clock())
        return env

    # --- sending ---------------------------------------------------------------------------------
    def send(
        self,
        channel: str,
        body: dict[str, Any],
        prec: str = "ROUTINE",
        idempotency_key: str = "",
        actor: str = "operator",
    ) -> tuple[EnvelopeRow, bool]:
        """Seal and queue a content body. Returns (row, created); a repeated idempotency key
        returns the envelope it first made instead of a second copy, or `conflict` if it came
        with another request then (domain/retries.py). Sends arriving together
        share one durable commit (station/writer.py); this returns once it is done."""
        if len(idempotency_key) > 128:
            raise LocalError(Code.INVALID_REQUEST, "Idempotency-Key is at most 128 characters")
        return self.writer.run(lambda: self._send(channel, body, prec, idempotency_key, actor))

    def _send(
        self, channel: str, body: dict[str, Any], prec: str, idempotency_key: str, actor: str
    ) -> tuple[EnvelopeRow, bool]:
        # Inside the writer's transaction: nothing else sends between the claim and the send,
        # so the key names the seq this send takes (and a failed send undoes the claim).
        if idempotency_key:
            head = self.store.head(channel, self.id)
            want = head.seq + 1 if head else 1
            seen = self.store.claim(
                _scoped(actor, channel, idempotency_key), channel, want, self.clock(),
                retries.asked_for(idempotency_key),
            )  # fmt: skip
            if seen is not None:
                _same_request(seen[3], idempotency_key)
                first = self.store.envelopes(seen[0], self.id, seen[1] - 1, 1)
                return first[0], False
        state = self._sendable(channel)
        _, row = self._queue(channel, body, prec, members=state.members)
        if idempotency_key and row.seq != want:
            raise RuntimeError(f"the idempotency key was claimed for seq {want}, not {row.seq}")
        self.store.audit(actor, "send", {"channel": channel, "seq": row.seq}, self.clock())
        return row, True

    def send_many(
        self,
        channel: str,
        items: Sequence[tuple[dict[str, Any], str]],
        idempotency_key: str = "",
        actor: str = "operator",
    ) -> tuple[list[EnvelopeRow], bool]:
        """Seal and queue several (body, precedence) in order, in one transaction: one durable
        commit for all of them, and all or none. A repeated idempotency key returns the
        envelopes it first made, or `conflict` as `send`."""
        if not 1 <= len(items) <= MAX_BATCH:
            raise LocalError(Code.INVALID_REQUEST, f"a batch holds 1..{MAX_BATCH} messages")
        if len(idempotency_key) > 120:
            raise LocalError(Code.INVALID_REQUEST, "Idempotency-Key is at most 120 characters here")
        return self.writer.run(
            lambda: self._send_many(channel, items, idempotency_key, actor), weight=len(items)
        )

    def _send_many(
        self,
        channel: str,
        items: Sequence[tuple[dict[str, Any], str]],
        idempotency_key: str,
        actor: str,
    ) -> tuple[list[EnvelopeRow], bool]:
        scoped = _scoped(actor, channel, idempotency_key)
        keys = [f"{scoped}#{i}" for i in range(len(items))] if idempotency_key else []
        if keys:
            done = self._sent_before(keys, idempotency_key)
            if done is not None:
                return done, False
        state = self._sendable(channel)
        made = []
        batch = SealBatch()  # one ephemeral key for the request's envelopes (§4.5)
        for body, prec in items:
            _, row = self._queue(channel, body, prec, members=state.members, batch=batch)
            made.append(row)
        if keys:
            now = self.clock()
            asked = retries.asked_for(idempotency_key)
            if made[-1].seq - made[0].seq == len(made) - 1:  # one run: one key names it
                self.store.remember(keys[0], channel, made[0].seq, now, len(made), asked)
            else:
                for k, row in zip(keys, made, strict=True):
                    self.store.remember(k, channel, row.seq, now, 1, asked)
        self.store.audit(actor, "send", {"channel": channel, "messages": len(items)}, self.clock())
        return made, True

    def _sent_before(self, keys: list[str], key: str) -> list[EnvelopeRow] | None:
        """The envelopes a batch with these keys (made of `key`) made before, if it was sent:
        one key names the run (its first seq and count), or, from before migration 23, one key
        each. A conflict if `key` came with another request then."""
        first = self.store.idempotent(keys[0])
        if first is None:
            return None
        channel, seq, n, request = first
        _same_request(request, key)
        if n > 1:
            return self.store.envelopes(channel, self.id, seq - 1, n)
        rows = []
        for k in keys:
            seen = self.store.idempotent(k)
            if seen is not None:
                rows += self.store.envelopes(seen[0], self.id, seen[1] - 1, 1)
        return rows

    def _sendable(self, channel: str) -> channels.ChannelState:
        state = self.channel_state(channel)
        if self.id not in state.members:
            raise Forbidden(Code.NOT_A_MEMBER, "this station is not a member of that channel")
        if not state.is_open:
            raise Conflict(Code.CHANNEL_NOT_OPEN, f"the channel is {state.state}, not open")
        peerstate.check_writable(self.store, self.id, state)
        return state

    def _append(
        self, channel: str, body: dict[str, Any], prec: str, members: tuple[str, ...]
    ) -> Envelope:
        """Seal the next envelope of our chain and commit it with its outbox rows (caller's tx)."""
        return self._queue(channel, body, prec, members)[0]

    def _queue(
        self,
        channel: str,
        body: dict[str, Any],
        prec: str,
        members: tuple[str, ...],
        batch: SealBatch | None = None,
    ) -> tuple[Envelope, EnvelopeRow]:
        """`_append`, also answering the stored row (built here: reading it back costs a query).
        `batch`: what the envelopes sealed with this one share (else its own)."""
        records.check(body)
        now = self.clock()
        head = self.store.head(channel, self.id)
        if head is not None:
            now = max(now, head.ts)  # our chain's times never go backwards, even if the clock does
        others = [m for m in members if m != self.id]
        seen: dict[str, Ref] = {}
        for m in others:
            h = self.store.head(channel, m)
            if h is not None:
                seen[m] = Ref(h.seq, h.hash)
        try:
            body_bytes = canonical(body)  # sealed and stored: encoded once
            env, salt = self._seal(body, channel, head, seen, others, now, prec, body_bytes, batch)
        except RejectedInput as exc:
            raise LocalError(exc.code, f"cannot send: {exc.message}") from exc
        stored = self.clock()
        env_id = self.store.insert_envelope(
            channel, self.id, env.seq, env.hash, env.raw, env.ts, prec, stored
        )
        self.store.put_body(env.hash, str(body.get("type", "")), body_bytes.decode(), salt)
        for m in others:
            self.store.enqueue(channel, env.seq, m, env_id, prec)
        self._notify(Accepted(channel, self.id, env.seq, b64e(env.hash), env.ts, prec, body, True))
        self.on_queued()
        row = EnvelopeRow(
            env_id, channel, self.id, env.seq, env.hash, env.raw, env.ts, prec, stored
        )
        return env, row

    def _notify(self, acc: Accepted) -> None:
        for observer in self.observers:
            observer(self, acc)

    def _seal(
        self,
        body: dict[str, Any],
        channel: str,
        head: EnvelopeRow | None,
        seen: dict[str, Ref],
        others: list[str],
        now: int,
        prec: str,
        body_bytes: bytes | None = None,
        batch: SealBatch | None = None,
    ) -> tuple[Envelope, bytes]:
        return seal(
            body,
            identity=self.identity,
            sender=self.id,
            channel=channel,
            seq=head.seq + 1 if head else 1,
            prev=head.hash if head else ZERO_HASH,
            seen=seen,
            recipients=[self.recipient_key(m, now) for m in others],
            now_ms=now,
            prec=prec,
            body_bytes=body_bytes,
            batch=batch,
        )

    # --- receiving (station/receiving.py) -------------------------------------------------------
    def receive_batch(self, raws: list[bytes]) -> tuple[list[ReceiveResult], list[Receipt]]:
        """Apply a batch in one transaction; receipts cover the highest seq held per chain."""
        return self.receiver.batch(raws)

    def receive(self, raw: bytes) -> ReceiveResult:
        return self.receiver.receive(raw)

    def notify_received(self, env: Envelope, h: str, body: dict[str, Any]) -> None:
        """Tell the observers about a peer's body being stored (inside its transaction)."""
        self._notify(Accepted(env.channel, env.sender, env.seq, h, env.ts, env.prec, body, False))

    def _receipt(self, channel: str, sender: str) -> Receipt:
        held = self.store.head(channel, sender)
        assert held is not None
        mine = self.store.head(channel, self.id)
        return sign_receipt(
            self.identity, self.id, channel, sender, Ref(held.seq, held.hash),
            Ref(mine.seq, mine.hash) if mine else None, self.clock(),
            self.chain_root(channel, sender, held.seq),
        )  # fmt: skip

    def _open(
        self,
        env: Envelope,
        prekeys: dict[str, crypto.KemKey] | None = None,
        wrap_keys: crypto.WrapKeys | None = None,
    ) -> Any:
        """Open an envelope for us; `prekeys` and `wrap_keys` keep the keys read and derived for
        one batch (its caller drops them with the batch, so an erased prekey does not outlive
        it in memory)."""
        mine = env.key_for(self.id)
        assert mine is not None
        kem = self.prekey(mine.kid, prekeys)
        if kem is None:
            raise RejectedInput(
                Code.UNKNOWN_KEY,
                f"key {mine.kid} is unknown or erased; the sender needs our new keys",
            )
        return open_envelope(env, self.id, kem, wrap_keys)

    def prekey(
        self, kid: str, prekeys: dict[str, crypto.KemKey] | None = None
    ) -> crypto.KemKey | None:
        """Our prekey `kid` (None: unknown or erased), kept in `prekeys` as `_open` says."""
        kem = prekeys.get(kid) if prekeys is not None else None
        if kem is None:
            secret = self.store.prekey_secret(kid)
            if secret is None:
                return None
            # Its public half (a base-point multiplication) once per prekey, not per batch: a
            # batch drops its keys, and at low rates every batch holds one envelope.
            public = self._kem_publics.get(kid)
            if public is None:
                kem = crypto.KemKey(secret)
                self._kem_publics.put(kid, kem.public)
            else:
                kem = crypto.KemKey.with_public(secret, public)
            if prekeys is not None:
                prekeys[kid] = kem
        return kem

    def alarm(self, kind: str, severity: str, subject: str, message: str, ref: str = "") -> int:
        """Raise an alarm; `ref` names the event that will settle it (station/alarms.py)."""
        alarm_id = self.store.add_alarm(kind, severity, subject, message, self.clock(), ref)
        for hook in self.alarm_hooks:
            hook(self, alarm_id, kind, severity, subject, message, ref)
        self.on_alarm(kind, message)
        return alarm_id

    def keep_evidence(
        self, channel: str, sender: str, seq: int, kind: str, raw: bytes, held: bytes | None
    ) -> bool:
        """Keep a conflicting item as evidence; True if it is new and kept (the caller alarms).
        Beyond EVIDENCE_LIMIT of one sender and kind nothing more is kept, and one
        `evidence_limit` alarm says so (once per sender and kind while this process runs, at
        most EVIDENCE_LIMIT pairs: a hostile peer cannot grow the set either)."""
        got = self.store.add_evidence(channel, sender, seq, kind, raw, held, self.clock())
        full = (sender, kind)
        if (
            got is Evidence.FULL
            and full not in self._evidence_full
            and len(self._evidence_full) < EVIDENCE_LIMIT
        ):
            self._evidence_full.add(full)
            self.alarm(
                "evidence_limit", "high", sender,
                f"{EVIDENCE_LIMIT} pieces of {kind} evidence about {self.peer_name(sender)} are"
                " kept; further ones are not stored",
            )  # fmt: skip
        return got is Evidence.KEPT

    # --- reading ---------------------------------------------------------------------------------
    def messages(
        self, channel: str, after_id: int = 0, limit: int = 1000, user: User | None = None
    ) -> list[Message]:
        if user is None:
            self.channel_state(channel)
        else:
            self.guard(channel, user)
        rows = self.store.channel_events(channel, after_id, limit)
        return self.shown(self.integrity.check(rows, links=True))

    def _message(self, c: Checked, names: Mapping[str, str] | None = None) -> Message:
        e = c.row
        name = (names or {}).get(e.sender) or self.peer_name(e.sender)
        return Message(
            e.channel, e.sender, name, e.seq, b64e(e.hash), e.ts, e.stored,
            e.prec, c.body, c.ok, {"id": e.id}, c.problem,
        )  # fmt: skip

    def shown(self, checked: Iterable[Checked]) -> list[Message]:
        """Checked rows as messages, their senders named from one look at the peer table."""
        names = {**self.store.peer_names(), self.id: self.cfg.name}
        return [self._message(c, names) for c in checked]

    def inbox(self, limit: int = 200, user: User | None = None) -> list[Message]:
        visible = {st.channel for st in self.channel_states(user)}
        # Checkpoints and cosignatures are the stations' own bookkeeping, not for a person.
        rows = self.store.received(self.id, sorted(visible), limit, (CHECKPOINT, COSIGN))
        out = self.shown(self.integrity.check(rows, links=True))
        for ch, sender, seq, h, prec, text, received in self.store.early():
            if ch in visible:
                awaiting = seq - 1 - self.store.head_seq(ch, sender)
                body, problem = self.integrity.early(ch, sender, seq, h, prec, text)
                m = Message(
                    ch, sender, self.peer_name(sender), seq, b64e(h), received, received, prec,
                    body, not problem, {"id": 0, "early": True, "awaiting": awaiting}, problem,
                )  # fmt: skip
                out.append(m)
        out.sort(key=lambda m: (m.stored, m.extra["id"]))
        return out[-limit:]

    def transcript_digest(self, channel: str) -> dict[str, Any]:
        """A digest of every chain of the channel, identical at every member holding the same.
        Every envelope and body is checked first (station/integrity.py); if any fails, there is
        no digest (`digest` null, `integrity.ok` false): equal digests must never hide a store
        whose text was changed. Each chain is read up to its head when this starts, page by
        page in seq order, so memory does not grow with the channel."""
        self.channel_state(channel)
        heads = self.store.heads(channel)
        failed, problems = 0, list[dict[str, Any]]()
        digest = crypto.sha256(b"")
        for sender in sorted(heads):
            after = 0
            while after < heads[sender]:
                rows = self.store.chain_events(channel, sender, after, heads[sender], DIGEST_PAGE)
                if not rows:
                    break
                for c in self.integrity.check(rows, links=True):
                    digest = crypto.sha256(digest + c.row.hash)
                    if not c.ok:
                        failed += 1
                        if len(problems) < 20:
                            problems.append(
                                {"sender": sender, "seq": c.row.seq, "problem": c.problem}
                            )
                after = rows[-1][0].seq
        return {
            "channel": channel,
            "chains": heads,
            "digest": None if failed else b64e(digest),
            "integrity": {"ok": not failed, "failed": failed, "problems": problems},
        }

    def status(self, alarms: int | None = None) -> dict[str, Any]:
        """Delivery per peer; `alarms`, the open alarms to show (default: all of them)."""
        peers = []
        for p in self.store.list_peers():
            link = self.store.link(p.station)
            delivered, pending = self.store.outbox_counts(p.station)
            last = self.store.last_receipt(p.station)
            peers.append(
                {
                    "station": p.station,
                    "name": p.name,
                    "link": link.state if link else "unknown",
                    "since": link.since if link else None,
                    "rtt_ms": link.rtt_ms if link else None,
                    "last_error": link.last_error if link else None,
                    "delivered": delivered,
                    "pending": pending,
                    "last_receipt": {"channel": last[0], "seq": last[1], "ts": last[2]}
                    if last
                    else None,
                }
            )
        return {
            "station": self.id,
            "name": self.cfg.name,
            "lang": self.cfg.lang,
            "fingerprint": self.fingerprint,
            "peers": peers,
            "alarms": len(self.store.alarms()) if alarms is None else alarms,
            "selfaudit": integrity_db.last_pass(self.store),
        }


def _same_request(first: str, key: str) -> None:
    """Refuse `key` if it first came with another request (domain/retries.py)."""
    if not retries.same_request(first, key):
        raise Conflict(
            Code.CONFLICT,
            "this Idempotency-Key was first used with a different request (another text, "
            "precedence or route); a retry repeats its request exactly, and a new request needs "
            "a new key",
            field="Idempotency-Key",
        )


def _scoped(actor: str, channel: str, key: str) -> str:
    """An Idempotency-Key names a retry of one user's send on one channel: scoped so, one user's
    key never answers another's request, nor reveals an envelope of a channel (a back channel)
    the caller cannot read."""
    return f"{actor}\n{channel}\n{key}"
