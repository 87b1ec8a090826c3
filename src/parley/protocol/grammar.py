"""The canonical form of a valid envelope as one grammar: read without parsing and re-encoding.

Rules:
- A valid envelope has exactly one byte string (RFC 8785, docs/protocol.md §2): its keys in one
  order, no whitespace, no escapes (every value is base64url, a station id, a precedence or a
  small integer). `match` recognises exactly those bytes and checks what a grammar cannot say
  (bounds, order, the sender not among the recipients, the shortest ciphertext), so a match is
  an envelope that `envelope.parse_envelope_reference` accepts, with the same fields.
- Anything it does not match (None) goes to the reference parser, which accepts or names the
  error: the grammar can only make reading faster, never laxer (tests/test_checkpoints.py and
  tests/test_protocol_core.py check both against each other on mutated envelopes).
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import NamedTuple

from parley.protocol.schema import MAX_SAFE_INT

MAX_RECIPIENTS = 64
# The 16-byte AEAD tag plus the shortest plaintext, canonical({"body": {}, "salt": <43 chars>})
# (64 bytes): anything shorter cannot open, so it is malformed at parsing rather than a
# decryption failure at step 9 of docs/protocol.md §6.
MIN_CT_BYTES = 16 + 64


class Fields(NamedTuple):
    """One matched envelope: base64url fields as their text, the rest read."""

    ch: bytes
    commit: bytes
    ct: bytes
    eph: bytes
    sender: str
    recipients: tuple[str, ...]  # sorted
    keys: bytes  # the `keys` array's members as text: `recipient_keys` reads them
    nonce: bytes
    prec: bytes
    prev: bytes
    seen: tuple[tuple[str, int, bytes], ...]  # (member, seq, hash as text), sorted by member
    seq: int
    sig: bytes
    ts: int
    signing_input: bytes  # the envelope without its `"sig":"…",` member


def _b64_exact(nbytes: int) -> bytes:
    """Canonical unpadded base64url of exactly `nbytes` bytes: unused trailing bits are zero."""
    full, rem = divmod(nbytes, 3)
    body = rb"[A-Za-z0-9_-]{%d}" % (4 * full + rem)
    return body + (b"", rb"[AQgw]", rb"[AEIMQUYcgkosw048]")[rem]


B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The last character of unpadded base64url, by length mod 4, when the unused bits are zero.
_LAST_CHAR = {2: b"AQgw", 3: b"AEIMQUYcgkosw048"}
_SID = rb"st[a-z2-7]{24}"
_INT = rb"(?:0|[1-9][0-9]{0,15})"
H32 = _b64_exact(32)
_RECIPIENT = rb'\{"kid":"' + _b64_exact(9) + rb'","to":"' + _SID + rb'","wrap":"'
_RECIPIENT += _b64_exact(48) + rb'"\}'
_SEEN = rb'"' + _SID + rb'":\{"hash":"' + H32 + rb'","seq":' + _INT + rb"\}"


def _envelope(ct: bytes, eph: bytes, keys: bytes, nonce: bytes, prec: bytes, seen: bytes) -> bytes:
    """The envelope's grammar with the given groups for the fields whose capture differs
    between `match` and `LINE` (each argument wraps its field's pattern, or not)."""
    return b"".join(
        [
            rb'\{"ch":"(', _b64_exact(16), rb')","commit":"(', H32, rb')"',
            rb',"ct":"', ct, rb'","eph":"', eph % H32, rb'","from":"(', _SID, rb')"',
            rb',"keys":\[', keys % (_RECIPIENT, _RECIPIENT), rb"\]",
            rb',"nonce":"', nonce % _b64_exact(24), rb'","prec":"',
            prec % rb"(?:ROUTINE|PRIORITY|IMMEDIATE|FLASH)", rb'"',
            rb',"prev":"(', H32, rb')"',
            rb',"seen":\{', seen, rb"\}",
            rb',"seq":(', _INT, rb")",
            rb',("sig":"(', _b64_exact(64), rb')",)',
            rb'"ts":(', _INT, rb'),"v":1\}',
        ]
    )  # fmt: skip


# Capturing groups, in order: ch, commit, ct, eph, from, keys, nonce, prec, prev, seen, seq, the
# whole "sig" member, sig, ts (positional: one `groups()` call is cheaper than lookups by name).
_ENVELOPE = re.compile(
    _envelope(
        rb'([^"]*)', b"(%s)", b"(%s(?:,%s)*)", b"(%s)", b"(%s)",
        rb"((?:" + _SEEN + rb"(?:," + _SEEN + rb")*)?)",
    )
)  # fmt: skip
# A transcript's envelope line (docs/protocol.md §17.3) as `spans.check_span` reads it: only
# what checking it needs is captured, the first `seen` entry apart (most envelopes have one),
# the ciphertext's alphabet checked by the pattern. Groups: the envelope, ch, commit, ct, from,
# keys, prev, the first seen entry's member, hash and seq, the other entries, seq, the whole
# "sig" member, sig, ts; then the salt and the body text when the line has them. The body text
# is read to the newline (one excluded byte the engine scans about three times faster than two):
# `spans.check_span` refuses a tab in it.
LINE = re.compile(
    rb"envelope\t("
    + _envelope(
        rb"([A-Za-z0-9_-]*)", b"%s", b"(%s(?:,%s)*)", b"%s", b"%s",
        rb'(?:"(' + _SID + rb')":\{"hash":"(' + H32 + rb')","seq":(' + _INT + rb")\}"
        + rb"((?:," + _SEEN + rb")*))?",
    )
    + rb")(?:\t(" + H32 + rb")\t([^\n]*))?\n"
)  # fmt: skip
# The grammar fixes every recipient's and `seen` entry's layout: slice, do not search.
_REC_KID = len(b'{"kid":"')
_REC_TO = _REC_KID + 12 + len(b'","to":"')
_REC_WRAP = _REC_TO + 26 + len(b'","wrap":"')
_REC_LEN = _REC_WRAP + 64 + len(b'"}')
_SEEN_HASH = len(b'"') + 26 + len(b'":{"hash":"')
_SEEN_SEQ = _SEEN_HASH + 43 + len(b'","seq":')
ZERO_B64 = b"A" * 43
# base64url text of MIN_CT_BYTES bytes is this long; shorter text decodes to fewer bytes.
_MIN_CT_TEXT = -(-MIN_CT_BYTES * 4 // 3)


def match(raw: bytes) -> Fields | None:
    """The envelope's fields if `raw` is a valid envelope in its canonical form; None to defer
    to the reference parser (the size limit is the caller's, checked before)."""
    m = _ENVELOPE.fullmatch(raw)
    if m is None:
        return None
    ch, commit, ct, eph, sender_b, keys_b, nonce, prec, prev, seen_b, seq_b, _, sig, ts_b = (
        m.groups()
    )
    # The ciphertext is matched loosely (a regex per 4 characters is slow on long text) and
    # checked here: base64url alphabet only, a possible length, zero unused trailing bits.
    rem = len(ct) % 4
    if (
        rem == 1
        or len(ct) < _MIN_CT_TEXT
        or ct.translate(None, B64_ALPHABET)
        or (rem and ct[-1] not in _LAST_CHAR[rem])
    ):
        return None
    seq, ts = int(seq_b), int(ts_b)
    if not 1 <= seq <= MAX_SAFE_INT or ts > MAX_SAFE_INT or (seq == 1) != (prev == ZERO_B64):
        return None
    sender = sender_b.decode("ascii")
    if len(keys_b) == _REC_LEN:  # the common case, one recipient
        recipients: tuple[str, ...] = (keys_b[_REC_TO : _REC_TO + 26].decode("ascii"),)
    else:
        recipients = tuple(
            keys_b[i + _REC_TO : i + _REC_TO + 26].decode("ascii")
            for i in range(0, len(keys_b), _REC_LEN + 1)
        )
        if len(recipients) > MAX_RECIPIENTS or any(a >= b for a, b in pairwise(recipients)):
            return None  # too many, or recipients unsorted or repeated
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
    s0, s1 = m.span(12)
    return Fields(
        ch, commit, ct, eph, sender, recipients, keys_b, nonce, prec, prev, tuple(seen),
        seq, sig, ts, raw[:s0] + raw[s1:],
    )  # fmt: skip


def recipient_keys(keys: bytes) -> list[tuple[str, bytes, bytes]]:
    """(to, kid, wrap) of each member of a matched `keys` array; kid and wrap as their text."""
    return [
        (
            keys[i + _REC_TO : i + _REC_TO + 26].decode("ascii"),
            keys[i + _REC_KID : i + _REC_KID + 12],
            keys[i + _REC_WRAP : i + _REC_WRAP + 64],
        )
        for i in range(0, len(keys), _REC_LEN + 1)
    ]


def recipient_ids(keys: bytes) -> bytes:
    """The station ids of a matched `keys` array's members, one after another (26 bytes each)."""
    if len(keys) == _REC_LEN:  # the common case, one recipient
        return keys[_REC_TO : _REC_TO + 26]
    return b"".join(keys[i + _REC_TO : i + _REC_TO + 26] for i in range(0, len(keys), _REC_LEN + 1))
