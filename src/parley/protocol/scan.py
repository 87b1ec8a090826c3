"""A fast, exact reader of canonical envelopes, for checking transcripts near the Ed25519 rate.

Rules:
- Each envelope is matched once by the grammar of its canonical form (protocol/grammar.py)
  instead of being parsed and re-canonicalised, hashed once, and compared to its links in base64
  text; unlike `parse_envelope` it decodes nothing it does not need.
- An envelope the grammar does not match goes through `envelope.parse_envelope`, so the fast
  path can only be faster, never laxer: `scan_envelope` raises exactly when `parse_envelope`
  does.
"""

from __future__ import annotations

import binascii
import re
from typing import NamedTuple

from parley.protocol import crypto, grammar
from parley.protocol.encoding import FROM_URLSAFE, TO_URLSAFE, b64e
from parley.protocol.envelope import COMMIT_LABEL, MAX_ENVELOPE_BYTES, parse_envelope, signing_input


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


_SALT = re.compile(grammar.H32)


def b64u_bytes(h: bytes) -> bytes:
    """Unpadded base64url, as bytes (binascii directly: this runs for every envelope)."""
    return binascii.b2a_base64(h, newline=False).translate(TO_URLSAFE).rstrip(b"=")


def salt_of(text: bytes) -> bytes | None:
    """A salt's 32 bytes from its canonical base64url, or None."""
    if _SALT.fullmatch(text) is None:
        return None
    return binascii.a2b_base64(text.translate(FROM_URLSAFE) + b"=")


def scan_fast(raw: bytes) -> Scanned | None:
    """The envelope if `raw` is in the canonical form the grammar knows; None to defer to the
    reference parser (which then accepts or names the error)."""
    f = grammar.match(raw) if len(raw) <= MAX_ENVELOPE_BYTES else None
    if f is None:
        return None
    return Scanned(
        f.ch.decode("ascii"),
        f.sender,
        f.seq,
        f.ts,
        f.prev,
        f.commit,
        f.seen,
        f.recipients,
        binascii.a2b_base64(f.sig.translate(FROM_URLSAFE) + b"=="),
        f.signing_input,
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
    # Written out (one join, the constructor, a slice for the padding): the span reader asks
    # this for every envelope, and `b64u_bytes(crypto.sha256(...))` is three calls more.
    digest = crypto.sha256_new(b"".join((COMMIT_LABEL, salt, body_text))).digest()
    return binascii.b2a_base64(digest, newline=False).translate(TO_URLSAFE)[:43]


def commitments_match(salts: list[bytes], texts: list[bytes], commits: list[bytes]) -> bool:
    """Whether every body text with its salt gives its commitment: `commitment_b64(salt,
    text) == commit` for each, the salts and commitments given as canonical base64url text of
    32 bytes (43 characters, as the envelope grammar matches them)."""
    if not texts:
        return True
    # Decoded and encoded all at once (the span reader checks some 800 bodies at a time):
    # 43 such characters and one "A" (six zero bits) are 33 bytes, the last one zero, so the
    # texts joined by "A"s are the 32-byte values joined by zero bytes.
    try:
        raw = binascii.a2b_base64(b"A".join(salts).translate(FROM_URLSAFE) + b"A")
    except binascii.Error:
        return False  # not texts of that shape
    if len(raw) != 33 * len(texts) or len(commits) != len(texts):
        return False  # not texts of that shape, or not one of each per body
    sha256, label = crypto.sha256_new, COMMIT_LABEL
    digests = [
        sha256(b"".join((label, raw[i : i + 32], text))).digest()
        for i, text in zip(range(0, len(raw), 33), texts, strict=True)
    ]
    mine = binascii.b2a_base64(b"\0".join(digests) + b"\0", newline=False)
    return mine.translate(TO_URLSAFE) == b"A".join(commits) + b"A"
