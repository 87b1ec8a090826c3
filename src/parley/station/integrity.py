"""Integrity at rest: a stored body is shown or folded only after it is checked, at that read,
against the signed envelope it came in.

Whoever can write the station's database (a local user with the file, an admin with psql) could
otherwise change what a peer said, and every view would show the new words as "signature
verified". Every reader of stored bodies goes through this module (tests/security checks that
no other module outside store/ reads them), and station/selfaudit.py re-checks the whole store in
the background with the same functions.

1. The check, for one stored (envelope row, body row):
   a. SHA-256 of the stored envelope bytes is the stored hash;
   b. the bytes are a well-formed envelope whose channel, sender, seq, time and precedence are
      the stored columns (the columns are what views show and sort by);
   c. its Ed25519 signature verifies with the sender's identity key: the peer table's, or this
      station's own for its own chain. A bounded per-process set remembers (hash, key) pairs that
      verified; finding one there is as good as verifying the same bytes with the same key again;
   d. the stored body text and salt give the envelope's signed commitment (one SHA-256 over the
      stored text, which is the canonical JSON the commitment covers), and the stored type is
      the body's type;
   e. with `links=True` (messages, the inbox, the transcript digest): its `prev` is the stored
      hash of seq − 1 of the same chain, so a deleted or replaced envelope shows on its successor.
   "Verified" (the API's `signature`, the CLI, the console) means exactly: this check passed in
   this read. A bounded per-process memo (`Passed`) keeps, for envelopes that passed a–d, the
   exact stored columns, bytes, body text, salt, type and key they passed with; a read that
   finds the very same inputs again has the same answer without hashing and scanning them again
   (any changed byte misses the memo and is checked in full). Step e is checked on every read.
2. A failed item is shown as failed, and its stored text is withheld (body {}): it is not what
   the sender signed, and a person shown it beside a warning may still act on it. The stored
   bytes stay in the database and in transcript exports, for whoever investigates.
3. Each failing item raises one critical `integrity` alarm (subject: its channel, so a back
   channel's stays hidden from those not named on it), recorded in `integrity_findings`: one
   alarm per item however often it is read.
4. Folds (channel state, talks, road maps, translations, crises) leave a failed record out, as if
   it had never arrived: a changed record never moves a channel or a negotiation.
5. Exports are written as held, with the cheaper `export_problem` (a, b's channel, sender and seq,
   and d without the type): the offline verifier checks every signature of the file, and the
   self-audit every signature of the store; all three raise the same alarm.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from parley.errors import Code, Conflict, ParleyError, RejectedInput
from parley.protocol import crypto, handover
from parley.protocol.encoding import b64e, canonical
from parley.protocol.envelope import (
    ENVELOPE_LABEL,
    PRECEDENCES,
    Envelope,
    Opened,
    parse_envelope,
    signing_input,
)
from parley.protocol.scan import Scanned, commitment_b64, scan_envelope
from parley.store import integrity as db
from parley.store.base import BodyRow, EnvelopeRow, SqlStore
from parley.store.cache import LRU

ALARM = "integrity"
REMEMBERED = 200_000  # (hash, key) pairs whose signature verified, kept per process (~25 MB)
PASSED = 4096  # envelopes that passed a–d, with what they passed with (a few MB): see `Passed`

# The keys that may have signed what a station dated ts (ts < 0: any of its keys): one, or two
# around an identity hand-over (§3.6); [] for a station that is not a known peer.
KeyOf = Callable[[str, int], list[bytes]]


class Host(Protocol):
    """What the check needs of its station (station/node.py `Station`, which holds it)."""

    id: str
    identity: crypto.SigningKey
    store: SqlStore
    clock: Callable[[], int]

    def peer_name(self, station: str) -> str: ...

    def epochs(self, station: str) -> list[handover.Epoch]: ...

    def _open(self, env: Envelope) -> Opened: ...

    def alarm(self, kind: str, severity: str, subject: str, message: str, ref: str = "") -> int: ...


@dataclass(frozen=True)
class Checked:
    """One stored envelope after the check: its verified body, or why it failed."""

    row: EnvelopeRow
    body: dict[str, Any]  # the verified body; {} when the check failed
    problem: str = ""
    salt: bytes = b""  # the verified body's salt (what opens its commitment)

    @property
    def ok(self) -> bool:
        return not self.problem


class Verified:
    """A bounded set of (envelope hash ‖ signer key) whose signature verified, oldest out first."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._limit = limit
        self._items: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, item: bytes) -> bool:
        with self._lock:
            return item in self._items

    def add(self, item: bytes) -> None:
        with self._lock:
            self._items[item] = None
            while len(self._items) > self._limit:
                self._items.popitem(last=False)


class Passed:
    """A bounded memo of envelopes that passed steps a–d, by hash: (row, body row, key, fields).
    Only a lookup with equal row, body row and key uses it (rule 1)."""

    def __init__(self, limit: int = PASSED) -> None:
        self._items: LRU[bytes, tuple[EnvelopeRow, BodyRow, bytes, Scanned]] = LRU(limit)
        self._lock = threading.Lock()

    def get(self, e: EnvelopeRow, b: BodyRow | None, key: bytes | None) -> Scanned | None:
        with self._lock:
            hit = self._items.get(e.hash)
        if hit is None or b is None or key is None or hit[:3] != (e, b, key):
            return None
        return hit[3]

    def add(self, e: EnvelopeRow, b: BodyRow, key: bytes, s: Scanned) -> None:
        lean = s._replace(signing_input=b"", sig=b"")  # a copy of the bytes already kept
        with self._lock:
            self._items.put(e.hash, (e, b, key, lean))


# --- the checks, as pure functions of what the store holds ----------------------------------------


def envelope_problem(
    e: EnvelopeRow, key_of: KeyOf, verified: Verified | None, recheck: bool = False
) -> tuple[Scanned | None, str]:
    """Steps a–c for one stored envelope: (its fields, "") or (fields if readable, why not).
    `recheck` verifies the signature even when `verified` remembers it (the self-audit)."""
    h = crypto.sha256(e.raw)
    if h != e.hash:
        return None, "its stored bytes are not the envelope stored under its hash"
    try:
        s = scan_envelope(e.raw)
    except RejectedInput as exc:
        return None, f"its stored bytes are not a well-formed envelope ({exc.message})"
    # The bytes are canonical: the one `"prec":"…"` member names the precedence.
    prec = f'"prec":"{e.prec}"'.encode() if e.prec in PRECEDENCES else b"\x00"
    if (s.channel, s.sender, s.seq, s.ts) != (e.channel, e.sender, e.seq, e.ts) or (
        prec not in e.raw
    ):
        return s, "its stored channel, sender, seq, time or precedence are not the envelope's"
    keys = key_of(s.sender, s.ts)
    if not keys:
        return s, "its sender is not a known peer, so its signature cannot be checked"
    if not recheck and verified is not None and any(h + k in verified for k in keys):
        return s, ""
    for key in keys:
        if crypto.verify(key, ENVELOPE_LABEL, s.signing_input, s.sig):
            if verified is not None:
                verified.add(h + key)
            return s, ""
    return s, "its signature does not verify with the sender's key"


def body_problem(s: Scanned, b: BodyRow | None) -> tuple[dict[str, Any], str]:
    """Step d: (the body, "") if the stored body is the one the envelope commits to."""
    if b is None:
        return {}, "its body is missing from the store"
    try:
        text = b.text.encode("utf-8")
    except UnicodeEncodeError:
        text = b""
    if not text or commitment_b64(b.salt, text) != s.commit_b64:
        return {}, (
            "its stored text does not match the commitment the sender signed "
            "(it was changed after it was stored)"
        )
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict) or b.type != str(body.get("type", "")):
        return {}, "its stored type is not the type of its body"
    return body, ""


def link_problem(e: EnvelopeRow, s: Scanned, prev: bytes | None) -> str:
    """Step e: `prev` is the hash of the chain's seq − 1 as stored (None: not stored)."""
    if e.seq == 1:
        return ""
    if prev is None:
        return f"seq {e.seq - 1} of this chain, which it follows, is missing from the store"
    if b64e(prev).encode("ascii") != s.prev_b64:
        return f"it does not follow the stored seq {e.seq - 1} of its chain (a broken link)"
    return ""


def export_problem(channel: str, sender: str, seq: int, raw: bytes, salt: bytes, text: str) -> str:
    """The export's cheaper check of one stored envelope and body (rule 5)."""
    try:
        s = scan_envelope(raw)
    except RejectedInput as exc:
        return f"its stored bytes are not a well-formed envelope ({exc.message})"
    if (s.channel, s.sender, s.seq) != (channel, sender, seq):
        return "its stored channel, sender or seq are not the envelope's"
    if commitment_b64(salt, text.encode("utf-8", "surrogatepass")) != s.commit_b64:
        return (
            "its stored text does not match the commitment the sender signed "
            "(it was changed after it was stored)"
        )
    return ""


# --- the station's one door -------------------------------------------------------------------


class Integrity:
    """The check as every reader of a station uses it (rules 1–4)."""

    def __init__(self, station: Host) -> None:
        self.station = station
        self.verified = Verified()
        self.passed = Passed()

    def key_of(self) -> KeyOf:
        """Identity keys by station id, looked up once per batch."""
        st = self.station
        memo: dict[str, list[handover.Epoch]] = {}

        def keys(sender: str, ts: int) -> list[bytes]:
            if sender not in memo:
                # A removed or revoked peer's key still verifies what it signed before, and a
                # key handed over verifies what it signed up to the end of its grace.
                memo[sender] = st.epochs(sender)
            epochs = memo[sender]
            if ts < 0:
                return [e.public for e in reversed(epochs)]
            return handover.signers_at(epochs, ts)

        return keys

    def check(
        self, pairs: Sequence[tuple[EnvelopeRow, BodyRow | None]], *, links: bool = False
    ) -> list[Checked]:
        """Check each stored (envelope, body); a failure is reported (rule 3) and withheld."""
        key_of = self.key_of()
        here = {(e.channel, e.sender, e.seq): e.hash for e, _ in pairs} if links else {}
        out: list[Checked] = []
        for e, b in pairs:
            # The keys that may have signed it, as one value the memo compares (rule 1).
            key = b"".join(key_of(e.sender, e.ts)) or None
            s = self.passed.get(e, b, key)
            body: dict[str, Any] = {}
            if s is not None and b is not None:
                body, problem = json.loads(b.text), ""
            else:
                s, problem = envelope_problem(e, key_of, self.verified)
                if s is not None and not problem:
                    body, problem = body_problem(s, b)
                if s is not None and not problem and b is not None and key is not None:
                    self.passed.add(e, b, key, s)
            if s is not None and not problem and links and e.seq > 1:
                before = (e.channel, e.sender, e.seq - 1)
                prev = here.get(before) or self.station.store.hash_at(*before)
                problem = link_problem(e, s, prev)
            if problem:
                self.report(e.channel, e.sender, e.seq, problem)
                out.append(Checked(e, {}, problem))
            else:
                out.append(Checked(e, body, "", b.salt if b is not None else b""))
        return out

    def verified_bodies(
        self, pairs: Sequence[tuple[EnvelopeRow, BodyRow | None]]
    ) -> list[tuple[EnvelopeRow, dict[str, Any]]]:
        """What folds read (rule 4): the rows that pass, with their bodies."""
        return [(c.row, c.body) for c in self.check(pairs) if c.ok]

    def one(self, row: EnvelopeRow) -> Checked:
        return self.check([(row, self.station.store.body(row.hash))])[0]

    def require(self, row: EnvelopeRow) -> Checked:
        """One stored envelope with its verified body, or Conflict(integrity_failed)."""
        c = self.one(row)
        if not c.ok:
            raise Conflict(
                Code.INTEGRITY_FAILED,
                f"message {b64e(row.hash)} failed its integrity check at rest: {c.problem}; "
                "its text is withheld and an alarm was raised",
            )
        return c

    def early(
        self, channel: str, sender: str, seq: int, h: bytes, prec: str, text: str
    ) -> tuple[dict[str, Any], str]:
        """A FLASH envelope held ahead of its chain and shown early: its held bytes are checked
        (a–c) and opened again, and the stored early text must be that body. No salt is kept for
        it, so this is the check d stands for here."""
        st = self.station
        problem = ""
        body: dict[str, Any] = {}
        raw = db.held_raw(st.store, channel, sender, seq)
        try:
            if raw is None or crypto.sha256(raw) != h:
                raise RejectedInput(Code.MALFORMED, "its held bytes are not the envelope held")
            env = parse_envelope(raw)
            keys = self.key_of()(sender, env.ts)
            if (env.channel, env.sender, env.seq, env.prec) != (channel, sender, seq, prec):
                raise RejectedInput(Code.MALFORMED, "its stored columns are not the envelope's")
            if not any(crypto.verify(k, ENVELOPE_LABEL, signing_input(env), env.sig) for k in keys):
                raise RejectedInput(Code.BAD_SIGNATURE, "its signature does not verify")
            body = st._open(env).body
            if canonical(body).decode("utf-8") != text:
                raise RejectedInput(Code.COMMITMENT_MISMATCH, "its stored text is not its body")
        except ParleyError as exc:
            problem = exc.message
            body = {}
        if problem:
            self.report(channel, sender, seq, problem)
        return body, problem

    def report(
        self,
        channel: str,
        sender: str,
        seq: int,
        problem: str,
        found_by: str = "read",
        kind: str = "envelope",
    ) -> bool:
        """Record a finding and raise its alarm, once per item (rule 3). True if it is new."""
        st = self.station
        now = st.clock()
        with st.store.tx():
            if not db.add_finding(
                st.store, db.FindingRow(kind, channel, sender, seq, problem, found_by, now)
            ):
                return False
            who = st.peer_name(sender)
            what = (
                f"{who} seq {seq}"
                if kind == "envelope"
                else f"the checkpoint of {who}'s chain at size {seq}"
            )
            st.alarm(
                ALARM, "critical", channel,
                f"integrity check failed at rest: {what} on channel {channel}: {problem}. "
                "It is shown as failed and left out of every view; compare with another "
                "member's transcript (export it there and verify it here)",
            )  # fmt: skip
        return True
