"""Checkpoints: the signed Merkle roots of one sender's chain, and the members who sign them.

Rules (docs/protocol.md §17.1-17.2 is the specification):
- A checkpoint is a C2SP tlog-checkpoint over ONE sender's chain on one channel. Its Merkle leaves
  (RFC 9162) are the envelope hashes of seq 1..n: leaf i = SHA-256(0x00 || SHA-256(envelope i)).
  Hashes rather than envelopes, so a proof for one message needs no other envelope's bytes.
- Origin `parley/chain/v1/<channel>/<sender>`; the note is signed (Ed25519, type 0x01) by the
  sender under the key name = its station id; members cosign it (tlog-cosignature/v1, type 0x04)
  under their station ids. A checkpoint travels as body `checkpoint` at seq n+1 of the chain it
  covers (so it covers exactly every envelope before it), with a consistency proof from the
  sender's previous checkpoint; a cosignature travels as body `checkpoint.cosign` in the
  cosigner's own chain.
- Checking a body raises RejectedInput(bad_body) naming the field; the Merkle tree is
  `merkle.Tree`, the one tree of the project.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto, handover, merkle, note
from parley.protocol.encoding import b64d, b64e
from parley.protocol.identity import is_station_id, station_id
from parley.protocol.schema import MAX_SAFE_INT, require_fields

CHECKPOINT = "checkpoint"
COSIGN = "checkpoint.cosign"
ORIGIN_PREFIX = "parley/chain/v1/"


# --- members and origins --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A member station as a transcript names it: id, display name and its FIRST identity key
    (the one its id derives from and whose fingerprint people compared), with the hand-overs
    to each later key (§3.6; none for a station that never rotated)."""

    station: str
    name: str
    identity: bytes
    handovers: tuple[handover.Handover, ...] = ()

    @cached_property
    def epochs(self) -> list[handover.Epoch]:
        return handover.follow(self.identity, self.station, list(self.handovers))

    @property
    def current(self) -> bytes:
        """The key the station signs with now (its first key unless it rotated)."""
        return self.epochs[-1].public

    def keys_at(self, ts: int) -> list[bytes]:
        """The keys that may have signed what this member dated `ts` (ts < 0: any)."""
        if ts < 0:
            return [e.public for e in reversed(self.epochs)]
        return handover.signers_at(self.epochs, ts)

    def signers_at(self, ts: int) -> list[note.Verifier]:  # ts < 0: any key
        return [note.Verifier(self.station, k, note.ED25519) for k in self.keys_at(ts)]

    def cosigners_at(self, ts: int) -> list[note.Verifier]:
        return [note.Verifier(self.station, k, note.COSIGNATURE_V1) for k in self.keys_at(ts)]

    @cached_property
    def signer(self) -> note.Verifier:
        """The key that signs this station's checkpoints (C2SP note type 0x01)."""
        return note.Verifier(self.station, self.current, note.ED25519)

    @cached_property
    def cosigner(self) -> note.Verifier:
        """The key that countersigns other members' checkpoints (cosignature/v1, type 0x04)."""
        return note.Verifier(self.station, self.current, note.COSIGNATURE_V1)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "identity": b64e(self.identity), "name": self.name, "station": self.station
        }  # fmt: skip
        if self.handovers:
            out["handovers"] = [h.to_json() for h in self.handovers]
        return out


def parse_member(value: object) -> Member:
    obj = require_fields(value, "member", {"identity", "name", "station"}, frozenset({"handovers"}))
    identity = b64d(obj["identity"], field="member.identity", size=32)
    if not isinstance(obj["name"], str) or not 0 < len(obj["name"]) <= 200:
        raise RejectedInput(Code.MALFORMED, "member.name: expected text of 1..200 characters")
    if obj["station"] != station_id(identity):
        raise RejectedInput(
            Code.MALFORMED, f"member {obj['station']!r}: the station id is not its key's id"
        )
    chain: tuple[handover.Handover, ...] = ()
    if "handovers" in obj:
        raw = obj["handovers"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= handover.MAX_HANDOVERS:
            raise RejectedInput(Code.MALFORMED, "member.handovers: 1..64 hand-overs")
        chain = tuple(handover.parse_handover(h) for h in raw)
        handover.follow(identity, obj["station"], list(chain))  # each continues the last
    return Member(obj["station"], obj["name"], identity, chain)


def origin(channel: str, sender: str) -> str:
    """The checkpoint origin line naming one sender's chain on one channel."""
    return f"{ORIGIN_PREFIX}{channel}/{sender}"


def parse_origin(text: str) -> tuple[str, str]:
    """(channel, sender) from an origin line; RejectedInput(malformed) if it is not one."""
    rest = text.removeprefix(ORIGIN_PREFIX)
    channel, _, sender = rest.partition("/")
    if rest == text or not is_station_id(sender):
        raise RejectedInput(Code.MALFORMED, f"checkpoint origin {text!r} is not a Parley chain")
    b64d(channel, field="origin channel", size=16)
    return channel, sender


def leaves(envelope_hashes: Iterable[bytes]) -> list[bytes]:
    """The Merkle leaf hashes of a chain, from its envelope hashes in seq order."""
    return [merkle.leaf_hash(h) for h in envelope_hashes]


# --- checkpoint bodies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointBody:
    """A `checkpoint` body, shape-checked: the sender's signed note and its consistency proof."""

    channel: str
    sender: str
    size: int
    root: bytes
    prev: int  # size of the sender's previous checkpoint on this chain; 0 for the first
    proof: tuple[bytes, ...]  # RFC 9162 consistency proof from `prev` to `size`
    text: str  # the checkpoint note text (what is signed)
    signatures: tuple[note.Signature, ...]


@dataclass(frozen=True)
class CosignBody:
    """A `checkpoint.cosign` body: another member's checkpoint plus the cosigner's line."""

    channel: str
    of: str
    size: int
    root: bytes
    text: str
    signature: note.Signature  # the checkpoint's own (Ed25519, by `of`)
    cosignature: note.Signature  # the cosigner's (cosignature/v1)


def _bad(message: str) -> RejectedInput:
    return RejectedInput(Code.BAD_BODY, message)


def parse_signed_checkpoint(text: object, what: str) -> tuple[note.Note, note.Checkpoint]:
    if not isinstance(text, str):
        raise _bad(f"{what}.note: expected the signed note as text")
    try:
        signed = note.parse_note(text)
        cp = note.parse_checkpoint(signed.text)
    except RejectedInput as exc:
        raise _bad(f"{what}.note: {exc.message}") from exc
    if cp.extensions:
        raise _bad(f"{what}.note: a Parley checkpoint has no extension lines")
    if not 1 <= cp.size <= MAX_SAFE_INT:
        raise _bad(f"{what}.note: a checkpoint covers 1..2^53-1 envelopes")
    return signed, cp


def _chain_of(cp: note.Checkpoint, what: str) -> tuple[str, str]:
    try:
        return parse_origin(cp.origin)
    except RejectedInput as exc:
        raise _bad(f"{what}.note: {exc.message}") from exc


def _int_field(obj: dict[str, Any], key: str, what: str) -> int:
    v = obj[key]
    if type(v) is not int or not 0 <= v <= MAX_SAFE_INT:
        raise _bad(f"{what}.{key}: expected an integer in [0, 2^53-1]")
    return v


def check_checkpoint_body(body: dict[str, Any]) -> CheckpointBody:
    """The records checker of `checkpoint` bodies (RejectedInput(bad_body) naming the field)."""
    try:
        obj = require_fields(body, CHECKPOINT, {"type", "note", "size", "root", "prev", "proof"})
    except RejectedInput as exc:
        raise _bad(exc.message) from exc
    signed, cp = parse_signed_checkpoint(obj["note"], CHECKPOINT)
    channel, sender = _chain_of(cp, CHECKPOINT)
    if _int_field(obj, "size", CHECKPOINT) != cp.size:
        raise _bad("checkpoint.size: differs from the size in the note")
    try:
        root = b64d(obj["root"], field="checkpoint.root", size=32)
        proof_raw = obj["proof"]
        if not isinstance(proof_raw, list) or len(proof_raw) > 128:
            raise _bad("checkpoint.proof: expected a list of hashes")
        proof = tuple(b64d(p, field="checkpoint.proof", size=32) for p in proof_raw)
    except RejectedInput as exc:
        raise _bad(exc.message) from exc
    if root != cp.root_hash:
        raise _bad("checkpoint.root: differs from the root in the note")
    prev = _int_field(obj, "prev", CHECKPOINT)
    if prev >= cp.size:
        raise _bad("checkpoint.prev: the previous checkpoint must be smaller than this one")
    want = merkle.consistency_proof_length(prev, cp.size) if prev else 0
    if len(proof) != want:
        raise _bad(f"checkpoint.proof: from size {prev} to {cp.size} it has {want} hashes")
    if len(signed.signatures) != 1 or signed.signatures[0].name != sender:
        raise _bad("checkpoint.note: exactly one signature, by the chain's sender")
    return CheckpointBody(
        channel, sender, cp.size, root, prev, proof, signed.text, signed.signatures
    )


Parsed = tuple[note.Note, note.Checkpoint]  # what parse_signed_checkpoint makes of a note


def check_cosign_body(
    body: dict[str, Any], known: Mapping[str, Parsed] | None = None
) -> CosignBody:
    """The records checker of `checkpoint.cosign` bodies. `known`: signed notes already
    parsed (a transcript's checkpoint bodies), so that a note that is one of them plus the
    cosigner's line is not parsed again."""
    try:
        obj = require_fields(body, COSIGN, {"type", "of", "size", "note"})
    except RejectedInput as exc:
        raise _bad(exc.message) from exc
    text = obj["note"]
    parsed = _longer(text, known) if known else None
    signed, cp = parsed or parse_signed_checkpoint(text, COSIGN)
    channel, sender = _chain_of(cp, COSIGN)
    if obj["of"] != sender:
        raise _bad("checkpoint.cosign.of: differs from the chain the note names")
    if _int_field(obj, "size", COSIGN) != cp.size:
        raise _bad("checkpoint.cosign.size: differs from the size in the note")
    sigs = signed.signatures
    if len(sigs) != 2 or sigs[0].name != sender or sigs[1].name == sender:
        raise _bad(
            "checkpoint.cosign.note: exactly two signatures, the sender's and then the cosigner's"
        )
    return CosignBody(channel, sender, cp.size, cp.root_hash, signed.text, sigs[0], sigs[1])


def _longer(text: object, known: Mapping[str, Parsed]) -> Parsed | None:
    """What parse_signed_checkpoint(text) gives, if `text` is a known note and one more line."""
    if type(text) is not str:
        return None
    cut = text.rfind("\n", 0, len(text) - 1) + 1
    hit = known.get(text[:cut]) if cut else None
    if hit is None:
        return None
    signed = note.parse_longer_note(text, cut, hit[0])
    return None if signed is None else (signed, hit[1])


def checkpoint_body(
    key: crypto.SigningKey,
    channel: str,
    chain: Sequence[bytes] | merkle.Tree,
    prev: int = 0,
    station: str | None = None,
) -> dict[str, Any]:
    """The `checkpoint` body that `key`'s station sends over its whole chain so far (its
    envelope hashes in seq order, or their tree), with a consistency proof from its previous
    checkpoint of size `prev` (0: none)."""
    sender = station or station_id(key.public)  # after a hand-over (§3.6): the first key's id
    tree = chain if isinstance(chain, merkle.Tree) else merkle.Tree(leaves(chain))
    n = tree.size
    if not n or not 0 <= prev < n:
        raise LocalError(Code.INVALID_REQUEST, "a checkpoint covers at least one new envelope")
    root = tree.root()
    text = note.format_checkpoint(note.Checkpoint(origin(channel, sender), n, root))
    return {
        "type": CHECKPOINT,
        "note": note.sign_note(text, sender, key),
        "size": n,
        "root": b64e(root),
        "prev": prev,
        "proof": [b64e(h) for h in tree.consistency_proof(prev, n)] if prev else [],
    }


def cosign_body(
    cp: CheckpointBody, key: crypto.SigningKey, timestamp: int, station: str | None = None
) -> tuple[dict[str, Any], note.Signature]:
    """The `checkpoint.cosign` body countersigning `cp` at `timestamp` (POSIX seconds)."""
    me = station or station_id(key.public)
    line = note.cosign(cp.text, me, key, timestamp)
    signed = note.Note(cp.text, (cp.signatures[0], line)).format()
    return {"type": COSIGN, "of": cp.sender, "size": cp.size, "note": signed}, line


def verify_signature_line(
    text: str,
    sig: note.Signature,
    verifier: note.Verifier,
    check: Callable[[bytes, bytes], bool] | None = None,
) -> bool:
    """True if `sig` is `verifier`'s valid note signature (0x01) or cosignature (0x04) on
    `text`, a checkpoint's note text its caller has already parsed (as note.verify_cosignature
    would parse it again). `check`: `crypto.verifier(verifier.public)`, kept by a caller that
    checks many lines by the same keys (a transcript's verifier)."""
    if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
        return False
    if verifier.sig_type == note.COSIGNATURE_V1:
        if len(sig.signature) != 8 + crypto.SIGNATURE_BYTES:
            return False
        stamp = note.cosignature_timestamp(sig)
        if stamp > note.MAX_TIMESTAMP:
            return False
        message, signature = note.cosignature_message(text, stamp), sig.signature[8:]
    else:
        message, signature = text.encode("utf-8"), sig.signature
    if check is None:
        return crypto.verify(verifier.public, b"", message, signature)
    return check(message, signature)


def assemble_note(text: str, signatures: Iterable[note.Signature]) -> str:
    """One signed note with every distinct signature line given, in order (first wins)."""
    seen: dict[tuple[str, bytes], note.Signature] = {}
    for s in signatures:
        seen.setdefault((s.name, s.key_id), s)
    return note.Note(text, tuple(seen.values())).format()
