"""Envelopes: the signed, encrypted unit on the wire. SHA-256 of its canonical bytes is its id.

Wire form (RFC 8785 JSON, binary as unpadded base64url; see docs/protocol.md §Envelope):

    {"v":1, "ch":<16 B>, "from":<station id>, "seq":n, "prev":<32 B>, "ts":<unix ms>,
     "prec":"ROUTINE"|"PRIORITY"|"IMMEDIATE"|"FLASH", "seen":{<station id>:{"seq":n,"hash":<32 B>}},
     "commit":<32 B>, "eph":<32 B>, "keys":[{"to":<station id>,"kid":<9 B>,"wrap":<48 B>}],
     "nonce":<24 B>, "ct":<AEAD ciphertext>, "sig":<64 B>}

Rules:
- `sig` is Ed25519 by `from` over "parley/envelope/v1\\0" || canonical(envelope without "sig").
- `prev` is the hash of the sender's previous envelope on this channel (32 zero bytes for seq 1).
- `commit` = SHA-256("parley/commit/v1\\0" || salt || canonical(body)): revealing (body, salt)
  later proves what was sent without revealing anything else.
- `ct` = XChaCha20-Poly1305(K, nonce, canonical({"body":…, "salt":…}), aad) with
  aad = canonical({"ch","from","seq"}); K is wrapped for each recipient under its prekey `kid`.
- `keys` is sorted by `to`; the sender is never a recipient of its own envelope.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from parley.errors import Code, RejectedInput
from parley.protocol import crypto, grammar
from parley.protocol.encoding import FROM_URLSAFE, b64d, b64e, canonical, parse
from parley.protocol.grammar import MAX_RECIPIENTS as MAX_RECIPIENTS
from parley.protocol.grammar import MIN_CT_BYTES as MIN_CT_BYTES
from parley.protocol.identity import is_station_id
from parley.protocol.schema import MAX_SAFE_INT, require_fields, require_int

ENVELOPE_LABEL = b"parley/envelope/v1\x00"
COMMIT_LABEL = b"parley/commit/v1\x00"
MAX_ENVELOPE_BYTES = 192 * 1024
ZERO_HASH = bytes(32)
PRECEDENCES = ("ROUTINE", "PRIORITY", "IMMEDIATE", "FLASH")
_FIELDS = {
    "v", "ch", "from", "seq", "prev", "ts", "prec", "seen",
    "commit", "eph", "keys", "nonce", "ct", "sig",
}  # fmt: skip


@dataclass(frozen=True)
class Ref:
    """A reference to one envelope in a chain: (seq, hash)."""

    seq: int
    hash: bytes


@dataclass(frozen=True)
class Recipient:
    to: str
    kid: str
    wrap: bytes


@dataclass(frozen=True)
class Envelope:
    channel: str
    sender: str
    seq: int
    prev: bytes
    ts: int
    prec: str
    seen: dict[str, Ref]
    commit: bytes
    eph: bytes
    keys: tuple[Recipient, ...]
    nonce: bytes
    ct: bytes
    sig: bytes
    raw: bytes  # the canonical bytes, as received or as sealed
    hash: bytes  # SHA-256(raw)

    @property
    def recipients(self) -> frozenset[str]:
        return frozenset(r.to for r in self.keys)

    @property
    def ref(self) -> Ref:
        return Ref(self.seq, self.hash)

    def key_for(self, station: str) -> Recipient | None:
        return next((r for r in self.keys if r.to == station), None)


@dataclass(frozen=True)
class RecipientKey:
    """Who to wrap for: a station and its prekey."""

    station: str
    kid: str
    public: bytes


@dataclass(frozen=True)
class Opened:
    """A decrypted envelope: the body, the salt that opens its commitment, and the body's
    canonical bytes (what the commitment covers)."""

    body: dict[str, Any]
    salt: bytes
    body_bytes: bytes


def commitment(salt: bytes, body: dict[str, Any]) -> bytes:
    return crypto.sha256(COMMIT_LABEL + salt + canonical(body))


def _plaintext(salt: bytes, body_bytes: bytes) -> bytes:
    """canonical({"body": body, "salt": b64e(salt)}) from the body's canonical bytes: the keys
    sort "body" < "salt" and base64url needs no escaping, so the splice is that encoding."""
    return b'{"body":' + body_bytes + b',"salt":"' + b64e(salt).encode("ascii") + b'"}'


def _aad(channel: str, sender: str, seq: int) -> bytes:
    """canonical({"ch": channel, "from": sender, "seq": seq}), spliced when both texts are
    base64url or station-id characters (never escaped) and seq a safe integer: the general
    encoder cost ~6 us of each seal and open (issue 14)."""
    if (
        type(seq) is int
        and 0 <= seq <= MAX_SAFE_INT
        and _PLAIN.fullmatch(channel) is not None
        and _PLAIN.fullmatch(sender) is not None
    ):
        return f'{{"ch":"{channel}","from":"{sender}","seq":{seq}}}'.encode("ascii")
    return canonical({"ch": channel, "from": sender, "seq": seq})


_PLAIN = re.compile(r"[A-Za-z0-9_-]*")  # characters JSON writes as themselves


def _unsigned_bytes(
    channel: str,
    sender: str,
    seq: int,
    prev: bytes,
    ts: int,
    prec: str,
    seen: dict[str, Ref],
    commit: bytes,
    eph: bytes,
    keys: list[Recipient],
    nonce: bytes,
    ct: bytes,
) -> bytes:
    """The unsigned envelope's canonical bytes for parts `_check_parts` accepted: every text is
    base64url, a station id or a precedence (nothing to escape), every integer safe, and the
    members stand in RFC 8785's key order. The general encoder walked and encoded the document
    for ~15-30 us of each seal (issue 14); a property test holds them equal to canonical() of
    the document (tests/test_protocol_core.py)."""
    seen_part = ",".join(
        f'"{m}":{{"hash":"{b64e(r.hash)}","seq":{r.seq}}}' for m, r in sorted(seen.items())
    )
    keys_part = ",".join(f'{{"kid":"{k.kid}","to":"{k.to}","wrap":"{b64e(k.wrap)}"}}' for k in keys)
    return (
        f'{{"ch":"{channel}","commit":"{b64e(commit)}","ct":"{b64e(ct)}","eph":"{b64e(eph)}",'
        f'"from":"{sender}","keys":[{keys_part}],"nonce":"{b64e(nonce)}","prec":"{prec}",'
        f'"prev":"{b64e(prev)}","seen":{{{seen_part}}},"seq":{seq},"ts":{ts},"v":1}}'
    ).encode("ascii")


def seal_from_parts(
    body: dict[str, Any],
    *,
    identity: crypto.SigningKey,
    sender: str,
    channel: str,
    seq: int,
    prev: bytes,
    seen: dict[str, Ref],
    recipients: list[RecipientKey],
    now_ms: int,
    prec: str,
    salt: bytes,
    content_key: bytes,
    nonce: bytes,
    ephemeral: crypto.KemKey,
    body_bytes: bytes | None = None,
    wrap_keys: crypto.WrapKeys | None = None,
) -> Envelope:
    """Seal with every random input given: the layer the conformance vectors drive.
    `body_bytes`: canonical(body), when the caller has it already (it stores them too);
    `wrap_keys`: the wrap keys of `ephemeral` derived for earlier envelopes of its batch."""
    if prec not in PRECEDENCES:
        raise RejectedInput(Code.MALFORMED, f"precedence must be one of {PRECEDENCES}")
    if (len(salt), len(content_key), len(nonce)) != (32, 32, crypto.AEAD_NONCE_BYTES):
        raise RejectedInput(Code.MALFORMED, "salt, content key and nonce have fixed sizes")
    if not recipients or any(r.station == sender for r in recipients):
        raise RejectedInput(Code.MALFORMED, "an envelope needs recipients other than its sender")
    _check_parts(channel, sender, seq, prev, now_ms, seen, recipients)
    keys = [
        Recipient(r.station, r.kid, crypto.wrap(content_key, ephemeral, r.public, nonce, wrap_keys))
        for r in sorted(recipients, key=lambda r: r.station)
    ]
    if body_bytes is None:
        body_bytes = canonical(body)  # once: the commitment and the plaintext both hold it
    commit = crypto.sha256(COMMIT_LABEL + salt + body_bytes)
    ct = crypto.aead_encrypt(
        content_key, nonce, _plaintext(salt, body_bytes), _aad(channel, sender, seq)
    )
    unsigned = _unsigned_bytes(
        channel, sender, seq, prev, now_ms, prec, seen, commit, ephemeral.public, keys, nonce, ct
    )
    sig = identity.sign(ENVELOPE_LABEL, unsigned)
    raw = _with_sig(unsigned, sig)
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise RejectedInput(
            Code.OVERSIZED, f"envelope of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}"
        )
    # Built from its parts, not parsed back from `raw` (a tenth of a sender's CPU, issue 14);
    # `_check_parts` refuses what parse_envelope would, and a test holds the two equal.
    return Envelope(
        channel=channel, sender=sender, seq=seq, prev=prev, ts=now_ms, prec=prec,
        seen=dict(sorted(seen.items())), commit=commit, eph=ephemeral.public, keys=tuple(keys),
        nonce=nonce, ct=ct, sig=sig, raw=raw, hash=crypto.sha256(raw),
    )  # fmt: skip


def _with_sig(unsigned: bytes, sig: bytes) -> bytes:
    """canonical(envelope with "sig") from canonical(envelope without it): "sig" sorts between
    "seq" and "ts", the last two keys are "ts" and "v", and no value holds a quote, so the last
    `,"ts":` is the top-level key's."""
    at = unsigned.rindex(b',"ts":')
    return unsigned[:at] + b',"sig":"' + b64e(sig).encode("ascii") + b'"' + unsigned[at:]


def _check_parts(
    channel: str, sender: str, seq: int, prev: bytes, now_ms: int, seen: dict[str, Ref],
    recipients: list[RecipientKey],
) -> None:  # fmt: skip
    """What parse_envelope refuses, checked on the parts a sender seals from."""
    if not is_station_id(sender):
        raise RejectedInput(Code.MALFORMED, "from: not a station id")
    if not isinstance(channel, str):
        raise RejectedInput(Code.MALFORMED, "ch: not text")
    b64d(channel, field="ch", size=16)
    if (
        type(seq) is not int
        or type(now_ms) is not int
        or not (1 <= seq <= MAX_SAFE_INT and 0 <= now_ms <= MAX_SAFE_INT)
    ):
        raise RejectedInput(Code.MALFORMED, "seq and ts are safe integers, seq from 1")
    if len(prev) != 32 or (seq == 1) != (prev == ZERO_HASH):
        raise RejectedInput(Code.MALFORMED, "prev: zero exactly for the first envelope of a chain")
    if len(seen) > MAX_RECIPIENTS or len(recipients) > MAX_RECIPIENTS:
        raise RejectedInput(Code.MALFORMED, f"at most {MAX_RECIPIENTS} members")
    for m, r in seen.items():
        if not is_station_id(m) or m == sender:
            raise RejectedInput(Code.MALFORMED, "seen: keys are other members' station ids")
        if type(r.seq) is not int or not 1 <= r.seq <= MAX_SAFE_INT:
            raise RejectedInput(Code.MALFORMED, "seen: a seq is a safe integer from 1")
        if len(r.hash) != 32:
            raise RejectedInput(Code.MALFORMED, "seen: a hash is 32 bytes")
    to = [r.station for r in recipients]
    if len(set(to)) != len(to) or not all(is_station_id(t) for t in to):
        raise RejectedInput(Code.MALFORMED, "keys: recipients are distinct station ids")
    for rk in recipients:
        b64d(rk.kid, field="keys.kid", size=9)


@dataclass
class SealBatch:
    """What the envelopes a sender seals together share (§4.5): one ephemeral key, and each
    recipient's wrap key derived from it once. Made for one batch and dropped with it."""

    ephemeral: crypto.KemKey = field(default_factory=crypto.KemKey.generate)
    wrap_keys: crypto.WrapKeys = field(default_factory=crypto.WrapKeys)


def seal(
    body: dict[str, Any],
    *,
    identity: crypto.SigningKey,
    sender: str,
    channel: str,
    seq: int,
    prev: bytes,
    seen: dict[str, Ref],
    recipients: list[RecipientKey],
    now_ms: int,
    prec: str = "ROUTINE",
    body_bytes: bytes | None = None,
    batch: SealBatch | None = None,
) -> tuple[Envelope, bytes]:
    """Seal `body` for `recipients`. Returns the envelope and the salt of its commitment.
    `body_bytes`: canonical(body), if the caller needs them too (encoded once, issue 14);
    `batch`: shared with the other envelopes sealed together (else the envelope's own)."""
    batch = batch or SealBatch()
    salt = crypto.random_bytes(32)
    env = seal_from_parts(
        body,
        identity=identity,
        sender=sender,
        channel=channel,
        seq=seq,
        prev=prev,
        seen=seen,
        recipients=recipients,
        now_ms=now_ms,
        prec=prec,
        salt=salt,
        content_key=crypto.random_bytes(crypto.AEAD_KEY_BYTES),
        nonce=crypto.random_bytes(crypto.AEAD_NONCE_BYTES),
        ephemeral=batch.ephemeral,
        body_bytes=body_bytes,
        wrap_keys=batch.wrap_keys,
    )
    return env, salt


def parse_envelope(raw: bytes) -> Envelope:
    """Parse canonical envelope bytes, checking shape and bounds. Does NOT verify the signature.

    A valid envelope is read by its canonical grammar (protocol/grammar.py) without parsing
    and re-encoding it; anything else goes to the reference parser, which accepts it the same
    way or names the error."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise RejectedInput(
            Code.OVERSIZED, f"envelope of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}"
        )
    f = grammar.match(raw)
    if f is None:
        return parse_envelope_reference(raw)
    return Envelope(
        channel=f.ch.decode("ascii"),
        sender=f.sender,
        seq=f.seq,
        prev=_b64u(f.prev),
        ts=f.ts,
        prec=f.prec.decode("ascii"),
        seen={m: Ref(q, _b64u(h)) for m, q, h in f.seen},
        commit=_b64u(f.commit),
        eph=_b64u(f.eph),
        keys=tuple(
            Recipient(to, kid.decode("ascii"), _b64u(w))
            for to, kid, w in grammar.recipient_keys(f.keys)
        ),
        nonce=_b64u(f.nonce),
        ct=_b64u(f.ct),
        sig=_b64u(f.sig),
        raw=raw,
        hash=crypto.sha256(raw),
    )


def _b64u(text: bytes) -> bytes:
    """Bytes of base64url text the grammar has already checked canonical."""
    return binascii.a2b_base64(text.translate(FROM_URLSAFE) + b"==")


def parse_envelope_reference(raw: bytes) -> Envelope:
    """`parse_envelope` by the rules as written: parse the JSON, check it is the canonical
    encoding of what it holds, check each field. The definition the grammar is tested against."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise RejectedInput(
            Code.OVERSIZED, f"envelope of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}"
        )
    obj = require_fields(parse(raw, limit=MAX_ENVELOPE_BYTES), "envelope", _FIELDS)
    if type(obj["v"]) is not int or obj["v"] != 1:
        raise RejectedInput(Code.MALFORMED, "unsupported envelope version")
    sender = obj["from"]
    if not is_station_id(sender):
        raise RejectedInput(Code.MALFORMED, "from: not a station id")
    b64d(obj["ch"], field="ch", size=16)
    if obj["prec"] not in PRECEDENCES:
        raise RejectedInput(Code.MALFORMED, f"prec: must be one of {PRECEDENCES}")
    seen_raw = obj["seen"]
    if not isinstance(seen_raw, dict) or len(seen_raw) > MAX_RECIPIENTS:
        raise RejectedInput(Code.MALFORMED, "seen: expected an object of references")
    seen: dict[str, Ref] = {}
    for member, ref in seen_raw.items():
        if not is_station_id(member) or member == sender:
            raise RejectedInput(Code.MALFORMED, "seen: keys are other members' station ids")
        r = require_fields(ref, "seen reference", {"seq", "hash"})
        seen[member] = Ref(require_int(r, "seq", 1), b64d(r["hash"], field="seen.hash", size=32))
    keys_raw = obj["keys"]
    if not isinstance(keys_raw, list) or not 1 <= len(keys_raw) <= MAX_RECIPIENTS:
        raise RejectedInput(Code.MALFORMED, f"keys: expected 1..{MAX_RECIPIENTS} recipients")
    keys: list[Recipient] = []
    for k in keys_raw:
        kk = require_fields(k, "recipient", {"to", "kid", "wrap"})
        if not is_station_id(kk["to"]) or kk["to"] == sender:
            raise RejectedInput(Code.MALFORMED, "keys.to: a station id other than the sender")
        b64d(kk["kid"], field="keys.kid", size=9)
        keys.append(Recipient(kk["to"], kk["kid"], b64d(kk["wrap"], field="keys.wrap", size=48)))
    if [k.to for k in keys] != sorted({k.to for k in keys}):
        raise RejectedInput(Code.MALFORMED, "keys: recipients must be unique and sorted")
    seq = require_int(obj, "seq", 1)
    prev = b64d(obj["prev"], field="prev", size=32)
    if (seq == 1) != (prev == ZERO_HASH):
        raise RejectedInput(Code.MALFORMED, "prev: zero exactly for the first envelope of a chain")
    ct = b64d(obj["ct"], field="ct")
    if len(ct) < MIN_CT_BYTES:
        raise RejectedInput(Code.MALFORMED, f"ct: at least {MIN_CT_BYTES} bytes, got {len(ct)}")
    return Envelope(
        channel=obj["ch"],
        sender=sender,
        seq=seq,
        prev=prev,
        ts=require_int(obj, "ts"),
        prec=obj["prec"],
        seen=seen,
        commit=b64d(obj["commit"], field="commit", size=32),
        eph=b64d(obj["eph"], field="eph", size=32),
        keys=tuple(keys),
        nonce=b64d(obj["nonce"], field="nonce", size=24),
        ct=ct,
        sig=b64d(obj["sig"], field="sig", size=64),
        raw=raw,
        hash=crypto.sha256(raw),
    )


def signing_input(env: Envelope) -> bytes:
    """The canonical envelope without `sig`. The raw bytes are canonical (parse_envelope checked)
    and no other member can hold a quote, so cutting the one `,"sig":"…"` member out of them gives
    the same bytes as re-encoding the document without it."""
    member = b',"sig":"' + b64e(env.sig).encode("ascii") + b'"'
    if env.raw.count(member) == 1:
        return env.raw.replace(member, b"", 1)
    doc = parse(env.raw)
    del doc["sig"]
    return canonical(doc)


def verify_signature(env: Envelope, sender_public: bytes) -> None:
    if not crypto.verify(sender_public, ENVELOPE_LABEL, signing_input(env), env.sig):
        raise RejectedInput(Code.BAD_SIGNATURE, "envelope signature does not verify")


# What opening an envelope for one recipient reads of it, as plain bytes: (wrap, eph, nonce,
# ct, aad, commit). A worker process is handed these (station/cryptopool.py) instead of the
# envelope's bytes, which it parsed again (issue 14: a quarter of its CPU per envelope).
Sealed = tuple[bytes, bytes, bytes, bytes, bytes, bytes]


def sealed_for(env: Envelope, me: str) -> Sealed:
    mine = env.key_for(me)
    if mine is None:
        raise RejectedInput(Code.NOT_A_RECIPIENT, "this station is not a recipient")
    return (
        mine.wrap, env.eph, env.nonce, env.ct, _aad(env.channel, env.sender, env.seq), env.commit
    )  # fmt: skip


def open_envelope(
    env: Envelope, me: str, prekey: crypto.KemKey, wrap_keys: crypto.WrapKeys | None = None
) -> Opened:
    """Decrypt the body with our prekey and check it against the signed commitment.
    `wrap_keys`: the wrap keys derived for the other envelopes of a batch being opened."""
    return open_sealed(sealed_for(env, me), prekey, wrap_keys)


def open_sealed(
    sealed: Sealed, prekey: crypto.KemKey, wrap_keys: crypto.WrapKeys | None = None
) -> Opened:
    """`open_envelope` from what `sealed_for` took of the envelope."""
    wrap, eph, nonce, ct, aad, commit = sealed
    content_key = crypto.unwrap(wrap, eph, prekey, nonce, wrap_keys)
    plaintext = crypto.aead_decrypt(content_key, nonce, ct, aad)
    try:
        doc = require_fields(parse(plaintext), "plaintext", {"body", "salt"})
        salt = b64d(doc["salt"], field="salt", size=32)
    except RejectedInput as exc:
        raise RejectedInput(Code.BAD_BODY, f"decrypted body is malformed: {exc.message}") from exc
    body = doc["body"]
    # The plaintext is canonical (parse checked), so it is `{"body":` canonical(body)
    # `,"salt":"` 43 characters `"}`: the body's canonical bytes are a slice of it.
    body_bytes = plaintext[len(_BODY_PREFIX) : -len(_SALT_SUFFIX)]
    if not isinstance(body, dict) or crypto.sha256(COMMIT_LABEL + salt + body_bytes) != commit:
        raise RejectedInput(Code.COMMITMENT_MISMATCH, "body does not match its signed commitment")
    return Opened(body, salt, body_bytes)


_BODY_PREFIX = b'{"body":'
_SALT_SUFFIX = b',"salt":"' + b"A" * 43 + b'"}'  # its length: the salt is 32 bytes
