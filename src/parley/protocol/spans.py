"""Checking a transcript's envelope lines a byte range (a span) at a time, in any process.

Rules:
- `check_span` reads the envelope lines of one span of the file and checks everything that
  needs no line outside it: the canonical form, channel, sender and recipients, signature and
  body commitment, and each chain's seq, links, timestamps and `seen` references as far as they
  stay inside the span. What it cannot know (the chains before the span) it returns as
  conditions: each sender's first seq, prev and timestamp there, and the `seen` references that
  point before the span. The verifier checks those against its chains and, only if every one
  holds, takes the span's results as they are.
- It is all or nothing: at the first envelope that fails or that the fast reader defers
  (`grammar.match` returns None), `check_span` gives up (None), and the verifier checks the span
  again line by line with the exact per-envelope code, which names every failure. So the span
  path can only be faster, never laxer, and reports exactly what the line path reports.
- It stops at the first line that is not an envelope line (a checkpoint line, the signature, a
  last line without its newline): the verifier reads the rest of the span line by line.
- Results are compact: each sender's envelope hashes (base64url text, 43 bytes each) and Merkle
  leaf hashes as one byte string each, not an object per envelope; it crosses processes cheaply.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple, Protocol

from parley.protocol import crypto, grammar, merkle
from parley.protocol.envelope import ENVELOPE_LABEL, MAX_ENVELOPE_BYTES
from parley.protocol.scan import b64u_bytes, commitment_b64, salt_of


class Members(NamedTuple):
    """What checking one envelope line needs to know of the file: its channel, each member's
    identity key, and the recipients each member's envelopes must name (the other members)."""

    channel: str
    # Each member's keys as (public, start, until or -1): one, or more after hand-overs (§3.6).
    keys: dict[str, tuple[tuple[bytes, int, int], ...]]
    others: dict[str, tuple[str, ...]]


class FileBytes(Protocol):
    """A whole file's bytes: `bytes`, or a mapped file (`mmap.mmap`), read in slices."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> bytes: ...

    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...


H64 = 43  # base64url text of a SHA-256 hash
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


class Run(NamedTuple):
    """One sender's envelopes in a span, in file order."""

    first_seq: int
    first_prev: bytes  # base64url text: must link to the sender's last envelope before the span
    first_ts: int  # must not be earlier than the sender's last timestamp before the span
    last_ts: int
    hashes: bytes  # the envelope hashes as base64url text, H64 bytes each
    leaves: bytes  # the Merkle leaf hashes, 32 bytes each


class Span(NamedTuple):
    """What a span's envelope lines add to the transcript, if every envelope checks out."""

    stop: int  # offset of the first line not read (the span's end, or a line of another kind)
    lines: int  # envelope lines read, all good
    bodies: int  # of them, lines with a body (all matching their commitment)
    runs: dict[str, Run]
    # (member, seq, hash as text) that envelopes here have seen before the span
    before: list[tuple[str, int, bytes]]
    # checkpoint bodies to follow in file order: (line index in the span, sender, seq, body
    # text, each member's envelopes in the span before this one)
    bodies_to_read: list[tuple[int, str, int, bytes, dict[str, int]]]


class _Run:
    __slots__ = (
        "first_prev",
        "first_seq",
        "first_ts",
        "hashes",
        "last_h64",
        "last_seq",
        "last_ts",
        "leaves",
    )

    def __init__(self, seq: int, prev: bytes, ts: int) -> None:
        self.first_seq, self.first_prev, self.first_ts = seq, prev, ts
        self.last_seq, self.last_ts, self.last_h64 = seq - 1, ts, prev
        self.hashes = bytearray()
        self.leaves = bytearray()


def check_span(buf: FileBytes, start: int, end: int, members: Members) -> Span | None:
    """The envelope lines of `buf[start:end]` (which starts at a line) checked on their own,
    or None if any of them fails or needs the exact reader (see the module's rules)."""
    channel, keys, others = members
    ch = channel.encode("utf-8")  # never equal to a matched (ASCII) channel unless it is one
    verifiers = {
        k: tuple((crypto.verifier(pk), lo, hi) for pk, lo, hi in epochs)
        for k, epochs in keys.items()
    }
    sha256, leaf_hash, match = crypto.sha256, merkle.leaf_hash, grammar.match
    runs: dict[str, _Run] = {}
    before: list[tuple[str, int, bytes]] = []
    bodies_to_read: list[tuple[int, str, int, bytes, dict[str, int]]] = []
    bodies = 0
    at = start
    lines = buf[start:end].split(b"\n")
    lines.pop()  # what follows the last newline: nothing, or a line cut short
    index = 0
    for index, line in enumerate(lines):
        fields = line.split(b"\t")
        if fields[0] != b"envelope" or len(fields) not in (2, 4):
            break
        raw = fields[1]
        f = match(raw) if len(raw) <= MAX_ENVELOPE_BYTES else None
        if f is None or f.ch != ch:
            return None
        sender, seq, ts = f.sender, f.seq, f.ts
        epochs = verifiers.get(sender)
        if epochs is None or f.recipients != others[sender]:
            return None
        message = ENVELOPE_LABEL + f.signing_input
        sig = binascii.a2b_base64(f.sig.translate(_FROM_URLSAFE) + b"==")
        for verified, lo, hi in epochs:
            if lo <= ts and (hi < 0 or ts <= hi) and verified(message, sig):
                break
        else:
            return None
        if len(fields) == 4:
            salt = salt_of(fields[2])
            text = fields[3]
            if salt is None or commitment_b64(salt, text) != f.commit:
                return None
            bodies += 1
            if b'"type":"checkpoint' in text:
                counts = {m: r.last_seq - r.first_seq + 1 for m, r in runs.items()}
                bodies_to_read.append((index, sender, seq, text, counts))
        run = runs.get(sender)
        if run is None:
            run = runs[sender] = _Run(seq, f.prev, ts)
        elif seq != run.last_seq + 1 or f.prev != run.last_h64 or ts < run.last_ts:
            return None
        for m, q, h in f.seen:
            other = runs.get(m)
            if other is not None and q >= other.first_seq:
                i = (q - other.first_seq) * H64
                if q > other.last_seq or other.hashes[i : i + H64] != h:
                    return None
            elif m in keys:
                before.append((m, q, h))
            else:
                return None
        h = sha256(raw)
        h64 = b64u_bytes(h)
        run.last_seq, run.last_ts, run.last_h64 = seq, ts, h64
        run.hashes += h64
        run.leaves += leaf_hash(h)
        at += len(line) + 1
    else:
        index = len(lines)
    return Span(
        stop=at,
        lines=index,
        bodies=bodies,
        runs={
            m: Run(
                r.first_seq, r.first_prev, r.first_ts, r.last_ts, bytes(r.hashes), bytes(r.leaves)
            )
            for m, r in runs.items()
        },
        before=before,
        bodies_to_read=bodies_to_read,
    )
