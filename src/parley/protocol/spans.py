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
from collections.abc import Container
from typing import NamedTuple, Protocol

from parley.protocol import crypto, grammar, merkle
from parley.protocol.encoding import FROM_URLSAFE, TO_URLSAFE
from parley.protocol.envelope import ENVELOPE_LABEL, MAX_ENVELOPE_BYTES
from parley.protocol.grammar import (
    _LAST_CHAR,
    _MIN_CT_TEXT,
    _REC_LEN,
    _REC_TO,
    _SEEN_HASH,
    _SEEN_SEQ,
    MAX_RECIPIENTS,
    ZERO_B64,
    recipient_ids,
)
from parley.protocol.scan import commitments_match
from parley.protocol.schema import MAX_SAFE_INT


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

    def __buffer__(self, flags: int, /) -> memoryview: ...  # matched by `re` in place


H64 = 43  # base64url text of a SHA-256 hash
_TAB = ord("\t")
_SIG_MEMBER = len(b'"sig":"",') + 86  # the whole "sig" member, its signature's text included
_AFTER_SIG = len(b'"ts":,"v":1}')  # what follows it in a canonical envelope, but the ts digits


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
        "digests",
        "first_prev",
        "first_seq",
        "first_ts",
        "last_seq",
        "last_ts",
        "prevs",
        "signed",
    )

    def __init__(self, seq: int, prev: bytes, ts: int) -> None:
        self.first_seq, self.first_prev, self.first_ts = seq, prev, ts
        self.last_seq, self.last_ts = seq - 1, ts
        # The envelope hashes, and the links of every envelope but the first: both turned into
        # text and compared at the end, in one call each, not per envelope (all or nothing).
        self.digests: list[bytes] = []
        self.prevs: list[bytes] = []
        # A one-key sender's envelopes, each its signature and signed message as one buffer.
        self.signed: list[bytes] = []


def check_span(buf: FileBytes, start: int, end: int, members: Members) -> Span | None:
    """The envelope lines of `buf[start:end]` (which starts at a line) checked on their own,
    or None if any of them fails or needs the exact reader (see the module's rules)."""
    channel, keys, others = members
    ch = channel.encode("utf-8")  # never equal to a matched (ASCII) channel unless it is one
    # Station ids as the line holds them (ASCII bytes): nothing is decoded per envelope. Per
    # sender: its keys' times, the `keys` array's station ids it must name, and its verifiers:
    # for a sender with one key (the common case) that key's of a whole run, else each key's.
    senders = {
        k.encode("ascii"): (
            tuple((lo, hi) for _, lo, hi in epochs),
            "".join(others[k]).encode("ascii"),
            crypto.signed_verifier_all(epochs[0][0]) if len(epochs) == 1 else None,
            tuple(crypto.signed_verifier(pk) for pk, _, _ in epochs) if len(epochs) > 1 else (),
        )
        for k, epochs in keys.items()
    }
    sha256, line_at = crypto.sha256_new, grammar.LINE.match
    a2b, label = binascii.a2b_base64, ENVELOPE_LABEL
    runs: dict[bytes, _Run] = {}
    before: list[tuple[str, int, bytes]] = []
    inside: list[tuple[_Run, int, bytes]] = []  # `seen` entries within the span, checked last
    bodies_to_read: list[tuple[int, str, int, bytes, dict[str, int]]] = []
    # (sender, ts, signature and signed message as one buffer) of a sender with keys by time:
    # the key of each envelope's time is asked at the end
    timed: list[tuple[bytes, int, bytes]] = []
    salts: list[bytes] = []
    texts: list[bytes] = []
    commits: list[bytes] = []
    lines = 0
    at = start
    while at < end:
        m = line_at(buf, at, end)
        if m is None:
            if buf[at : at + 9] == b"envelope\t" and buf.find(b"\n", at, end) >= 0:
                return None  # an envelope line the fast reader defers: the line path names why
            break  # a line of another kind, or a last line cut short: read line by line
        (raw, f_ch, commit, ct, sender, keys_b, prev, seen_m, seen_h, seen_q, seen_rest, seq_b,
         _, sig, ts_b, salt, text) = m.groups()  # fmt: skip
        if len(raw) > MAX_ENVELOPE_BYTES or f_ch != ch:
            return None
        # What `grammar.match` checks beyond the pattern, as it checks it.
        rem = len(ct) % 4
        if rem == 1 or len(ct) < _MIN_CT_TEXT or (rem and ct[-1] not in _LAST_CHAR[rem]):
            return None
        seq, ts = int(seq_b), int(ts_b)
        if not 1 <= seq <= MAX_SAFE_INT or ts > MAX_SAFE_INT or (seq == 1) != (prev == ZERO_B64):
            return None
        # The recipients must be the other members, sorted: that is also everything the grammar
        # asks of them (sorted, distinct, not the sender, not too many).
        known = senders.get(sender)
        if known is None:
            return None
        # One recipient (two members) is sliced here, as recipient_ids would: no call.
        if (
            keys_b[_REC_TO : _REC_TO + 26] if len(keys_b) == _REC_LEN else recipient_ids(keys_b)
        ) != known[1]:
            return None
        if salt is not None:
            # A byte as an int: `bytes in bytes` goes through the buffer protocol, ~0.15 us more
            # per envelope than the memchr this is; likewise `find` below for the marker.
            if _TAB in text:
                return None  # a fifth field: the line path names it
            salts.append(salt)  # the commitments are checked at the end, all at once
            texts.append(text)
            commits.append(commit)
            if text.find(b'"type":"checkpoint') >= 0:
                counts = {k.decode("ascii"): r.last_seq - r.first_seq + 1 for k, r in runs.items()}
                bodies_to_read.append((lines, sender.decode("ascii"), seq, text, counts))
        run = runs.get(sender)
        if run is None:
            run = runs[sender] = _Run(seq, prev, ts)
        elif seq != run.last_seq + 1 or ts < run.last_ts:
            return None
        else:
            run.prevs.append(prev)
        # The "sig" member ends where `"ts":<ts>,"v":1}` ends the envelope, as the grammar says.
        s1 = len(raw) - _AFTER_SIG - len(ts_b)
        signature = a2b(sig.translate(FROM_URLSAFE) + b"==")
        sm = b"".join((signature, label, raw[: s1 - _SIG_MEMBER], raw[s1:]))
        if known[2] is not None:
            run.signed.append(sm)
        else:
            timed.append((sender, ts, sm))
        if seen_m is not None:
            if seen_rest:
                seen = [(seen_m, int(seen_q), seen_h)]
                seen += [
                    (e[1:27], int(e[_SEEN_SEQ:].rstrip(b"}")), e[_SEEN_HASH : _SEEN_HASH + H64])
                    for e in seen_rest[1:].split(b"},")
                ]
                if len(seen) > MAX_RECIPIENTS:
                    return None
                last = b""
                for k, q, h in seen:
                    if k <= last or not _seen_ok(k, q, h, sender, runs, senders, before, inside):
                        return None  # keys unsorted or repeated, or an entry that fails
                    last = k
            else:
                # The common case, an envelope of another run already read, without the call.
                q, other = int(seen_q), runs.get(seen_m)
                if other is None or other is run or not other.first_seq <= q <= other.last_seq:
                    if not _seen_ok(seen_m, q, seen_h, sender, runs, senders, before, inside):
                        return None
                else:
                    inside.append((other, (q - other.first_seq) * (H64 + 1), seen_h))
        run.digests.append(sha256(raw).digest())
        run.last_seq, run.last_ts = seq, ts
        lines += 1
        at = m.end()
    if texts and not commitments_match(salts, texts, commits):
        return None
    hashes = _hashes_text(runs, inside)
    if hashes is None:
        return None
    # Each run's timestamps never decrease: a sender with one key (the common case) has all its
    # envelopes in that key's time if the run's first and last are.
    for k, r in runs.items():
        times = senders[k][0]
        if len(times) == 1:
            lo, hi = times[0]
            if lo > r.first_ts or 0 <= hi < r.last_ts:
                return None
    # The signatures last, one after another: interleaved with the reading above, each cost
    # about 10% more (the verifier's code and tables left the caches in between).
    for k, r in runs.items():
        verified_all = senders[k][2]
        if verified_all is not None and not verified_all(r.signed):
            return None
    for sender, ts, sm in timed:
        times, _, _, verifiers = senders[sender]
        for verified, (lo, hi) in zip(verifiers, times, strict=True):
            if lo <= ts and (hi < 0 or ts <= hi) and verified(sm):
                break
        else:
            return None
    return Span(
        stop=at,
        lines=lines,
        bodies=len(texts),
        runs={
            m.decode("ascii"): Run(
                r.first_seq,
                r.first_prev,
                r.first_ts,
                r.last_ts,
                hashes[m],
                merkle.leaf_hashes(b"".join(r.digests)),
            )
            for m, r in runs.items()
        },
        before=before,
        bodies_to_read=bodies_to_read,
    )


def _hashes_text(
    runs: dict[bytes, _Run], inside: list[tuple[_Run, int, bytes]]
) -> dict[bytes, bytes] | None:
    """Each run's envelope hashes as base64url text, H64 bytes each; None if an envelope's
    prev is not the hash before it in its run, or a `seen` entry within the span is not the
    hash of the envelope it names."""
    b2a, texts, out = binascii.b2a_base64, {}, {}
    for m, r in runs.items():
        # A hash and a zero byte are 33 bytes, 44 characters: the hash's 43 and an "A" (as in
        # scan.commitments_match), so one encoding gives every hash's text in place.
        text = texts[r] = b2a(b"\0".join(r.digests) + b"\0", newline=False).translate(TO_URLSAFE)
        r.prevs.append(b"")
        if b"A".join(r.prevs) != text[: -H64 - 1]:
            return None
        out[m] = b"".join([text[i : i + H64] for i in range(0, len(text), H64 + 1)])
    for r, j, h in inside:
        if texts[r][j : j + H64] != h:
            return None
    return out


def _seen_ok(
    k: bytes,
    q: int,
    h: bytes,
    sender: bytes,
    runs: dict[bytes, _Run],
    members: Container[bytes],
    before: list[tuple[str, int, bytes]],
    inside: list[tuple[_Run, int, bytes]],
) -> bool:
    """One `seen` entry (member, seq, hash as text): not the sender's own, a possible seq, and
    within the span the very envelope (its hash compared at the end: `inside`), or a member's
    envelope before it (left to the caller)."""
    if k == sender or not 1 <= q <= MAX_SAFE_INT:
        return False
    other = runs.get(k)
    if other is not None and q >= other.first_seq:
        if q > other.last_seq:
            return False
        inside.append((other, (q - other.first_seq) * (H64 + 1), h))
        return True
    if k in members:
        before.append((k.decode("ascii"), q, h))
        return True
    return False
