"""The paths besides direct push — pull, relay, offline bundles — and what every path shares.

Every path ends in `Station.receive_batch` (all the checks of docs/protocol.md §6, one transaction
per batch), and every receipt, whatever brought it, goes through `apply_answer` (parsed, verified
against its signer, compared with what we sent, then the outbox rows it covers are delivered).
So an envelope that arrives over two paths is applied once and answered `duplicate` the second
time, and a receipt that arrives twice marks nothing twice.

- pull (§18.1): `serve_pull` answers a peer that accepts no inbound connections with what it has
  not receipted (its pending outbox rows, in order) and our receipts of its chains; the puller
  applies them and sends its answer (results and receipts) with its next pull request.
- relay (§18.2): `accept_relay` queues opaque envelope bytes for a destination after checking the
  sender's signature and that the destination is a recipient. The relay is not a recipient, so
  it cannot open them; it forgets them once the destination has answered (`relay_answered`) and
  keeps the destination's newest receipt per chain for the sender to collect with its next relay
  request (`apply_relay_response` on the sender's side).
- bundles (§18.3): `export_bundle` / `import_bundle` write and apply a signed file.
- prekeys: `merge_prekeys` learns a peer's newer signed prekeys from whichever path brings them.
- link state: `record_link` is the one writer of the links table (dispatcher and pull service).
- operators: `overview`, `set_route`, `export_bundle`, `import_bundle` and `bundle_log` take
  the acting user and check the role table first (`station.read`, `peer.route`,
  `bundle.export`, `bundle.import`).
- back channels in bundles: a bundle file names the channel of every envelope and receipt in
  it (routing metadata), and the person who exports it holds the file. So a user's export
  carries only the channels that user may see: a back channel's envelopes and receipts go into
  a bundle only when one of its named representatives exports it (with a role that may
  export), and otherwise wait, pending, for another path. Nothing in the export's answer counts
  or names what was left out. An import applies everything in the file (the file holder has it
  all anyway), but its report lists problems only on channels the importer may see. The bundle
  log (`bundle_log`, every station reader sees it) counts only envelopes and receipts on
  channels that are not back channels, so it reveals no back channel's traffic to people who
  never held the file; the file's own counts are in the exporter's and importer's answers.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from parley.errors import Code, LocalError, ParleyError, RejectedInput
from parley.protocol import crypto
from parley.protocol.bundle import (
    MAX_BUNDLE_ENVELOPES,
    join_frame,
    make_bundle,
    parse_bundle,
    verify_bundle,
)
from parley.protocol.delivery import Verdict
from parley.protocol.encoding import b64d, b64e, parse
from parley.protocol.envelope import parse_envelope, verify_signature
from parley.protocol.identity import parse_prekey
from parley.protocol.receipt import Receipt, divergence, parse_receipt, verify_receipt
from parley.station import peerstate
from parley.station.node import Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import paths as db
from parley.store.base import LinkRow
from parley.transport.base import MAX_CHAIN_RECEIPTS

log = logging.getLogger("parley.paths")

MAX_PULL = 512  # envelopes in one pull response (as in one push)
MAX_RELAY_QUEUE = 100_000  # envelopes a relay holds from one source for one destination
MAX_RELAY_BYTES = 256 * 1024 * 1024  # and their bytes
MAX_PREKEYS = 8  # prekey records kept per peer, and accepted from one message
MAX_REASON = 500  # characters of a peer's reason kept in an alarm


# --- receipts and answers (every path) -----------------------------------------------------------
def apply_answer(
    st: Station,
    peer: str,
    results: Sequence[dict[str, object]],
    receipts: Sequence[object],
    alarmed: set[str],
) -> int:
    """Apply a peer's answer to envelopes we sent it: its signed receipts mark our outbox rows
    delivered; a `gap` result re-queues the chain from the seq it asks for; a rejection is an
    alarm (once per envelope hash in `alarmed`). Returns how many outbox rows changed."""
    pub = st.store.get_peer(peer)
    if pub is None:
        return 0
    now = st.clock()
    good: list[Receipt] = []
    for raw in receipts:
        try:
            r = parse_receipt(raw)
            verify_receipt(r, pub.identity)
        except ParleyError as exc:
            log.warning("bad receipt from %s: %s", peer, exc.message)
            continue
        if r.by == peer and r.of == st.id:
            good.append(r)
    diverged: list[tuple[Receipt, str, bytes | None]] = []

    def settle() -> int:
        changed = 0
        for r in good:
            held = st.store.hash_at(r.channel, st.id, r.seq)
            ours = st.chain_root(r.channel, st.id, r.seq) if held == r.hash else None
            why = divergence(r, held, ours)
            if why:
                diverged.append((r, why, ours or held))
                continue
            changed += st.store.mark_delivered(r.channel, peer, r.seq, now)
            st.store.add_receipt(r.channel, r.of, r.by, r.seq, r.hash, r.ts, r.encode())
        return changed

    # The answer's receipts settle in one transaction, through the writer: it shares the
    # commit of whatever sends are waiting, instead of a commit per receipt (issue 14). Alone,
    # it does not wait for the disk: lost in a power cut, the rows are pushed again and the
    # peer answers them duplicate, with its receipts (a durable commit per answer held the
    # store's lock, and the sends behind it, once per message at 100 msg/s).
    progressed = st.writer.run(settle, durable=False, ahead=True) if good else 0
    for r, why, have in diverged:
        # The signed receipt is the evidence: the receiver's own word on what it holds.
        with st.store.tx():
            kept = st.keep_evidence(r.channel, st.id, r.seq, "divergence", r.encode(), have)
        if kept:
            st.alarm("divergence", "critical", peer, f"{pub.name}'s receipt on {r.channel}: {why}")
    for res in results:
        status, h = res.get("status"), res.get("hash")
        if not isinstance(h, str):
            continue
        expected, channel = res.get("expected_seq"), res.get("channel")
        if status == "gap" and isinstance(expected, int) and isinstance(channel, str):
            progressed += st.store.requeue_from(channel, peer, expected)
        elif status in ("rejected", "equivocation") and h not in alarmed and _ours(st, h):
            # Only for an envelope of ours, and the peer's words cut short: a hostile peer could
            # otherwise answer with any number of made-up hashes, each an alarm of its text.
            alarmed.add(h)
            code, why = str(res.get("code"))[:64], str(res.get("message"))[:MAX_REASON]
            st.alarm("rejected", "high", peer, f"{pub.name} rejected envelope {h}: {code}: {why}")
    return progressed


def _ours(st: Station, h: str) -> bool:
    try:
        row = st.store.envelope_by_hash(b64d(h, field="hash", size=32))
    except RejectedInput:
        return False
    return row is not None and row.sender == st.id


def peer_receipts(st: Station, peer: str) -> list[Receipt]:
    """Our receipt of each of `peer`'s chains we hold: what we tell it we have, on any path."""
    return [st._receipt(ch, peer) for ch in db.chains_of(st.store, peer)[:MAX_CHAIN_RECEIPTS]]


# --- link state ----------------------------------------------------------------------------------
def record_link(
    st: Station,
    peer: str,
    ok_state: str | None,
    error: str | None,
    rtt: int | None,
    defer: dict[str, LinkRow] | None = None,
) -> None:
    """Record a contact with `peer` (ok_state "up") or a failure. `down` needs
    `down_after_failures` consecutive failures. Changes are alarmed once, by the link watch
    (station/vigil.py), which also counts missed heartbeats and slow round trips; it runs at
    once (`Station.on_link`) after every failure and every change of state.

    `defer` (the dispatcher's, during a round): an answer that leaves an up link up with
    nothing but its time and round trip changed is put there instead of being written, and
    the dispatcher writes the round's rows in one transaction at its end (`write_links`): one
    durable commit per heartbeat, not one per peer. A peer's second such answer in a round
    (a drain's pushes) is written at once with the first, so the stored row is never more than
    one answer behind. Anything else is written at once, and drops a row of that peer waiting
    there."""
    now = st.clock()
    old = st.store.link(peer)
    slow = st.cfg.timings.degraded_rtt_ms or 1 << 62
    unchanged = (
        ok_state is not None and old is not None and old.state == ok_state and old.failures == 0
        and old.last_error is None and old.last_ok is not None
        and (rtt is None or (rtt > slow) == ((old.rtt_ms or 0) > slow))
    )  # fmt: skip
    if (
        unchanged
        and old is not None
        and 0 <= now - (old.last_ok or 0) < st.cfg.timings.heartbeat_ms // 4
    ):
        # Up, and recorded a moment ago: a durable commit per push would cost a busy link more
        # than its news is worth (the link watch judges heartbeats missed by whole intervals,
        # and a round trip crossing the slow threshold is still written at once).
        return
    failures = 0 if ok_state else (old.failures + 1 if old else 1)
    down = failures >= st.cfg.timings.down_after_failures
    state = ok_state or ("down" if down else "degraded")
    since = old.since if old and old.state == state else now
    row = LinkRow(
        peer, state, since,
        now if ok_state else (old.last_ok if old else None),
        error, failures, rtt if rtt is not None else (old.rtt_ms if old else None),
    )  # fmt: skip
    if defer is not None:
        # One contact per peer and round waits for the round's end; a second one writes both.
        # A round that drains a long backlog lasts many heartbeats, and the link watch judges
        # the stored row: deferring every push answer of it showed a link answering all along
        # as missing heartbeats, then down (issue 14: up → down → up in each long catch-up).
        if unchanged and peer not in defer:
            defer[peer] = row
            return
        defer.pop(peer, None)
    with st.store.soft_tx():  # the push's answer waits for this: no durable commit
        st.store.set_link(row)
    if not ok_state or old is None or old.state != state:
        st.on_link(peer)  # judged now, not at the next tick: detection within two heartbeats


def write_links(st: Station, rows: Sequence[LinkRow]) -> None:
    """The rows `record_link` deferred, in one transaction (they need no judgement)."""
    with st.store.soft_tx():
        for row in rows:
            st.store.set_link(row)


# --- prekeys -------------------------------------------------------------------------------------
def merge_prekeys(st: Station, peer: str, records: Sequence[object]) -> int:
    """Add `peer`'s signed prekey records we did not know (each verified against its identity;
    bad ones are skipped), drop expired ones, keep the newest MAX_PREKEYS. Returns how many
    were new."""
    p = st.store.get_peer(peer)
    if p is None:
        return 0
    now = st.clock()
    known = {str(r.get("kid")): r for r in p.prekeys}
    added = 0
    for rec in records[:MAX_PREKEYS]:
        try:
            pk = parse_prekey(rec, p.identity, peer)
        except RejectedInput as exc:
            log.warning("bad prekey record for %s: %s", peer, exc.message)
            continue
        if pk.kid not in known and pk.not_after >= now:
            known[pk.kid] = pk.to_json()
            added += 1
    if added:
        fresh = [r for r in known.values() if int(r.get("not_after", 0)) >= now]
        fresh.sort(key=lambda r: int(r.get("not_before", 0)), reverse=True)
        st.update_peer_prekeys(peer, fresh[:MAX_PREKEYS])
    return added


def newest_prekey_start(st: Station, peer: str) -> int | None:
    p = st.store.get_peer(peer)
    starts = [int(r.get("not_before", 0)) for r in p.prekeys] if p else []
    return max(starts) if starts else None


def prekeys_stale(st: Station, peer: str) -> bool:
    """True when the newest prekey we know of `peer` began more than half a rotation period
    ago: the peer has probably made a newer one, and sealing to the newest key is what keeps
    the forward-secrecy window one rotation wide."""
    newest = newest_prekey_start(st, peer)
    return newest is None or st.clock() - newest >= st.cfg.timings.prekey_rotation_ms // 2


# --- pull ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullRequest:
    """The body of POST /peer/v1/pull: the caller's answer to the previous pull response, how
    many envelopes it wants now, and its current prekeys (we cannot fetch them: no inbound)."""

    results: list[dict[str, Any]]
    receipts: list[Any]
    max: int = MAX_PULL
    prekeys: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"results": self.results, "receipts": self.receipts, "max": self.max}
        if self.prekeys:
            out["prekeys"] = self.prekeys
        return out


def parse_pull_request(body: bytes, limit: int) -> PullRequest:
    obj = parse(body, limit=limit, require_canonical=False) if body else {}
    if not isinstance(obj, dict) or set(obj) - {"results", "receipts", "max", "prekeys"}:
        raise RejectedInput(Code.MALFORMED, "pull: fields are results, receipts, max, prekeys")
    results, receipts = obj.get("results", []), obj.get("receipts", [])
    prekeys, most = obj.get("prekeys", []), obj.get("max", MAX_PULL)
    for name, value, cap in (
        ("results", results, MAX_PULL),
        ("receipts", receipts, MAX_CHAIN_RECEIPTS),
        ("prekeys", prekeys, MAX_PREKEYS),
    ):
        if not isinstance(value, list) or len(value) > cap:
            raise RejectedInput(Code.MALFORMED, f"pull: {name} is a list of at most {cap}")
        if not all(isinstance(v, dict) for v in value):
            raise RejectedInput(Code.MALFORMED, f"pull: {name} holds objects")
    if type(most) is not int or not 0 <= most <= MAX_PULL:
        raise RejectedInput(Code.MALFORMED, f"pull: max is an integer in [0, {MAX_PULL}]")
    return PullRequest(results, receipts, most, prekeys)


def serve_pull(st: Station, peer: str, req: PullRequest, alarmed: set[str]) -> bytes:
    """Apply the puller's answer, then frame (docs/protocol.md §9.5) up to `req.max` of its
    pending envelopes, in outbox order, after a header with our receipts of its chains."""
    if req.prekeys:
        merge_prekeys(st, peer, req.prekeys)
    apply_answer(st, peer, req.results, req.receipts, alarmed)
    batch = st.store.pending(peer, req.max + 1) if req.max else []
    more = len(batch) > req.max
    batch = batch[: req.max]
    receipts = [r.to_json() for r in peer_receipts(st, peer)]
    db.note_pull(st.store, peer, len(batch), st.clock())
    record_link(st, peer, "up", None, None)
    header = {"station": st.id, "receipts": receipts, "more": more}
    return join_frame(header, [b.raw for b in batch])


# --- relay ---------------------------------------------------------------------------------------
def accept_relay(st: Station, caller: str, to: str, raws: list[bytes]) -> dict[str, Any]:
    """Queue the caller's envelopes for `to` (the relay side of POST /peer/v1/relay).

    Each envelope must be signed by the caller and name `to` as a recipient; it is stored as the
    opaque bytes received, never opened. The answer has one result per envelope (`queued`, `held`
    when already queued, or `rejected` with a code) and the receipts the relay holds for the
    caller's chains, from every destination."""
    src = st.store.get_peer(caller)
    dest = st.store.get_peer(to)
    if src is None:
        raise peerstate.stranger(st.store, caller)
    if to == st.id:
        raise RejectedInput(Code.NO_ROUTE, "push envelopes for this station to /peer/v1/envelopes")
    if dest is None or not dest.addresses:
        raise RejectedInput(Code.NO_ROUTE, f"this relay has no address for {to}")
    n, size = db.relay_usage(st.store, caller, to)
    if n + len(raws) > MAX_RELAY_QUEUE or size + sum(map(len, raws)) > MAX_RELAY_BYTES:
        raise RejectedInput(
            Code.OVERSIZED,
            f"the relay holds {n} envelopes ({size} bytes) from you for {to}; at most"
            f" {MAX_RELAY_QUEUE} and {MAX_RELAY_BYTES} bytes",
        )
    now = st.clock()
    results: list[dict[str, Any]] = []
    queued = 0
    with st.store.tx():
        for raw in raws:
            h = crypto.sha256(raw)
            try:
                env = parse_envelope(raw)
                if env.sender != caller:
                    raise RejectedInput(
                        Code.NO_ROUTE, "a relay carries only envelopes signed by the caller"
                    )
                verify_signature(env, src.identity)
                if to not in env.recipients:
                    raise RejectedInput(Code.NOT_A_RECIPIENT, f"{to} is not a recipient")
            except RejectedInput as exc:
                results.append(
                    {"hash": b64e(h), "status": "rejected", "code": str(exc.code),
                     "message": exc.message}
                )  # fmt: skip
                continue
            added = db.relay_add(st.store, caller, to, env.hash, raw, now)
            queued += added
            results.append({"hash": b64e(h), "status": "queued" if added else "held"})
    if queued:
        st.on_queued()
    held = db.relay_receipts_for(st.store, caller, MAX_CHAIN_RECEIPTS)
    return {"results": results, "receipts": [json.loads(r) for r in held]}


def relay_answered(
    st: Station, dest: str, items: Sequence[db.RelayItem], receipts: Sequence[object]
) -> int:
    """The destination answered a push of relayed envelopes: forget them (a sender that has no
    receipt yet offers them again) and keep its receipts for their senders. Returns how many
    receipts were kept."""
    row = st.store.get_peer(dest)
    if row is None:
        return 0
    now = st.clock()
    kept = 0
    with st.store.tx():
        db.relay_remove(st.store, [i.id for i in items])
        for raw in receipts:
            try:
                r = parse_receipt(raw)
                verify_receipt(r, row.identity)
            except ParleyError as exc:
                log.warning("bad receipt from %s: %s", dest, exc.message)
                continue
            if r.by != dest or r.of == st.id:
                continue
            db.relay_keep_receipt(st.store, r.channel, r.of, r.by, r.seq, r.encode(), now)
            kept += 1
    return kept


def apply_relay_response(
    st: Station,
    via: str,
    results: Sequence[dict[str, object]],
    receipts: Sequence[object],
    alarmed: set[str],
) -> int:
    """The sender's side of a relay answer: receipts are signed by the destinations, so each is
    applied as that peer's answer; a refusal by the relay is an alarm once per envelope."""
    by: dict[str, list[object]] = {}
    for raw in receipts:
        if isinstance(raw, dict) and isinstance(raw.get("by"), str):
            by.setdefault(raw["by"], []).append(raw)
    progressed = sum(apply_answer(st, peer, [], rs, alarmed) for peer, rs in by.items())
    for res in results:
        h = res.get("hash")
        if res.get("status") == "rejected" and isinstance(h, str) and h not in alarmed:
            alarmed.add(h)
            st.alarm(
                "rejected", "high", via,
                f"relay {st.peer_name(via)} refused envelope {h}: {res.get('code')}: "
                f"{res.get('message')}",
            )  # fmt: skip
    return progressed


# --- routes ------------------------------------------------------------------------------------
def overview(st: Station, who: User) -> dict[str, Any]:
    """Inbound or pull-only, routes through relays, peers that pull from us, relay queues."""
    authorize(who, Action.STATION_READ)
    store = st.store
    pulls = []
    for p in store.list_peers():
        cur = db.pull_cursor(store, p.station)
        if cur is not None:
            pulls.append({"peer": p.station, "name": p.name, "last_pull": cur[0],
                          "served": cur[1]})  # fmt: skip
    return {
        "inbound": st.cfg.inbound,
        "routes": [route_json(st, x) for x in db.routes(store)],
        "pulls": pulls,
        "relaying": [
            {"dest": d, "name": st.peer_name(d), "queued": db.relay_count(store, d)}
            for d in db.relay_dests(store)
        ],
    }


def set_route(st: Station, peer: str, via: str | None, fallback: bool, who: User) -> dict[str, Any]:
    """Deliver to `peer` through the relay `via` (None: directly). With `fallback`, the relay
    is used only while the direct link is down or a direct push has just failed."""
    authorize(who, Action.PEER_ROUTE)
    peer = st.peer_id(peer)
    via = None if via is None else st.peer_id(via)
    if via is None:
        db.clear_route(st.store, peer)
    else:
        relay = st._peer(via)
        if via == peer:
            raise LocalError(Code.INVALID_REQUEST, "a peer cannot be its own relay")
        if not relay.addresses:
            raise LocalError(Code.INVALID_REQUEST, f"{relay.name} has no address to relay through")
        db.set_route(st.store, peer, via, fallback, st.clock())
    st.store.audit(
        who.name, "peer.route", {"peer": peer, "via": via, "fallback": fallback}, st.clock()
    )
    st.on_queued()
    found = db.route(st.store, peer)
    return {"peer": peer, "route": route_json(st, found) if found else None}


def route_json(st: Station, r: db.Route) -> dict[str, Any]:
    return {
        "peer": r.peer,
        "peer_name": st.peer_name(r.peer),
        "via": r.via,
        "via_name": st.peer_name(r.via),
        "fallback": r.fallback,
        "updated": r.updated,
    }


# --- bundles -------------------------------------------------------------------------------------
def _hidden(st: Station, who: User) -> set[str]:
    """The back channels `who` is not named on: none of their ids may reach `who`."""
    return {s.channel for s in st.channel_states() if not st.visible(s, who)}


def _back_channels(st: Station) -> set[str]:
    return {s.channel for s in st.channel_states() if s.kind == "backchannel"}


def export_bundle(st: Station, peer: str, who: User) -> tuple[bytes, dict[str, Any]]:
    """A signed bundle of what `peer` has not receipted, our receipts of its chains and our
    current prekeys, on the channels `who` may see (module rules). Exporting marks nothing
    delivered: the peer's receipts do that, whichever path brings them back."""
    authorize(who, Action.BUNDLE_EXPORT)
    peer = st.peer_id(peer)
    hidden = _hidden(st, who)
    # A hidden channel is left out whole, so every chain in the bundle stays gapless.
    rows = [r for r in st.store.pending(peer, MAX_BUNDLE_ENVELOPES) if r.channel not in hidden]
    receipts = [r.to_json() for r in peer_receipts(st, peer) if r.channel not in hidden]
    b = make_bundle(
        st.identity, st.id, peer, [r.raw for r in rows], receipts, st.prekeys()[:4], st.clock()
    )
    summary = {
        "peer": peer, "envelopes": len(rows), "receipts": len(receipts), "digest": b64e(b.digest),
    }  # fmt: skip
    private = _back_channels(st)
    shared_envs = sum(1 for r in rows if r.channel not in private)
    shared_rcpts = sum(1 for r in receipts if r["ch"] not in private)
    logged = summary | {"envelopes": shared_envs, "receipts": shared_rcpts}
    with st.store.tx():
        db.log_bundle(
            st.store,
            db.BundleLog("export", peer, b.digest, b.ts, shared_envs, shared_rcpts, st.clock(),
                         "exported"),
        )  # fmt: skip
        st.store.audit(who.name, "bundle.export", logged, st.clock())
    return b.encode(), summary


def may_import(st: Station, who: User) -> None:
    """Forbidden unless `who` may import bundles: checked before a bundle is even read."""
    authorize(who, Action.BUNDLE_IMPORT)


def import_bundle(st: Station, data: bytes, who: User) -> dict[str, Any]:
    """Verify a bundle completely (format, sender, addressee, signature) before anything is
    applied; then its receipts and envelopes go the way pushed ones go."""
    may_import(st, who)
    b = parse_bundle(data)
    if b.sender == st.id:
        raise RejectedInput(
            Code.NOT_A_RECIPIENT,
            f"this station exported this bundle (for {st.peer_name(b.to)}); import it there",
        )
    sender = st.store.get_peer(b.sender)
    if sender is None and st.store.peer_record(b.sender) is not None:
        raise peerstate.stranger(st.store, b.sender)
    if sender is None:
        raise RejectedInput(
            Code.UNKNOWN_SENDER,
            f"the bundle is from {b.sender}, which is not a peer of this station: "
            "add its invitation first (`parley peer add`)",
        )
    if b.to != st.id:
        raise RejectedInput(
            Code.NOT_A_RECIPIENT,
            f"the bundle is addressed to {st.peer_name(b.to)} ({b.to}), not to this station",
        )
    verify_bundle(b, *st.signer_keys(b.sender, b.ts))
    merge_prekeys(st, b.sender, list(b.prekeys))
    delivered = apply_answer(st, b.sender, [], list(b.receipts), set())
    counts: Counter[str] = Counter()
    shared: Counter[str] = Counter()  # on channels that are not back channels: for the log
    problems: list[dict[str, Any]] = []
    envs = list(b.envelopes)
    results = []
    for i in range(0, len(envs), MAX_PULL):
        results += st.receive_batch(envs[i : i + MAX_PULL])[0]
    hidden, private = _hidden(st, who), _back_channels(st)
    for res in results:
        status = res.status
        # Held for a predecessor that came later in the same bundle, and applied then: that
        # envelope is in the transcript now, so the report says "accepted", not "gap".
        late = status in (Verdict.GAP, Verdict.WAIT)
        if late and st.store.envelope_by_hash(b64d(res.hash)) is not None:
            status = Verdict.ACCEPT
            counts["applied_late"] += 1
        counts[status] += 1
        if res.channel not in private:
            shared[status] += 1
        shown = res.channel not in hidden
        if status not in ("accepted", "duplicate") and shown and len(problems) < 20:
            problems.append(res.to_json())
    report = {
        "from": b.sender,
        "from_name": sender.name,
        "created": b.ts,
        "envelopes": len(envs),
        **{k: counts[k] for k in ("accepted", "duplicate", "gap", "wait", "rejected")},
        "equivocation": counts["equivocation"],
        "applied_late": counts["applied_late"],
        "receipts": len(b.receipts),
        "delivered": delivered,
        "problems": problems,
    }
    outcome = ", ".join(f"{k} {shared[k]}" for k in sorted(shared)) or "empty"
    private = _back_channels(st)
    shared_rcpts = sum(1 for r in b.receipts if r.get("ch") not in private)
    with st.store.tx():
        db.log_bundle(
            st.store,
            db.BundleLog("import", b.sender, b.digest, b.ts, shared.total(), shared_rcpts,
                         st.clock(), outcome),
        )  # fmt: skip
        st.store.audit(who.name, "bundle.import", {"from": b.sender, "outcome": outcome},
                       st.clock())  # fmt: skip
    return report


def bundle_log(st: Station, who: User) -> list[dict[str, Any]]:
    """The bundles exported and imported, newest first."""
    authorize(who, Action.STATION_READ)
    return [
        {
            "direction": b.direction, "peer": b.peer, "peer_name": st.peer_name(b.peer),
            "digest": b64e(b.digest), "created": b.created, "envelopes": b.envelopes,
            "receipts": b.receipts, "at": b.at, "outcome": b.outcome,
        }
        for b in db.bundle_log(st.store)
    ]  # fmt: skip
