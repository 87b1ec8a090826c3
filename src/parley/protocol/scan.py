"""A fast, exact reader of canonical envelopes, for checking transcripts near the Ed25519 rate.

Rules:
- Each envelope is matched once by a grammar of its canonical form instead of being parsed and
  re-canonicalised, hashed once, and compared to its links in base64 text.
- An envelope the grammar does not match goes through `envelope.parse_envelope`, the reference,
  so the fast path can only be faster, never laxer: `scan_envelope` raises exactly when
  `parse_envelope` does.
"""

from __future__ import annotations

import binascii
import re
from itertools import pairwise
from typing import NamedTuple

from parley.protocol import crypto
from parley.protocol.encoding import b64e
from parley.protocol.envelope import (
    COMMIT_LABEL,
    MAX_ENVELOPE_BYTES,
    MAX_RECIPIENTS,
    parse_envelope,
    signing_input,
)
from parley.protocol.schema import MAX_SAFE_INT


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
ZERO_B64 = b"A" * 43
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_SALT = re.compile(_H32)


def b64u_bytes(h: bytes) -> bytes:
    """Unpadded base64url, as bytes (binascii directly: this runs for every envelope)."""
    return binascii.b2a_base64(h, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def salt_of(text: bytes) -> bytes | None:
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
    if not 1 <= seq <= MAX_SAFE_INT or ts > MAX_SAFE_INT or (seq == 1) != (prev == ZERO_B64):
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
    return b64u_bytes(crypto.sha256(COMMIT_LABEL + salt + body_text))
