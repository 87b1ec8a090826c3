"""Checkpoints at a station: issuing them, witnessing the other members', exports and proofs.

    install(station)   an observer that issues, checks, stores and countersigns checkpoints as
                       bodies are stored, and a scheduled task that issues overdue ones;
                       `policy(station)` holds the intervals.
    issue(...)         a checkpoint now (the station's own; `make` is the operator's).
    export(...)        the lines of a transcript file; `prove(...)` a proof for one message.

The operator's services take the acting user and check the role table (station/roles.py)
and `Station.guard` before anything is read: `checkpoints_of` (channel.read), `make`
(checkpoint.make), `export_transcript` and `proof` (transcript.export: they carry plaintext
out of the station; on a back channel only its named representatives pass the guard). The
adapters (API, console, CLI through the API) call only these.

Rules (docs/protocol.md §17):
- This station checkpoints its own chain on each open channel once `every_envelopes` envelopes
  (other than checkpoints and cosignatures) are not yet covered, or the oldest of them is
  `every_ms` old (decided once per transaction and channel, just before it commits: a batch
  sent in one transaction is followed by one checkpoint covering all of it). A checkpoint covers
  every envelope before it and is sent as the next envelope of the chain it covers, with a
  consistency proof from our previous one.
- On receipt of a member's checkpoint (a witness, as C2SP tlog-witness): its note must be signed
  by the sender and cover exactly the envelopes before it; its root must equal the root of the
  sender's chain as we hold it, and its consistency proof must take our root at the previous
  checkpoint's size to it. Then we countersign (body `checkpoint.cosign`, cosignature/v1).
- Any cosignature we receive is checked against our own view of the chain it covers, ours
  included: another member vouching for a root we do not hold is a divergence too.
- A divergence raises a critical `divergence` alarm and keeps both sides as evidence (the signed
  note we were given, and the one we hold for that chain and size, if any); nothing is refused.
  Refusing the envelope would stall the sender's chain at this station, and the envelope itself
  (signed, in order) is part of the record the evidence is about.
- A checkpoint we cannot check (a bad signature, a size that is not seq - 1) is a warning alarm
  (`checkpoint`) and is not countersigned. Observers never raise: a failure here would roll back
  the body the station just stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from parley.errors import (
    Code,
    Conflict,
    Forbidden,
    LocalError,
    NotFound,
    ParleyError,
    RejectedInput,
)
from parley.protocol import checkpoint, merkle, note, trust
from parley.protocol.encoding import b64e, canonical
from parley.protocol.export import TranscriptWriter
from parley.protocol.proof import make_proof
from parley.station import integrity
from parley.station.node import Accepted, Station
from parley.station.peerstate import inactive_members
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import checkpoints as db
from parley.store import witness as wdb
from parley.store.cache import LRU, STATES

ALARM_DIVERGENCE = "divergence"
ALARM_CHECKPOINT = "checkpoint"
EXPORT_PAGE = 2000


@dataclass
class Policy:
    """When this station checkpoints its own chains."""

    every_envelopes: int = 64
    every_ms: int = 300_000


_policies: WeakKeyDictionary[Station, Policy] = WeakKeyDictionary()
_trees: WeakKeyDictionary[Station, dict[tuple[str, str], merkle.Tree]] = WeakKeyDictionary()
# (channel, sender) -> the frontier of that chain and the hash of its last envelope (to notice a
# rollback or a rewrite), for the roots receipts carry.
_frontiers: WeakKeyDictionary[Station, dict[tuple[str, str], tuple[merkle.Frontier, bytes]]] = (
    WeakKeyDictionary()
)
# channel -> (store cache epoch, seq of our latest checkpoint there, time of the first envelope
# after it that a checkpoint is for): `_due`'s two reads, asked before every group commit that
# sends (issue 14). Fixed until our next checkpoint, which drops the entry; anything that undoes
# writes or another connection's commit moves the epoch.
_uncovered: WeakKeyDictionary[Station, LRU[str, tuple[int, int, int]]] = WeakKeyDictionary()


def chain_tree(station: Station, channel: str, sender: str, size: int | None = None) -> merkle.Tree:
    """The Merkle tree of a chain as held: at least its first `size` envelopes (all, if None).
    Kept between calls and extended from the store, so a checkpoint costs O(new envelopes), not
    O(chain). A tree the store no longer agrees with (a rolled-back receive) is rebuilt."""
    trees = _trees.setdefault(station, {})
    tree = trees.get((channel, sender))
    if tree is not None and tree.size:
        held = station.store.hash_at(channel, sender, tree.size)
        if held is None or merkle.leaf_hash(held) != tree.leaf(tree.size - 1):
            tree = None
    if tree is None:
        tree = trees[(channel, sender)] = merkle.Tree()
    if size is None or tree.size < size:
        for h in db.chain_hashes(station.store, channel, sender, size, after=tree.size):
            tree.append(merkle.leaf_hash(h))
    return tree


def install(station: Station) -> None:
    _policies[station] = Policy()
    station.observers.append(observe)
    station.scheduled.append(checkpoint_due)
    station.chain_root = lambda channel, sender, size: _root(station, channel, sender, size)


def _root(station: Station, channel: str, sender: str, size: int) -> bytes | None:
    """The root of a chain's first `size` envelopes as held, or None if fewer are held: for a
    receipt (another station's chain, at its head) from a compact frontier kept per chain, so
    receipts cost O(new envelopes) and O(log n) memory; for checking a receipt of our own chain
    (any earlier size) from the chain's tree. Neither is the tree that witnessing uses, so a
    copy altered at rest is still checked afresh at the next checkpoint."""
    if sender == station.id:
        tree = chain_tree(station, channel, sender, size)
        return tree.root(size) if 0 < size <= tree.size else None
    fronts = _frontiers.setdefault(station, {})
    entry = fronts.get((channel, sender))
    if entry is not None:
        front, last = entry
        if front.size > size or station.store.hash_at(channel, sender, front.size) != last:
            entry = None  # rolled back, or rewritten: start again
    front, last = entry if entry is not None else (merkle.Frontier(), b"")
    for h in db.chain_hashes(station.store, channel, sender, size, after=front.size):
        front.append(merkle.leaf_hash(h))
        last = h
    if front.size != size or size == 0:
        return None
    fronts[(channel, sender)] = (front, last)
    return front.root()


def policy(station: Station) -> Policy:
    return _policies.setdefault(station, Policy())


def member(station: Station, sid: str) -> checkpoint.Member:
    """A member as a transcript names it: its first key and its hand-overs since (§3.6)."""
    if sid == station.id:
        name = station.cfg.name
    else:
        p = station.store.peer_record(sid)  # removed or revoked: its key verifies its history
        if p is None:
            raise NotFound(Code.NOT_FOUND, f"{sid} is not a known peer")
        name = p.name
    epochs = station.epochs(sid)
    chain = tuple(e.handover for e in epochs if e.handover is not None)
    return checkpoint.Member(sid, name, epochs[0].public, chain)


# --- issuing --------------------------------------------------------------------------------------


def issue(station: Station, channel: str, actor: str = "station") -> db.CheckpointRow:
    """Checkpoint this station's chain on `channel` now: everything it has sent there so far."""
    store = station.store
    with store.tx():
        state = station.channel_state(channel)
        if station.id not in state.members:
            raise Forbidden(Code.NOT_A_MEMBER, "this station is not a member of that channel")
        if not state.is_open:
            raise Conflict(Code.CHANNEL_NOT_OPEN, f"the channel is {state.state}, not open")
        tree = chain_tree(station, channel, station.id)
        size = tree.size
        last = db.latest_checkpoint(store, channel, station.id)
        body = checkpoint.checkpoint_body(
            station.identity, channel, tree, last.size if last else 0, station.id
        )
        station.send(channel, body, "ROUTINE", actor=actor)
        row = db.checkpoint_at(store, channel, station.id, size)
    assert row is not None  # stored by `observe` as the body was sent
    return row


def _due(station: Station, channel: str, now: int) -> bool:
    store = station.store
    known = _uncovered.setdefault(station, LRU(STATES))
    with store.lock:  # no checkpoint of ours commits between the reads and keeping them
        epoch = store.cache_epoch()
        hit = known.get(channel)
        if hit is not None and hit[0] == epoch:
            _, after, oldest = hit
            most = store.head_seq(channel, station.id) - after
        else:
            last = db.latest_checkpoint(store, channel, station.id)
            after = last.seq if last else 0
            # Counting the uncovered envelopes is a scan; the chain's head (kept in memory)
            # bounds the count from above, and the oldest one is the first match of an index walk.
            most = store.head_seq(channel, station.id) - after
            found = db.oldest_uncovered(store, channel, station.id, after) if most > 0 else None
            if found is None:
                return False
            oldest = found
            known.put(channel, (epoch, after, oldest))
    p = policy(station)
    if now - oldest >= p.every_ms:
        return True
    return most >= p.every_envelopes and (
        db.uncovered(store, channel, station.id, after)[0] >= p.every_envelopes
    )


def _issue_if_open(station: Station, channel: str) -> None:
    try:
        state = station.channel_state(channel)
    except NotFound:
        return
    if (
        station.id in state.members
        and state.is_open
        and not inactive_members(station.store, station.id, state)
    ):
        issue(station, channel)


def checkpoint_due(station: Station, now: int) -> None:
    """Scheduled: checkpoint every chain of ours whose uncovered envelopes are old enough."""
    for channel in station.store.list_channels():
        if _due(station, channel, now):
            _issue_if_open(station, channel)


# --- the observer ---------------------------------------------------------------------------------


def observe(station: Station, acc: Accepted) -> None:
    kind = acc.body.get("type")
    try:
        if kind == checkpoint.CHECKPOINT:
            (_own_checkpoint if acc.local else _witness)(station, acc)
        elif kind == checkpoint.COSIGN:
            (_own_cosignature if acc.local else _check_cosignature)(station, acc)
        elif acc.local:
            _ask_due(station, acc.channel)
    except ParleyError as exc:
        _warn(station, acc.sender, f"checkpoint on channel {acc.channel}: {exc.message}")


def _ask_due(station: Station, channel: str) -> None:
    """Whether a checkpoint is due is decided once per transaction and channel, just before
    it commits: a batch of sends (one group commit) asked it per envelope (issue 14)."""

    def check() -> None:
        # The checkpoint in its own savepoint: one that fails is undone alone and raises a
        # warning; the group's sends commit all the same (the next send asks again).
        try:
            if _due(station, channel, station.clock()):
                with station.store.savepoint():
                    _issue_if_open(station, channel)
        except ParleyError as exc:
            _warn(station, station.id, f"checkpoint on channel {channel}: {exc.message}")

    station.store.before_commit_once(("checkpoint due", channel), check)


def _warn(station: Station, subject: str, message: str) -> None:
    station.alarm(ALARM_CHECKPOINT, "warning", subject, message)


def _own_checkpoint(station: Station, acc: Accepted) -> None:
    cb = checkpoint.check_checkpoint_body(acc.body)
    _uncovered.setdefault(station, LRU(STATES)).pop(acc.channel)
    db.add_checkpoint(
        station.store,
        db.CheckpointRow(
            acc.channel, acc.sender, cb.size, cb.root, acc.seq, acc.body["note"], acc.ts
        ),
    )


def _witness(station: Station, acc: Accepted) -> None:
    """A member's checkpoint: check it against the chain we hold, then countersign it."""
    cb = checkpoint.check_checkpoint_body(acc.body)
    sender = member(station, acc.sender)
    if (cb.channel, cb.sender) != (acc.channel, acc.sender) or cb.size != acc.seq - 1:
        why = f"it must cover this chain's seq 1..{acc.seq - 1}"
    elif not checkpoint.verify_signature_line(cb.text, cb.signatures[0], sender.signer):
        why = "its note signature does not verify with the sender's key"
    elif cb.prev != (
        last := db.previous_checkpoint_size(station.store, acc.channel, acc.sender, acc.seq)
    ):
        why = f"its prev is {cb.prev}, but its previous checkpoint covers {last} envelopes"
    else:
        why = ""
    if why:
        _warn(station, acc.sender, f"{sender.name}'s checkpoint at seq {acc.seq}: {why}")
        return
    tree = chain_tree(station, acc.channel, acc.sender, cb.size)
    ours = tree.root(cb.size)
    try:
        if cb.prev:
            merkle.verify_consistency(cb.prev, cb.size, cb.proof, tree.root(cb.prev), cb.root)
    except RejectedInput as exc:
        why = f"its consistency proof from size {cb.prev} fails ({exc.message})"
    if why or ours != cb.root:
        _diverged(station, acc, acc.sender, cb.size, cb.root, ours, acc.body["note"], why)
        return
    db.add_checkpoint(
        station.store,
        db.CheckpointRow(
            acc.channel, acc.sender, cb.size, cb.root, acc.seq, acc.body["note"], acc.ts
        ),
    )
    body, _ = checkpoint.cosign_body(cb, station.identity, station.clock() // 1000, station.id)
    try:
        station.send(acc.channel, body, "ROUTINE", actor="station")
    except (LocalError, Conflict, Forbidden) as exc:
        _warn(station, acc.sender, f"could not countersign {sender.name}: {exc.message}")


def _own_cosignature(station: Station, acc: Accepted) -> None:
    cb = checkpoint.check_cosign_body(acc.body)
    _keep_cosignature(station, acc, cb)


def _keep_cosignature(station: Station, acc: Accepted, cb: checkpoint.CosignBody) -> None:
    db.add_cosignature(
        station.store,
        db.CosignatureRow(
            acc.channel, cb.of, cb.size, acc.sender, cb.cosignature.line().rstrip("\n"),
            note.cosignature_timestamp(cb.cosignature), acc.seq,
        ),
    )  # fmt: skip


def _check_cosignature(station: Station, acc: Accepted) -> None:
    """A member's countersignature on some chain's checkpoint: it must match our own view."""
    cb = checkpoint.check_cosign_body(acc.body)
    if cb.channel != acc.channel or cb.cosignature.name != acc.sender:
        _warn(station, acc.sender, "a cosignature must be its sender's, on this channel")
        return
    of, cosigner = member(station, cb.of), member(station, acc.sender)
    if not (
        checkpoint.verify_signature_line(cb.text, cb.signature, of.signer)
        and checkpoint.verify_signature_line(cb.text, cb.cosignature, cosigner.cosigner)
    ):
        _warn(station, acc.sender, f"{cosigner.name}'s cosignature at seq {acc.seq} is bad")
        return
    tree = chain_tree(station, acc.channel, cb.of, cb.size)
    if tree.size < cb.size:
        why = f"{cosigner.name} cosigned {of.name}'s chain beyond the {tree.size} held here"
        _warn(station, acc.sender, why)
        return
    ours = tree.root(cb.size)
    if ours != cb.root:
        why = f"{cosigner.name} countersigned it"
        _diverged(station, acc, cb.of, cb.size, cb.root, ours, acc.body["note"], why)
        return
    if db.checkpoint_at(station.store, acc.channel, cb.of, cb.size) is None:
        signed = note.Note(cb.text, (cb.signature,)).format()
        row = db.CheckpointRow(acc.channel, cb.of, cb.size, cb.root, cb.size + 1, signed, acc.ts)
        db.add_checkpoint(station.store, row)
        if cb.of == station.id:
            _uncovered.setdefault(station, LRU(STATES)).pop(acc.channel)
    _keep_cosignature(station, acc, cb)


def _diverged(
    station: Station,
    acc: Accepted,
    chain: str,
    size: int,
    theirs: bytes,
    ours: bytes,
    signed_note: str,
    why: str,
) -> None:
    """Alarm and keep both sides: the note we were given, and the one we hold for that size."""
    store = station.store
    kept = station.keep_evidence(
        acc.channel, chain, size, ALARM_DIVERGENCE, signed_note.encode(), ours
    )
    held = db.checkpoint_at(store, acc.channel, chain, size)
    if held is not None and held.root != theirs:
        station.keep_evidence(
            acc.channel, chain, size, ALARM_DIVERGENCE, held.note.encode(), theirs
        )
    if kept:
        station.alarm(
            ALARM_DIVERGENCE,
            "critical",
            chain,
            f"{station.peer_name(chain)}'s chain on channel {acc.channel} diverges: a checkpoint "
            f"of its first {size} envelopes (from {station.peer_name(acc.sender)}, seq "
            f"{acc.seq}) has root {b64e(theirs)}, but the envelopes held here give {b64e(ours)}"
            f"{'; ' + why if why else ''}. Both are kept as evidence.",
        )


# --- reading, exports and proofs ------------------------------------------------------------------


def _cosign_signatures(rows: list[db.CosignatureRow], text: str) -> list[note.Signature]:
    return [note.parse_note(f"{text}\n{r.line}\n").signatures[0] for r in rows]


def signed_note(
    row: db.CheckpointRow, cosigs: list[db.CosignatureRow], witness_lines: list[str] | None = None
) -> str:
    """The checkpoint's note with every cosignature held for it: the members', then the
    witnesses' (station/witnessing.py) when `witness_lines` are given."""
    own = note.parse_note(row.note)
    cosigned = _cosign_signatures(cosigs, own.text)
    witnessed = [
        note.parse_note(f"{own.text}\n{line}\n").signatures[0] for line in witness_lines or []
    ]
    return checkpoint.assemble_note(own.text, [*own.signatures, *cosigned, *witnessed])


def listing(station: Station, channel: str) -> list[dict[str, Any]]:
    """Every checkpoint held on a channel with who countersigned it."""
    cosigs: dict[tuple[str, int], list[db.CosignatureRow]] = {}
    for c in db.cosignatures(station.store, channel):
        cosigs.setdefault((c.sender, c.size), []).append(c)
    witnessed: dict[tuple[str, int], list[str]] = {}
    for w in wdb.cosignatures(station.store, channel):
        name = w.line.removeprefix("\u2014 ").split(" ", 1)[0]
        witnessed.setdefault((w.sender, w.size), []).append(name)
    return [
        {
            "sender": cp.sender,
            "sender_name": station.peer_name(cp.sender),
            "witnessed_by": sorted(witnessed.get((cp.sender, cp.size), [])),
            "size": cp.size,
            "root": b64e(cp.root),
            "seq": cp.seq,
            "ts": cp.ts,
            "cosigners": [
                {"station": c.cosigner, "name": station.peer_name(c.cosigner), "ts": c.signed}
                for c in cosigs.get((cp.sender, cp.size), [])
            ],
        }
        for cp in db.checkpoints(station.store, channel)
    ]


def anchors(station: Station) -> trust.Anchors:
    """The keys this station trusts when it verifies a file (protocol/trust.py): its own, and its
    known peers', whose fingerprints its admins compared out of band when adding them."""
    keys = [(e.public, f"this station ({station.cfg.name})") for e in station.epochs(station.id)]
    for p in station.store.peer_records():  # a member is anchored by its first key (§3.6)
        keys += [(e.public, f"known peer {p.name}") for e in station.epochs(p.station)]
    return trust.Anchors.of_keys(keys)


def export(station: Station, channel: str, actor: str = "station") -> Iterator[bytes]:
    """The lines of a transcript file of `channel` as this station holds it, signed by it.

    Envelopes stored up to the moment the export starts, in stored (causal) order, then the
    checkpoints whose envelopes are among them, with the cosignatures also among them. What can
    fail (an unknown channel or member) fails here, before the first line."""
    state = station.channel_state(channel)
    members = [member(station, m) for m in state.members]
    station.store.audit(actor, "transcript.export", {"channel": channel}, station.clock())
    writer = TranscriptWriter(channel, members, station.id, station.clock())
    return _export_lines(station, channel, writer)


def _export_lines(station: Station, channel: str, writer: TranscriptWriter) -> Iterator[bytes]:
    store = station.store
    yield from writer.start()
    upto, after = db.max_envelope_id(store, channel), 0
    held: dict[str, int] = {}
    while True:
        page = db.export_page(store, channel, after, upto, EXPORT_PAGE)
        if not page:
            break
        for eid, sender, seq, raw, body, salt in page:
            text = body.encode("utf-8") if body is not None else None
            # Written as held; a changed body is alarmed here and fails the file's check
            # (station/integrity.py rule 5).
            if body is not None and salt is not None:
                problem = integrity.export_problem(channel, sender, seq, raw, salt, body)
                if problem:
                    station.integrity.report(channel, sender, seq, problem)
            yield writer.envelope(raw, salt, text)
            held[sender] = max(held.get(sender, 0), seq)
            after = eid
    cosigs: dict[tuple[str, int], list[db.CosignatureRow]] = {}
    for c in db.cosignatures(store, channel):
        if c.seq <= held.get(c.cosigner, 0):
            cosigs.setdefault((c.sender, c.size), []).append(c)
    for cp in db.checkpoints(store, channel):
        if cp.seq <= held.get(cp.sender, 0):
            lines = [w.line for w in wdb.cosignatures(store, channel, cp.sender, cp.size)]
            assembled = signed_note(cp, cosigs.get((cp.sender, cp.size), []), lines)
            yield writer.checkpoint(cp.sender, cp.size, assembled)
    yield writer.finish(station.identity)


def prove(
    station: Station, channel: str, sender: str, seq: int, actor: str = "station"
) -> dict[str, Any]:
    """A proof of one message for a third party: it, and a countersigned checkpoint over it."""
    store = station.store
    station.channel_state(channel)
    rows = store.envelopes(channel, sender, seq - 1, 1)
    if not rows or rows[0].seq != seq:
        raise NotFound(Code.NOT_FOUND, f"no envelope {seq} from {sender} on channel {channel}")
    held = station.integrity.require(rows[0])  # never a proof of a changed text
    covering = db.covering(store, channel, sender, seq)
    if not covering:
        raise NotFound(
            Code.NOT_FOUND,
            f"no countersigned checkpoint covers seq {seq} of that chain yet; a checkpoint "
            "comes every few minutes (`parley transcript checkpoint` asks for one now, for this "
            "station's own chain) and the other members countersign it when they receive it",
        )
    cp = covering[0]
    cosigs = db.cosignatures(store, channel, sender, cp.size)
    doc = make_proof(
        channel=channel,
        sender=member(station, sender),
        cosigners=[member(station, c.cosigner) for c in cosigs],
        envelope_raw=rows[0].raw,
        salt=held.salt,
        body_text=canonical(held.body).decode("utf-8"),
        signed_note=signed_note(cp, cosigs),
        chain_hashes=db.chain_hashes(store, channel, sender, cp.size),
        seq=seq,
    )
    detail = {"channel": channel, "sender": sender, "seq": seq}
    store.audit(actor, "transcript.prove", detail, station.clock())
    return doc


# --- the operator's services ------------------------------------------------------------------


def checkpoints_of(station: Station, who: User, channel: str) -> list[dict[str, Any]]:
    """Every checkpoint held on `channel` with who countersigned it."""
    authorize(who, Action.CHANNEL_READ)
    station.guard(channel, who)
    return listing(station, channel)


def chain_heads(station: Station, who: User, channel: str) -> list[dict[str, Any]]:
    """Per member's chain: its latest checkpoint's size (None: none yet) and who countersigned
    it, by name (the channel page's ledger line)."""
    authorize(who, Action.CHANNEL_READ)
    state = station.guard(channel, who)
    out = []
    for member in state.members:
        cp = db.latest_checkpoint(station.store, channel, member)
        cosigs = db.cosignatures(station.store, channel, member, cp.size) if cp else []
        witnessed = wdb.cosignatures(station.store, channel, member, cp.size) if cp else []
        out.append({
            "name": station.peer_name(member), "size": cp.size if cp else None,
            "by": [station.peer_name(c.cosigner) for c in cosigs],
            "witnessed_by": [w.line.removeprefix("\u2014 ").split(" ", 1)[0] for w in witnessed],
        })  # fmt: skip
    return out


def make(station: Station, who: User, channel: str) -> dict[str, Any]:
    """`who` asks for a checkpoint of this station's chain on `channel` now."""
    authorize(who, Action.CHECKPOINT_MAKE)
    station.guard(channel, who)
    row = issue(station, channel, who.name)
    return {"channel": channel, "size": row.size, "root": b64e(row.root), "seq": row.seq}


def export_transcript(station: Station, who: User, channel: str) -> Iterator[bytes]:
    """The transcript file of `channel` for `who` (audited under their name)."""
    authorize(who, Action.TRANSCRIPT_EXPORT)
    station.guard(channel, who)
    return export(station, channel, who.name)


def proof(station: Station, who: User, channel: str, sender: str, seq: int) -> dict[str, Any]:
    """A proof of one message of `channel` for `who` to hand a third party."""
    authorize(who, Action.TRANSCRIPT_EXPORT)
    station.guard(channel, who)
    return prove(station, channel, station.station_id(sender), seq, who.name)
