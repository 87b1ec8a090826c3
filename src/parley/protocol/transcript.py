"""Checkpoints, transcript files and message proofs: building them and checking them offline.

Rules (docs/protocol.md §17 is the specification):
- A checkpoint is a C2SP tlog-checkpoint over ONE sender's chain on one channel. Its Merkle leaves
  (RFC 9162) are the envelope hashes of seq 1..n: leaf i = SHA-256(0x00 || SHA-256(envelope i)).
  Hashes rather than envelopes, so a proof for one message needs no other envelope's bytes.
- Origin `parley/chain/v1/<channel>/<sender>`; the note is signed (Ed25519, type 0x01) by the
  sender under the key name = its station id; members cosign it (tlog-cosignature/v1, type 0x04)
  under their station ids. A checkpoint travels as body `checkpoint` at seq n+1 of the chain it
  covers (so it covers exactly every envelope before it), with a consistency proof from the
  sender's previous checkpoint; a cosignature travels as body `checkpoint.cosign` in the
  cosigner's own chain.
- A transcript file is lines ending in "\\n" (split on 0x0A only): the magic line, a header,
  envelopes byte for byte (with the body and salt the exporter holds), assembled cosigned
  checkpoints, and the exporter's signature over everything before it.
- Checking never raises for bad input: `verify_transcript` and `check_proof` return a Report in
  which every named check says how often it passed and failed, and why. A report is good only if
  no check failed and the file could be read at all (fail closed).
- Verification is meant to run near the raw Ed25519 rate: each envelope is matched once by a
  grammar of its canonical form instead of being parsed and re-canonicalised, hashed once, and
  compared to its links in base64 text. An envelope the grammar does not match goes through
  `envelope.parse_envelope`, the reference, so the fast path can only be faster, never laxer.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Any, NamedTuple

from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto, merkle, note
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.envelope import (
    COMMIT_LABEL,
    ENVELOPE_LABEL,
    MAX_ENVELOPE_BYTES,
    MAX_RECIPIENTS,
    parse_envelope,
    signing_input,
)
from parley.protocol.identity import fingerprint, is_station_id, station_id
from parley.protocol.schema import MAX_SAFE_INT, require_fields
from parley.protocol.trust import Anchors, TrustPolicy

FORMAT = "parley-transcript/v1"
PROOF_FORMAT = "parley-proof/v1"
TRANSCRIPT_LABEL = b"parley/transcript/v1\x00"
CHECKPOINT = "checkpoint"
COSIGN = "checkpoint.cosign"
ORIGIN_PREFIX = "parley/chain/v1/"
MAX_HEADER_BYTES = 64 * 1024
# How many failure messages a check keeps; the counts are always complete.
MAX_FAILURES_KEPT = 20

TRANSCRIPT_CHECKS = (
    "file_format",
    "member_keys",
    "export_signature",
    "envelope_format",
    "signature",
    "seq_order",
    "chain_links",
    "timestamps",
    "causal_order",
    "body_commitment",
    "checkpoint_signature",
    "checkpoint_root",
    "consistency",
    "cosignature",
)
PROOF_CHECKS = (
    "file_format",
    "member_keys",
    "envelope_format",
    "signature",
    "body_commitment",
    "checkpoint_signature",
    "cosignature",
    "inclusion",
)


# --- members and origins --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A member station as a transcript names it: id, display name and identity key."""

    station: str
    name: str
    identity: bytes

    @cached_property
    def signer(self) -> note.Verifier:
        """The key that signs this station's checkpoints (C2SP note type 0x01)."""
        return note.Verifier(self.station, self.identity, note.ED25519)

    @cached_property
    def cosigner(self) -> note.Verifier:
        """The key that countersigns other members' checkpoints (cosignature/v1, type 0x04)."""
        return note.Verifier(self.station, self.identity, note.COSIGNATURE_V1)

    def to_json(self) -> dict[str, Any]:
        return {"identity": b64e(self.identity), "name": self.name, "station": self.station}


def parse_member(value: object) -> Member:
    obj = require_fields(value, "member", {"identity", "name", "station"})
    identity = b64d(obj["identity"], field="member.identity", size=32)
    if not isinstance(obj["name"], str) or not 0 < len(obj["name"]) <= 200:
        raise RejectedInput(Code.MALFORMED, "member.name: expected text of 1..200 characters")
    if obj["station"] != station_id(identity):
        raise RejectedInput(
            Code.MALFORMED, f"member {obj['station']!r}: the station id is not its key's id"
        )
    return Member(obj["station"], obj["name"], identity)


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


class ChainTree:
    """An append-only RFC 9162 tree that keeps every complete, aligned subtree's hash.

    Any subtree the RFC's recursive definitions ask for is either such a subtree (a lookup) or
    splits into one plus a smaller right part, so roots and proofs of any size cost O(log^2 n)
    instead of rehashing the chain: a station checkpointing a long chain every few dozen
    envelopes would otherwise hash it from the start each time. Results equal `merkle`'s.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaf_hashes:
            self.append(leaf)

    @classmethod
    def of_envelopes(cls, envelope_hashes: Iterable[bytes]) -> ChainTree:
        return cls(leaves(envelope_hashes))

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def append(self, leaf: bytes) -> None:
        levels = self._levels
        levels[0].append(leaf)
        i, h = len(levels[0]) - 1, 0
        while i & 1:  # this leaf completes a subtree one level up
            node = merkle.node_hash(levels[h][i - 1], levels[h][i])
            h, i = h + 1, i >> 1
            if len(levels) == h:
                levels.append([])
            levels[h].append(node)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0:  # a power of two: the RFC's recursion only asks for aligned ones
            h = n.bit_length() - 1
            return self._levels[h][lo >> h]
        k = 1 << ((n - 1).bit_length() - 1)
        return merkle.node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def _check(self, n: int) -> None:
        if not 0 <= n <= self.size:
            raise LocalError(Code.INVALID_REQUEST, f"the tree has {self.size} leaves, not {n}")

    def root(self, n: int | None = None) -> bytes:
        """MTH of the first `n` leaves (all of them by default)."""
        n = self.size if n is None else n
        self._check(n)
        return self._mth(0, n) if n else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, n: int) -> list[bytes]:
        """PATH(index, D[n]), nearest the leaf first."""
        self._check(n)
        if not 0 <= index < n:
            raise LocalError(Code.INVALID_REQUEST, f"leaf {index} is not in a tree of {n}")
        path: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if index < lo + k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) for 0 < m <= n, nearest the leaves first."""
        self._check(n)
        if not 0 < m <= n:
            raise LocalError(Code.INVALID_REQUEST, f"old size {m} must be in 1..{n}")
        proof: list[bytes] = []
        lo, hi, complete = 0, n, True
        while m != hi - lo:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if m <= k:
                proof.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._mth(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            proof.append(self._mth(lo, hi))
        proof.reverse()
        return proof


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


def _parse_signed_checkpoint(text: object, what: str) -> tuple[note.Note, note.Checkpoint]:
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
    signed, cp = _parse_signed_checkpoint(obj["note"], CHECKPOINT)
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


def check_cosign_body(body: dict[str, Any]) -> CosignBody:
    """The records checker of `checkpoint.cosign` bodies."""
    try:
        obj = require_fields(body, COSIGN, {"type", "of", "size", "note"})
    except RejectedInput as exc:
        raise _bad(exc.message) from exc
    signed, cp = _parse_signed_checkpoint(obj["note"], COSIGN)
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


def checkpoint_body(
    key: crypto.SigningKey,
    channel: str,
    chain: Sequence[bytes] | ChainTree,
    prev: int = 0,
) -> dict[str, Any]:
    """The `checkpoint` body that `key`'s station sends over its whole chain so far (its
    envelope hashes in seq order, or their tree), with a consistency proof from its previous
    checkpoint of size `prev` (0: none)."""
    sender = station_id(key.public)
    tree = chain if isinstance(chain, ChainTree) else ChainTree.of_envelopes(chain)
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
    cp: CheckpointBody, key: crypto.SigningKey, timestamp: int
) -> tuple[dict[str, Any], note.Signature]:
    """The `checkpoint.cosign` body countersigning `cp` at `timestamp` (POSIX seconds)."""
    me = station_id(key.public)
    line = note.cosign(cp.text, me, key, timestamp)
    signed = note.Note(cp.text, (cp.signatures[0], line)).format()
    return {"type": COSIGN, "of": cp.sender, "size": cp.size, "note": signed}, line


def verify_signature_line(text: str, sig: note.Signature, verifier: note.Verifier) -> bool:
    """True if `sig` is `verifier`'s valid note signature (0x01) or cosignature (0x04) on
    `text`, a checkpoint's note text its caller has already parsed (as note.verify_cosignature
    would parse it again)."""
    if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
        return False
    if verifier.sig_type == note.COSIGNATURE_V1:
        if len(sig.signature) != 8 + crypto.SIGNATURE_BYTES:
            return False
        stamp = note.cosignature_timestamp(sig)
        message = note.cosignature_message(text, stamp)
        return stamp <= note.MAX_TIMESTAMP and crypto.verify(
            verifier.public, b"", message, sig.signature[8:]
        )
    return crypto.verify(verifier.public, b"", text.encode("utf-8"), sig.signature)


def assemble_note(text: str, signatures: Iterable[note.Signature]) -> str:
    """One signed note with every distinct signature line given, in order (first wins)."""
    seen: dict[tuple[str, bytes], note.Signature] = {}
    for s in signatures:
        seen.setdefault((s.name, s.key_id), s)
    return note.Note(text, tuple(seen.values())).format()


# --- fast envelope scan ---------------------------------------------------------------------------


class Scanned(NamedTuple):
    """What checking a transcript needs of one envelope; base64 fields kept as their text.
    (A NamedTuple: one is made per envelope, and a frozen dataclass costs microseconds.)"""

    channel: str
    sender: str
    seq: int
    ts: int
    prev_b64: bytes
    commit_b64: bytes
    seen: tuple[tuple[str, int, bytes], ...]  # (member, seq, hash as base64url text)
    recipients: tuple[str, ...]
    sig: bytes
    signing_input: bytes


def _b64_exact(nbytes: int) -> bytes:
    """Canonical unpadded base64url of exactly `nbytes` bytes: unused trailing bits are zero."""
    full, rem = divmod(nbytes, 3)
    body = rb"[A-Za-z0-9_-]{%d}" % (4 * full + rem)
    return body + (b"", rb"[AQgw]", rb"[AEIMQUYcgkosw048]")[rem]


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The last character of unpadded base64url, by length mod 4, when the unused bits are zero.
_LAST_CHAR = {2: b"AQgw", 3: b"AEIMQUYcgkosw048"}
_SID = rb"st[a-z2-7]{24}"
_INT = rb"(?:0|[1-9][0-9]{0,15})"
_H32 = _b64_exact(32)
_RECIPIENT = rb'\{"kid":"' + _b64_exact(9) + rb'","to":"' + _SID + rb'","wrap":"'
_RECIPIENT += _b64_exact(48) + rb'"\}'
_SEEN = rb'"' + _SID + rb'":\{"hash":"' + _H32 + rb'","seq":' + _INT + rb"\}"
# The one canonical (RFC 8785) form of a valid envelope: keys in order, no whitespace, no escapes.
# Capturing groups, in order: ch, commit, ct, from, keys, prev, seen, seq, the whole "sig"
# member, sig, ts (positional: one `groups()` call is cheaper than eleven lookups by name).
_ENVELOPE = re.compile(
    b"".join(
        [
            rb'\{"ch":"(', _b64_exact(16), rb')","commit":"(', _H32, rb')"',
            rb',"ct":"([^"]*)","eph":"', _H32, rb'","from":"(', _SID, rb')"',
            rb',"keys":\[(', _RECIPIENT, rb"(?:,", _RECIPIENT, rb")*)\]",
            rb',"nonce":"', _b64_exact(24), rb'","prec":"(?:ROUTINE|PRIORITY|IMMEDIATE|FLASH)"',
            rb',"prev":"(', _H32, rb')"',
            rb',"seen":\{((?:', _SEEN, rb"(?:,", _SEEN, rb")*)?)\}",
            rb',"seq":(', _INT, rb")",
            rb',("sig":"(', _b64_exact(64), rb')",)',
            rb'"ts":(', _INT, rb'),"v":1\}',
        ]
    )
)  # fmt: skip
_REC_TO = len(b'{"kid":"') + 12 + len(b'","to":"')
_REC_LEN = _REC_TO + 26 + len(b'","wrap":"') + 64 + len(b'"}')
_SEEN_HASH = len(b'"') + 26 + len(b'":{"hash":"')
_SEEN_SEQ = _SEEN_HASH + 43 + len(b'","seq":')
_ZERO_B64 = b"A" * 43
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_SALT = re.compile(_H32)


def _b64u_bytes(h: bytes) -> bytes:
    """Unpadded base64url, as bytes (binascii directly: this runs for every envelope)."""
    return binascii.b2a_base64(h, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def _salt(text: bytes) -> bytes | None:
    """A salt's 32 bytes from its canonical base64url, or None."""
    if _SALT.fullmatch(text) is None:
        return None
    return binascii.a2b_base64(text.translate(_FROM_URLSAFE) + b"=")


def scan_fast(raw: bytes) -> Scanned | None:
    """The envelope if `raw` is in the canonical form this grammar knows; None to defer to the
    reference parser (which then accepts or names the error)."""
    m = _ENVELOPE.fullmatch(raw) if len(raw) <= MAX_ENVELOPE_BYTES else None
    if m is None:
        return None
    ch, commit, ct, sender_b, keys, prev, seen_b, seq_b, _, sig, ts_b = m.groups()
    # The ciphertext is matched loosely (a regex per 4 characters is slow on long text) and
    # checked here: base64url alphabet only, a possible length, zero unused trailing bits.
    rem = len(ct) % 4
    if rem == 1 or ct.translate(None, _B64_ALPHABET) or (rem and ct[-1] not in _LAST_CHAR[rem]):
        return None
    seq, ts = int(seq_b), int(ts_b)
    if not 1 <= seq <= MAX_SAFE_INT or ts > MAX_SAFE_INT or (seq == 1) != (prev == _ZERO_B64):
        return None
    sender = sender_b.decode("ascii")
    # The grammar fixed every recipient's and `seen` entry's layout: slice, do not search.
    if len(keys) == _REC_LEN:
        recipients: tuple[str, ...] = (keys[_REC_TO : _REC_TO + 26].decode("ascii"),)
    else:
        recipients = tuple(
            keys[i + _REC_TO : i + _REC_TO + 26].decode("ascii")
            for i in range(0, len(keys), _REC_LEN + 1)
        )
        if len(recipients) > MAX_RECIPIENTS or any(a >= b for a, b in pairwise(recipients)):
            return None
    if sender in recipients:
        return None
    seen: list[tuple[str, int, bytes]] = []
    last = ""
    for e in seen_b.split(b"},") if seen_b else ():
        k, q = e[1:27].decode("ascii"), int(e[_SEEN_SEQ:].rstrip(b"}"))
        if k <= last or k == sender or not 1 <= q <= MAX_SAFE_INT:
            return None  # keys unsorted or repeated, the sender's own, or a bad seq
        seen.append((k, q, e[_SEEN_HASH : _SEEN_HASH + 43]))
        last = k
    if len(seen) > MAX_RECIPIENTS:
        return None
    s0, s1 = m.span(9)
    return Scanned(
        ch.decode("ascii"),
        sender,
        seq,
        ts,
        prev,
        commit,
        tuple(seen),
        recipients,
        binascii.a2b_base64(sig.translate(_FROM_URLSAFE) + b"=="),
        # Canonical JSON without "sig" is these bytes without the `"sig":"…",` member.
        raw[:s0] + raw[s1:],
    )


def scan_envelope(raw: bytes) -> Scanned:
    """The envelope's fields; raises RejectedInput exactly when `parse_envelope` does."""
    fast = scan_fast(raw)
    if fast is not None:
        return fast
    env = parse_envelope(raw)
    return Scanned(
        channel=env.channel,
        sender=env.sender,
        seq=env.seq,
        ts=env.ts,
        prev_b64=b64e(env.prev).encode("ascii"),
        commit_b64=b64e(env.commit).encode("ascii"),
        seen=tuple((m, r.seq, b64e(r.hash).encode("ascii")) for m, r in sorted(env.seen.items())),
        recipients=tuple(r.to for r in env.keys),
        sig=env.sig,
        signing_input=signing_input(env),
    )


def commitment_b64(salt: bytes, body_text: bytes) -> bytes:
    """base64url of the commitment over the body's canonical bytes, as an envelope carries it."""
    return _b64u_bytes(crypto.sha256(COMMIT_LABEL + salt + body_text))


# --- reports --------------------------------------------------------------------------------------


@dataclass
class Check:
    """One named check: how many items passed and failed, and why the first failures failed."""

    name: str
    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def ok(self) -> None:
        self.passed += 1

    def fail(self, why: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(why)

    def record(self, good: bool, why: str) -> bool:
        if good:
            self.passed += 1
        else:
            self.fail(why)
        return good

    @property
    def status(self) -> str:
        return "fail" if self.failed else "pass" if self.passed else "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status,
            "passed": self.passed,
            "failed": self.failed,
            "failures": list(self.failures),
        }


@dataclass
class Report:
    """Every check by name, in a fixed order, and facts about what was checked."""

    checks: dict[str, Check]
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, names: Sequence[str]) -> Report:
        return cls({n: Check(n) for n in names})

    def __getitem__(self, name: str) -> Check:
        return self.checks[name]

    @property
    def ok(self) -> bool:
        return self.checks["file_format"].passed > 0 and not any(
            c.failed for c in self.checks.values()
        )

    @property
    def failed(self) -> list[str]:
        return [n for n, c in self.checks.items() if c.failed]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks.values()],
            "facts": self.facts,
        }


def anchor_members(report: Report, members: Sequence[Member], trust: TrustPolicy) -> list[Any]:
    """The `member_keys` check: every member key the file names must match an anchor the
    verifier was given (protocol/trust.py); with the unsafe policy nothing is checked, and the
    report says so. Returns the members as facts, each with what anchored it."""
    out: list[Any] = []
    if not isinstance(trust, Anchors):
        report.facts["trust"] = {"policy": trust.name, "warning": trust.warning}
    else:
        report.facts["trust"] = {"policy": "anchored", "anchors": len(trust.anchors)}
    for m in members:
        fp = fingerprint(m.identity)
        anchor = trust.anchor_of(m.identity) if isinstance(trust, Anchors) else None
        if isinstance(trust, Anchors):
            report["member_keys"].record(
                anchor is not None,
                f"member {m.name} ({m.station}, fingerprint {fp}) is not anchored: no trusted "
                "station id, fingerprint or key is its key",
            )
        out.append({**m.to_json(), "fingerprint": fp, "anchored_by": anchor and anchor.source})
    return out


# --- transcript files -----------------------------------------------------------------------------


def _line(*fields: bytes) -> bytes:
    for f in fields:
        if b"\t" in f or b"\n" in f:
            raise LocalError(Code.INVALID_REQUEST, "a transcript field contains a tab or newline")
    return b"\t".join(fields) + b"\n"


class TranscriptWriter:
    """Produces the lines of a transcript file, hashing them for the exporter's signature.

        parley-transcript/v1
        header      <canonical JSON: v, channel, exported_by, exported_at, members>
        envelope    <envelope bytes> [<salt b64u> <canonical body JSON>]     (in causal order)
        checkpoint  <canonical JSON: sender, size, note with every signature held>
        signature   <b64u Ed25519 by exported_by over TRANSCRIPT_LABEL || SHA-256(lines above)>

    Fields are separated by one tab; no field can hold a tab or newline (canonical JSON
    escapes them inside strings).
    """

    def __init__(
        self, channel: str, members: Sequence[Member], exported_by: str, exported_at: int
    ) -> None:
        if exported_by not in {m.station for m in members}:
            raise LocalError(Code.INVALID_REQUEST, "the exporter must be a member")
        self._hash = hashlib.sha256()
        self._head = [
            FORMAT.encode("ascii") + b"\n",
            _line(
                b"header",
                canonical(
                    {
                        "v": 1,
                        "channel": channel,
                        "exported_by": exported_by,
                        "exported_at": exported_at,
                        "members": [m.to_json() for m in sorted(members, key=lambda m: m.station)],
                    }
                ),
            ),
        ]

    def _emit(self, line: bytes) -> bytes:
        self._hash.update(line)
        return line

    def start(self) -> list[bytes]:
        """The first two lines: the magic line and the header."""
        return [self._emit(line) for line in self._head]

    def envelope(
        self, raw: bytes, salt: bytes | None = None, body_text: bytes | None = None
    ) -> bytes:
        if salt is None or body_text is None:
            return self._emit(_line(b"envelope", raw))
        return self._emit(_line(b"envelope", raw, b64e(salt).encode("ascii"), body_text))

    def checkpoint(self, sender: str, size: int, signed_note: str) -> bytes:
        doc = {"sender": sender, "size": size, "note": signed_note}
        return self._emit(_line(b"checkpoint", canonical(doc)))

    def finish(self, key: crypto.SigningKey) -> bytes:
        sig = key.sign(TRANSCRIPT_LABEL, self._hash.digest())
        return _line(b"signature", b64e(sig).encode("ascii"))


SignatureJob = tuple[bytes, bytes, bytes]
"""(public key, signed bytes without the label, signature) of one envelope."""

BatchVerify = Callable[[list[SignatureJob]], Callable[[], list[bool]]]
"""Start checking a batch of envelope signatures; the returned function gives the results.
`verify_now` checks at once; a caller may pass one that checks on another thread, so that
signatures are checked while the next lines are parsed (the core itself starts no threads)."""

SIGNATURE_BATCH = 256


def verify_now(jobs: list[SignatureJob]) -> Callable[[], list[bool]]:
    results = [crypto.verify(pk, ENVELOPE_LABEL, signed, sig) for pk, signed, sig in jobs]
    return lambda: results


class _Chain:
    """One sender's chain as the file gives it, and its Merkle tree so far."""

    __slots__ = ("b64", "frontier", "hashes", "last_ts", "roots")

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.b64: list[bytes] = []
        self.frontier = merkle.Frontier()
        self.last_ts = 0
        self.roots: dict[int, bytes] = {}

    def root(self, size: int) -> bytes | None:
        """The root of this chain's first `size` envelopes, if the file holds that many."""
        if size in self.roots:
            return self.roots[size]
        if size == self.frontier.size:
            r = self.frontier.root()
        elif 0 < size <= len(self.hashes):
            r = merkle.root(leaves(self.hashes[:size]))
        else:
            return None
        self.roots[size] = r
        return r


class _Verifier:
    def __init__(
        self, report: Report, trust: TrustPolicy, batch_verify: BatchVerify = verify_now
    ) -> None:
        self.r = report
        self.trust = trust
        self.batch_verify = batch_verify
        self.sig_jobs: list[SignatureJob] = []
        self.sig_where: list[tuple[int, str, int]] = []  # (line, sender, seq) of each job
        self.sig_started: list[tuple[list[tuple[int, str, int]], Callable[[], list[bool]]]] = []
        self.channel = ""
        self.members: dict[str, Member] = {}
        self.chains: dict[str, _Chain] = {}
        self.memo: dict[tuple[str, bytes, str, bytes], bool] = {}
        self.checkpoints: dict[tuple[str, int], bytes] = {}  # (sender, size) -> root signed
        self.cosigned: dict[tuple[str, int], set[str]] = {}  # (sender, size) -> cosigners
        self.bodies = 0
        self.envelopes = 0
        self.others: dict[str, tuple[str, ...]] = {}
        self.c_format, self.c_signature = report["envelope_format"], report["signature"]
        self.c_seq, self.c_links = report["seq_order"], report["chain_links"]
        self.c_ts, self.c_causal = report["timestamps"], report["causal_order"]
        self.c_commit = report["body_commitment"]

    # signature lines are checked once however often they appear (bodies, checkpoint lines)
    def line_ok(self, text: str, sig: note.Signature, v: note.Verifier) -> bool:
        k = (v.name, bytes([v.sig_type]) + v.public, text, sig.key_id + sig.signature)
        if k not in self.memo:
            self.memo[k] = verify_signature_line(text, sig, v)
        return self.memo[k]

    def start_signatures(self) -> None:
        if self.sig_jobs:
            self.sig_started.append((self.sig_where, self.batch_verify(self.sig_jobs)))
            self.sig_jobs, self.sig_where = [], []

    def finish_signatures(self) -> None:
        """Collect every envelope signature's result (in file order)."""
        self.start_signatures()
        for wheres, results in self.sig_started:
            for ok, (n, sid, seq) in zip(results(), wheres, strict=True):
                if ok:
                    self.c_signature.passed += 1
                else:
                    where = f"line {n} ({self.name(sid)} seq {seq})"
                    self.c_signature.fail(f"{where}: the signature does not verify")
        self.sig_started = []

    def root(self, sender: str, size: int) -> bytes | None:
        chain = self.chains.get(sender)
        return chain.root(size) if chain else None

    def where(self, n: int, s: Scanned) -> str:
        return f"line {n} ({self.name(s.sender)} seq {s.seq})"

    def name(self, station: str) -> str:
        m = self.members.get(station)
        return m.name if m else station

    # --- envelopes ---
    def envelope(self, n: int, fields: list[bytes]) -> None:
        # The hot path: one envelope per call; messages are only formatted for failures.
        self.envelopes += 1
        raw = fields[1]
        try:
            s = scan_envelope(raw)
        except RejectedInput as exc:
            self.c_format.fail(f"line {n}: {exc.message}")
            return
        channel, sid, seq, ts, prev, commit, seen, recipients, sig, signed = s
        sender = self.members.get(sid)
        if channel != self.channel or sender is None or recipients != self.others[sid]:
            why = (
                "another channel"
                if channel != self.channel
                else "a sender who is not a member"
                if sender is None
                else "recipients other than the other members"
            )
            self.c_format.fail(f"line {n}: the envelope has {why}")
            return
        self.c_format.passed += 1
        h = crypto.sha256(raw)
        self.sig_jobs.append((sender.identity, signed, sig))
        self.sig_where.append((n, sid, seq))
        if len(self.sig_jobs) >= SIGNATURE_BATCH:
            self.start_signatures()
        chain = self.chains[sid]
        held = len(chain.b64)
        if seq == held + 1:
            self.c_seq.passed += 1
        else:
            self.c_seq.fail(
                f"{self.where(n, s)}: expected seq {held + 1} of this chain here "
                "(an envelope is missing, repeated or out of order)"
            )
        if prev == (chain.b64[-1] if held else _ZERO_B64):
            self.c_links.passed += 1
        else:
            self.c_links.fail(f"{self.where(n, s)}: prev is not the hash of the previous envelope")
        if ts >= chain.last_ts:
            self.c_ts.passed += 1
            chain.last_ts = ts
        else:
            self.c_ts.fail(f"{self.where(n, s)}: earlier than its predecessor")
        chains = self.chains
        for m, q, hb in seen:
            other = chains.get(m)
            if other is None or q > len(other.b64) or other.b64[q - 1] != hb:
                self.c_causal.fail(f"{self.where(n, s)}: {self.unseen(m, q)}")
                break
        else:
            self.c_causal.passed += 1
        if len(fields) == 4:
            self.bodies += 1
            salt, text = _salt(fields[2]), fields[3]
            if salt is None or commitment_b64(salt, text) != commit:
                self.c_commit.fail(
                    f"{self.where(n, s)}: the body and salt do not match the signed commitment"
                )
            else:
                self.c_commit.passed += 1
                # Only checkpoints need parsing: the commitment already fixed every body's bytes.
                if b'"type":"checkpoint' in text:
                    self.body(n, s, text)
        chain.hashes.append(h)
        chain.b64.append(_b64u_bytes(h))
        chain.frontier.append(merkle.leaf_hash(h))

    def unseen(self, m: str, q: int) -> str:
        other = self.chains.get(m)
        if m not in self.members:
            return f"names {m}, which is not a member"
        if other is None or q > len(other.hashes):
            return f"has seen {self.name(m)} seq {q}, which comes later or not at all"
        return f"has seen a {self.name(m)} seq {q} other than the one in this file"

    def body(self, n: int, s: Scanned, text: bytes) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if body.get("type") == CHECKPOINT:
            self.checkpoint_body(n, s, body)
        elif body.get("type") == COSIGN:
            self.cosign_body(n, s, body)

    def checkpoint_body(self, n: int, s: Scanned, body: dict[str, Any]) -> None:
        r, at = self.r, self.where(n, s)
        try:
            cb = check_checkpoint_body(body)
        except RejectedInput as exc:
            r["checkpoint_signature"].fail(f"{at}: {exc.message}")
            return
        if (cb.channel, cb.sender, cb.size) != (self.channel, s.sender, s.seq - 1):
            r["checkpoint_signature"].fail(
                f"{at}: a checkpoint at seq {s.seq} must name this channel and its sender's "
                f"chain, and cover seq 1..{s.seq - 1}"
            )
            return
        signer = self.members[s.sender].signer
        if not r["checkpoint_signature"].record(
            self.line_ok(cb.text, cb.signatures[0], signer),
            f"{at}: the checkpoint note's signature does not verify with the sender's key",
        ):
            return
        self.checkpoints[(s.sender, cb.size)] = cb.root
        mine = self.root(s.sender, cb.size)
        r["checkpoint_root"].record(
            mine == cb.root,
            f"{at}: the checkpoint's root is not the root of the chain's envelopes "
            f"1..{cb.size} in this file",
        )
        if cb.prev:
            old = self.root(s.sender, cb.prev)
            try:
                if old is None:
                    raise RejectedInput(Code.MALFORMED, f"the file lacks seq 1..{cb.prev}")
                merkle.verify_consistency(cb.prev, cb.size, cb.proof, old, cb.root)
            except RejectedInput as exc:
                r["consistency"].fail(
                    f"{at}: no consistent extension of checkpoint {cb.prev}: {exc.message}"
                )
            else:
                r["consistency"].ok()

    def cosign_body(self, n: int, s: Scanned, body: dict[str, Any]) -> None:
        r, at = self.r, self.where(n, s)
        try:
            cb = check_cosign_body(body)
        except RejectedInput as exc:
            r["cosignature"].fail(f"{at}: {exc.message}")
            return
        of = self.members.get(cb.of)
        if cb.channel != self.channel or of is None or cb.cosignature.name != s.sender:
            r["cosignature"].fail(
                f"{at}: a cosignature must be its sender's, on a member's chain of this channel"
            )
            return
        if not (
            self.line_ok(cb.text, cb.signature, of.signer)
            and self.line_ok(cb.text, cb.cosignature, self.members[s.sender].cosigner)
        ):
            r["cosignature"].fail(f"{at}: a signature on the cosigned checkpoint does not verify")
            return
        if not r["cosignature"].record(
            self.root(cb.of, cb.size) == cb.root,
            f"{at}: it cosigns a root of {self.name(cb.of)}'s chain at size {cb.size} that is "
            "not the root of the envelopes in this file",
        ):
            return
        self.cosigned.setdefault((cb.of, cb.size), set()).add(s.sender)

    # --- assembled checkpoints ---
    def checkpoint_line(self, n: int, payload: bytes) -> None:
        r = self.r
        try:
            # Not held to canonical form: what matters in it is the note, whose lines are signed.
            doc = require_fields(
                parse(payload, require_canonical=False),
                "checkpoint line",
                {"sender", "size", "note"},
            )
            if not isinstance(doc["sender"], str) or type(doc["size"]) is not int:
                raise RejectedInput(Code.MALFORMED, "checkpoint line: sender text, size integer")
            sender = self.members.get(doc["sender"])
            signed, cp = _parse_signed_checkpoint(doc["note"], "checkpoint line")
        except RejectedInput as exc:
            r["file_format"].fail(f"line {n}: {exc.message}")
            return
        at = f"line {n} (checkpoint of {self.name(doc['sender'])} at size {cp.size})"
        if (
            sender is None
            or cp.origin != origin(self.channel, sender.station)
            or (doc["size"] != cp.size)
        ):
            r["checkpoint_signature"].fail(f"{at}: it does not name a member's chain here")
            return
        own = [s for s in signed.signatures if s.name == sender.station]
        if not r["checkpoint_signature"].record(
            len(own) == 1 and self.line_ok(signed.text, own[0], sender.signer),
            f"{at}: the sender's signature is missing or does not verify",
        ):
            return
        if not r["checkpoint_root"].record(
            self.root(sender.station, cp.size) == cp.root_hash,
            f"{at}: the root is not the root of the chain's envelopes 1..{cp.size} in this file",
        ):
            return
        for sig in signed.signatures:
            if sig is own[0]:
                continue
            m = self.members.get(sig.name)
            if r["cosignature"].record(
                m is not None and self.line_ok(signed.text, sig, m.cosigner),
                f"{at}: the cosignature by {self.name(sig.name)} does not verify",
            ):
                self.cosigned.setdefault((sender.station, cp.size), set()).add(sig.name)

    def header(self, n: int, fields: list[bytes]) -> bool:
        try:
            if len(fields) != 2 or fields[0] != b"header":
                raise RejectedInput(Code.MALFORMED, "line 2 must be the header")
            doc = require_fields(
                parse(fields[1], limit=MAX_HEADER_BYTES),
                "header",
                {"v", "channel", "exported_by", "exported_at", "members"},
            )
            if doc["v"] != 1 or type(doc["v"]) is not int:
                raise RejectedInput(Code.MALFORMED, "header: unsupported version")
            if not isinstance(doc["exported_by"], str) or type(doc["exported_at"]) is not int:
                raise RejectedInput(Code.MALFORMED, "header: exported_by text, exported_at ms")
            b64d(doc["channel"], field="header.channel", size=16)
            raw_members = doc["members"]
            if not isinstance(raw_members, list) or not 2 <= len(raw_members) <= 64:
                raise RejectedInput(Code.MALFORMED, "header.members: 2..64 members")
            members = [parse_member(m) for m in raw_members]
            if len({m.station for m in members}) != len(members):
                raise RejectedInput(Code.MALFORMED, "header.members: a member appears twice")
            if doc["exported_by"] not in {m.station for m in members}:
                raise RejectedInput(Code.MALFORMED, "header.exported_by: not a member")
        except RejectedInput as exc:
            self.r["file_format"].fail(f"line {n}: {exc.message}")
            return False
        self.channel = doc["channel"]
        self.members = {m.station: m for m in members}
        self.others = {m: tuple(sorted(set(self.members) - {m})) for m in self.members}
        self.chains = {m: _Chain() for m in self.members}
        self.r.facts.update(
            channel=self.channel,
            exported_by=doc["exported_by"],
            exported_at=doc["exported_at"],
            members=anchor_members(self.r, members, self.trust),
        )
        return True

    def facts(self) -> None:
        chains = []
        for station, chain in sorted(self.chains.items()):
            fixed = [size for (who, size), c in self.cosigned.items() if who == station and c]
            chains.append(
                {
                    "sender": station,
                    "name": self.name(station),
                    "envelopes": len(chain.hashes),
                    "checkpoints": sum(1 for who, _ in self.checkpoints if who == station),
                    "cosigned_up_to": max(fixed, default=0),
                }
            )
        self.r.facts.update(
            envelopes=self.envelopes,
            bodies=self.bodies,
            chains=chains,
            note_signatures=len(self.memo),  # distinct checkpoint and cosignature lines checked
        )


def verify_transcript(
    lines: Iterable[bytes],
    progress: Callable[[int], None] | None = None,
    batch_verify: BatchVerify = verify_now,
    *,
    trust: TrustPolicy,
) -> Report:
    """Check a transcript file given as its lines (each ending in b"\\n"), offline.

    `trust` says which member keys to accept (protocol/trust.py): there is no default, and the
    file's own keys count only under `UNSAFE_TRUST_FILE_KEYS`. `progress(bytes_done)` is called
    every few thousand lines. Never raises for bad input. `batch_verify` checks envelope
    signatures (see BatchVerify).
    """
    report = Report.of(TRANSCRIPT_CHECKS)
    v = _Verifier(report, trust, batch_verify)
    digest = hashlib.sha256()
    signature: bytes | None = None
    after_signature = False
    done = 0
    n = 0
    envelope, update = v.envelope, digest.update
    for n, line in enumerate(lines, start=1):
        done += len(line)
        if progress is not None and n % 4096 == 0:
            progress(done)
        if line[-1:] != b"\n":
            report["file_format"].fail(f"line {n}: the last line does not end in a newline")
        fields = line.rstrip(b"\n").split(b"\t")
        if fields[0] == b"envelope" and n > 2 and signature is None and len(fields) in (2, 4):
            envelope(n, fields)  # the common case first
        elif n == 1:
            if line != FORMAT.encode("ascii") + b"\n":
                report["file_format"].fail(f"line 1: not a {FORMAT} file")
                break
        elif n == 2:
            if not v.header(n, fields):
                return report
        elif signature is not None:
            after_signature = True
        elif fields[0] == b"checkpoint" and len(fields) == 2:
            v.checkpoint_line(n, fields[1])
        elif fields[0] == b"signature" and len(fields) == 2:
            try:
                signature = b64d(fields[1].decode("ascii"), field="signature", size=64)
            except (RejectedInput, UnicodeDecodeError):
                signature = b""
            continue
        else:
            report["file_format"].fail(f"line {n}: unknown line {fields[0][:20]!r}")
        update(line)
    v.finish_signatures()
    if progress is not None:
        progress(done)
    if n < 2:
        if n == 0:
            report["file_format"].fail("the file is empty")
        elif not report["file_format"].failed:
            report["file_format"].fail("the file ends after line 1")
        return report
    if v.members and not report["file_format"].failed:
        report["file_format"].ok()
    if after_signature:
        report["file_format"].fail("lines follow the exporter's signature")
    exporter = v.members.get(str(report.facts.get("exported_by", "")))
    if signature is None:
        report["export_signature"].fail("the file has no signature line (it is cut short)")
    elif exporter is not None:
        report["export_signature"].record(
            crypto.verify(exporter.identity, TRANSCRIPT_LABEL, digest.digest(), signature),
            "the exporter's signature does not cover this file as it is",
        )
    v.facts()
    return report


# --- message proofs -------------------------------------------------------------------------------


def make_proof(
    *,
    channel: str,
    sender: Member,
    cosigners: Sequence[Member],
    envelope_raw: bytes,
    salt: bytes,
    body_text: str,
    signed_note: str,
    chain_hashes: Sequence[bytes],
    seq: int,
) -> dict[str, Any]:
    """A proof that `sender` sent this message at `seq` of its chain, fixed by a countersigned
    checkpoint over `chain_hashes` (its envelope hashes 1..size): reveals nothing else."""
    tree = leaves(chain_hashes)
    if not 1 <= seq <= len(tree):
        raise LocalError(Code.INVALID_REQUEST, f"seq {seq} is not covered by the checkpoint")
    return {
        "format": PROOF_FORMAT,
        "channel": channel,
        "members": [sender.to_json(), *(c.to_json() for c in cosigners)],
        "envelope": envelope_raw.decode("ascii"),
        "salt": b64e(salt),
        "body": body_text,
        "checkpoint": signed_note,
        "inclusion": {
            "index": seq - 1,
            "size": len(tree),
            "hashes": [b64e(h) for h in merkle.inclusion_proof(seq - 1, tree)],
        },
    }


_PROOF_FIELDS = {"format", "channel", "members", "envelope", "salt", "body", "checkpoint",
                 "inclusion"}  # fmt: skip


def check_proof(doc: object, *, trust: TrustPolicy) -> Report:
    """Check a proof of one message offline, its members' keys against `trust` (as
    `verify_transcript`). Never raises for bad input."""
    r = Report.of(PROOF_CHECKS)
    try:
        obj = require_fields(doc, "proof", _PROOF_FIELDS)
        if obj["format"] != PROOF_FORMAT:
            raise RejectedInput(Code.MALFORMED, f"not a {PROOF_FORMAT} document")
        b64d(obj["channel"], field="channel", size=16)
        if not isinstance(obj["members"], list) or not 1 <= len(obj["members"]) <= 64:
            raise RejectedInput(Code.MALFORMED, "members: 1..64 members")
        members = [parse_member(m) for m in obj["members"]]
        raw = obj["envelope"].encode("ascii") if isinstance(obj["envelope"], str) else None
        body_text = obj["body"].encode("utf-8") if isinstance(obj["body"], str) else None
        if raw is None or body_text is None or not isinstance(obj["checkpoint"], str):
            raise RejectedInput(Code.MALFORMED, "envelope, body and checkpoint are text")
        salt = b64d(obj["salt"], field="salt", size=32)
        inc = require_fields(obj["inclusion"], "inclusion", {"index", "size", "hashes"})
        if not isinstance(inc["hashes"], list) or len(inc["hashes"]) > 64:
            raise RejectedInput(Code.MALFORMED, "inclusion.hashes: at most 64 hashes")
        path = [b64d(h, field="inclusion.hashes", size=32) for h in inc["hashes"]]
        index, size = inc["index"], inc["size"]
        if type(index) is not int or type(size) is not int:
            raise RejectedInput(Code.MALFORMED, "inclusion: index and size are integers")
    except (RejectedInput, UnicodeEncodeError) as exc:
        why = exc.message if isinstance(exc, RejectedInput) else "the envelope is not ASCII"
        r["file_format"].fail(why)
        return r
    r["file_format"].ok()
    keys = anchor_members(r, members, trust)
    channel = obj["channel"]
    try:
        s = scan_envelope(raw)
    except RejectedInput as exc:
        r["envelope_format"].fail(exc.message)
        return r
    sender = members[0]
    if not r["envelope_format"].record(
        s.channel == channel and s.sender == sender.station,
        "the envelope is not the first member's, on this channel",
    ):
        return r
    r["signature"].record(
        crypto.verify(sender.identity, ENVELOPE_LABEL, s.signing_input, s.sig),
        "the envelope's signature does not verify with the sender's key",
    )
    r["body_commitment"].record(
        commitment_b64(salt, body_text) == s.commit_b64,
        "the body and salt do not match the envelope's signed commitment",
    )
    try:
        signed, cp = _parse_signed_checkpoint(obj["checkpoint"], "checkpoint")
    except RejectedInput as exc:
        r["checkpoint_signature"].fail(exc.message)
        return r
    own = [x for x in signed.signatures if x.name == sender.station]
    r["checkpoint_signature"].record(
        cp.origin == origin(channel, sender.station)
        and len(own) == 1
        and verify_signature_line(signed.text, own[0], sender.signer),
        "the checkpoint is not signed by the sender over its chain on this channel",
    )
    by = {m.station: m for m in members[1:] if m.station != sender.station}
    cosigners: list[dict[str, Any]] = []
    for x in signed.signatures:
        if x.name == sender.station:
            continue
        m = by.get(x.name)
        if r["cosignature"].record(
            m is not None and verify_signature_line(signed.text, x, m.cosigner),
            f"the cosignature by {x.name} does not verify with a key in the proof",
        ):
            assert m is not None
            ts = note.cosignature_timestamp(x)
            cosigners.append({"station": m.station, "name": m.name, "timestamp": ts})
    if not cosigners:
        r["cosignature"].fail("the checkpoint carries no valid cosignature by another member")
    try:
        if (index, size) != (s.seq - 1, cp.size):
            raise RejectedInput(
                Code.MALFORMED,
                f"the proof is for leaf {index} of {size}; the envelope is leaf {s.seq - 1} "
                f"and the checkpoint has size {cp.size}",
            )
        merkle.verify_inclusion(
            merkle.leaf_hash(crypto.sha256(raw)), index, size, path, cp.root_hash
        )
    except RejectedInput as exc:
        r["inclusion"].fail(exc.message)
    else:
        r["inclusion"].ok()
    try:
        body = parse(body_text)
    except RejectedInput:
        body = None
    r.facts.update(
        channel=channel,
        sender={**sender.to_json(), "fingerprint": fingerprint(sender.identity)},
        seq=s.seq,
        ts=s.ts,
        body=body,
        checkpoint_size=cp.size,
        cosigners=cosigners,
        keys=keys,
    )
    return r


def read_lines(data: bytes) -> Iterator[bytes]:
    """The lines of a transcript held in memory, each with its b"\\n" (split on 0x0A only)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        stop = len(data) if end < 0 else end + 1
        yield data[start:stop]
        start = stop
