"""Checking a transcript file offline (docs/protocol.md §17.3).

Rules:
- Checking never raises for bad input: `verify_transcript` returns a Report in which every named
  check says how often it passed and failed, and why (fail closed: see report.py).
- Member keys are checked against the verifier's trust policy (protocol/trust.py), never taken
  from the file unless the caller says so by name.
- `verify_buffer` takes envelope lines a span at a time (protocol/spans.py: each span checked on
  its own, in any process, all or nothing), and adds each span's results to the chains in file
  order only if its conditions hold there; any other span, and every other line, is read line
  by line as `verify_transcript` reads a file (envelopes by `scan`, exact). Both give the same
  report. The core starts no process: the adapter passes a `SpanCheck` that does.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from parley.errors import Code, RejectedInput
from parley.protocol import crypto, merkle, note
from parley.protocol.checkpoint import (
    CHECKPOINT,
    COSIGN,
    Member,
    check_checkpoint_body,
    check_cosign_body,
    origin,
    parse_member,
    parse_signed_checkpoint,
    verify_signature_line,
)
from parley.protocol.encoding import b64d, parse
from parley.protocol.envelope import ENVELOPE_LABEL
from parley.protocol.export import FORMAT, TRANSCRIPT_LABEL
from parley.protocol.grammar import ZERO_B64
from parley.protocol.report import Report, anchor_members
from parley.protocol.scan import b64u_bytes, commitment_b64, salt_of, scan_envelope
from parley.protocol.schema import require_fields
from parley.protocol.spans import H64, FileBytes, Members, Span, check_span
from parley.protocol.trust import TrustPolicy
from parley.protocol.witness_policy import WitnessPolicy

MAX_HEADER_BYTES = 64 * 1024

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
# Only with a witness policy: each chain's latest checkpoint carries the quorum it names.
WITNESS_CHECK = "witnesses"


Checked = tuple[str, int, int, bytes, tuple[tuple[str, int, bytes], ...], bytes, bytes, bool,
                bool | None] | str  # fmt: skip
"""One envelope line checked on its own, or why it is not an envelope of this file: (sender,
seq, ts, prev and `seen` as base64url text, its envelope hash as base64url text, its Merkle leaf
hash, whether its signature verifies with its sender's key, whether its body and salt match its
commitment (None: the line carries no body)). Plain tuples: they cross process boundaries."""

ENVELOPE_BATCH = 256  # envelope lines read line by line are checked in batches of this many


def check_envelopes(batch: list[list[bytes]], members: Members) -> list[Checked]:
    """Everything about each envelope line that needs no other line: reading it, its channel,
    sender and recipients, its hashes, its signature and its body commitment. Pure, so it may
    run anywhere."""
    verify, sha256, leaf_hash = crypto.verify, crypto.sha256, merkle.leaf_hash
    channel, keys, others = members
    out: list[Checked] = []
    for fields in batch:
        raw = fields[1]
        try:
            s = scan_envelope(raw)
        except RejectedInput as exc:
            out.append(exc.message)
            continue
        key = keys.get(s.sender)
        if s.channel != channel or not key or s.recipients != others[s.sender]:
            why = (
                "another channel"
                if s.channel != channel
                else "a sender who is not a member"
                if key is None
                else "recipients other than the other members"
            )
            out.append(f"the envelope has {why}")
            continue
        good = any(
            verify(k, ENVELOPE_LABEL, s.signing_input, s.sig)
            for k, start, until in key
            if start <= s.ts and (until < 0 or s.ts <= until)
        )
        committed = None
        if len(fields) == 4:
            salt = salt_of(fields[2])
            committed = salt is not None and commitment_b64(salt, fields[3]) == s.commit_b64
        h = sha256(raw)
        out.append(
            (s.sender, s.seq, s.ts, s.prev_b64, s.seen, b64u_bytes(h), leaf_hash(h), good,
             committed)
        )  # fmt: skip
    return out


class At(NamedTuple):
    """Where an envelope is: its sender and seq (for messages, and the bodies that need them)."""

    sender: str
    seq: int


class _Chain:
    """One sender's chain as the file gives it: its envelope hashes as base64 text, H64 bytes
    each, one after another (to compare with the links of later envelopes), and its Merkle tree
    so far."""

    __slots__ = ("b64", "last_ts", "roots", "tree")

    def __init__(self) -> None:
        self.b64 = bytearray()
        self.tree = merkle.Tree()
        self.last_ts = 0
        # A prefix's root never changes as the chain grows: a checkpoint's root is asked for by
        # its body, its cosignature, its line and the next checkpoint's consistency proof.
        self.roots: dict[int, bytes] = {}

    def root(self, size: int) -> bytes | None:
        """The root of this chain's first `size` envelopes, if the file holds that many."""
        if not 0 < size <= self.tree.size:
            return None
        root = self.roots.get(size)
        if root is None:
            root = self.roots[size] = self.tree.root(size)
        return root


class _Verifier:
    def __init__(
        self,
        report: Report,
        trust: TrustPolicy,
        witnesses: WitnessPolicy | None = None,
    ) -> None:
        self.r = report
        self.witnesses = witnesses
        self.witnessed: dict[tuple[str, int], set[str]] = {}  # (sender, size) -> witness names
        self.latest: dict[str, int] = {}  # sender -> largest checkpoint size in a line
        self.unknown_lines = 0
        self.trust = trust
        self.context = Members("", {}, {})  # what `check_envelopes` needs, from the header
        self.batch: list[tuple[int, list[bytes]]] = []  # (line number, fields) not yet checked
        self.channel = ""
        self.members: dict[str, Member] = {}
        # Each member's keys as note verifiers, any time (ts < 0), built once from the header.
        self.signers: dict[str, list[note.Verifier]] = {}
        self.cosigners: dict[str, list[note.Verifier]] = {}
        # Cosigned notes as their bodies parsed them: the checkpoint lines repeat them.
        self.notes: dict[str, tuple[note.Note, note.Checkpoint]] = {}
        self.parsed: dict[str, tuple[note.Note, note.Checkpoint]] = {}  # checkpoint bodies' notes
        self.parsed_of: dict[str, str] = {}  # sender -> its latest checkpoint body's note
        self.chains: dict[str, _Chain] = {}
        self.memo: dict[tuple[str, bytes, str, bytes], bool] = {}
        self.key_checks = crypto.Verifiers()
        self.checkpoints: dict[tuple[str, int], bytes] = {}  # (sender, size) -> root signed
        self.cosigned: dict[tuple[str, int], set[str]] = {}  # (sender, size) -> cosigners
        self.last_checkpoint: dict[str, int] = {}  # sender -> seq of its latest checkpoint body
        self.bodies = 0
        self.envelopes = 0
        self.others: dict[str, tuple[str, ...]] = {}
        # While a span's bodies are followed: each chain's envelopes before the body's line.
        self.held: dict[str, int] | None = None
        self.c_format, self.c_signature = report["envelope_format"], report["signature"]
        self.c_seq, self.c_links = report["seq_order"], report["chain_links"]
        self.c_ts, self.c_causal = report["timestamps"], report["causal_order"]
        self.c_commit = report["body_commitment"]

    # signature lines are checked once however often they appear (bodies, checkpoint lines)
    def line_ok(self, text: str, sig: note.Signature, v: note.Verifier) -> bool:
        k = (v.name, bytes([v.sig_type]) + v.public, text, sig.key_id + sig.signature)
        if k not in self.memo:
            # One libsodium verifier per key: crypto.verify's binding copies and clears a
            # buffer and raises on failure, ~3 us more per note signature.
            check = self.key_checks[v.public]
            self.memo[k] = verify_signature_line(text, sig, v, check)
        return self.memo[k]

    # Envelope lines read line by line are checked on their own in batches, then applied to
    # their chains in file order: before any other line, and at the end, all of them.
    def flush(self) -> None:
        if self.batch:
            lines, self.batch = self.batch, []
            results = check_envelopes([f for _, f in lines], self.context)
            apply = self.apply_envelope
            for (n, fields), checked in zip(lines, results, strict=True):
                apply(n, fields, checked)

    def root(self, sender: str, size: int) -> bytes | None:
        chain = self.chains.get(sender)
        if chain is None or (self.held is not None and size > self.held.get(sender, 0)):
            return None
        return chain.root(size)

    # --- spans of envelope lines, checked on their own (protocol/spans.py) ---
    def fits(self, span: Span) -> bool:
        """Whether a span's envelopes continue the chains as they stand, as each would have
        been checked in turn: the span's results are then exactly the line path's."""
        chains = self.chains
        for m, run in span.runs.items():
            c = chains[m]
            held = c.tree.size
            if (
                run.first_seq != held + 1
                or run.first_prev != (c.b64[-H64:] if held else ZERO_B64)
                or run.first_ts < c.last_ts
            ):
                return False
        for m, q, h in span.before:
            c = chains[m]
            if q > c.tree.size or c.b64[H64 * (q - 1) : H64 * q] != h:
                return False
        return True

    def apply_span(self, n: int, span: Span) -> None:
        """Add a span that `fits`, its first line being line `n`; then follow its checkpoint
        bodies in file order, each seeing the chains as they were at its line."""
        chains = self.chains
        at_start = {m: c.tree.size for m, c in chains.items()}
        for m, run in span.runs.items():
            c = chains[m]
            c.b64 += run.hashes
            c.tree.extend_packed(run.leaves)
            c.last_ts = run.last_ts
        k = span.lines
        self.envelopes += k
        for check in (self.c_format, self.c_signature, self.c_seq, self.c_links, self.c_ts,
                      self.c_causal):  # fmt: skip
            check.passed += k
        self.c_commit.passed += span.bodies
        self.bodies += span.bodies
        for index, sender, seq, text, counts in span.bodies_to_read:
            self.held = {m: size + counts.get(m, 0) for m, size in at_start.items()}
            self.body(n + index, At(sender, seq), text)
        self.held = None

    def where(self, n: int, sender: str, seq: int) -> str:
        return f"line {n} ({self.name(sender)} seq {seq})"

    def name(self, station: str) -> str:
        m = self.members.get(station)
        return m.name if m else station

    # --- envelopes ---
    def envelope(self, n: int, fields: list[bytes]) -> None:
        self.envelopes += 1
        self.batch.append((n, fields))
        if len(self.batch) >= ENVELOPE_BATCH:
            self.flush()

    def apply_envelope(self, n: int, fields: list[bytes], checked: Checked) -> None:
        # The hot path: one envelope per call; messages are only formatted for failures.
        if isinstance(checked, str):
            self.c_format.fail(f"line {n}: {checked}")
            return
        sid, seq, ts, prev, seen, h64, leaf, signature_ok, committed = checked
        self.c_format.passed += 1
        if signature_ok:
            self.c_signature.passed += 1
        else:
            self.c_signature.fail(f"{self.where(n, sid, seq)}: the signature does not verify")
        chain = self.chains[sid]
        held = chain.tree.size
        if seq == held + 1:
            self.c_seq.passed += 1
        else:
            self.c_seq.fail(
                f"{self.where(n, sid, seq)}: expected seq {held + 1} of this chain here "
                "(an envelope is missing, repeated or out of order)"
            )
        if prev == (chain.b64[-H64:] if held else ZERO_B64):
            self.c_links.passed += 1
        else:
            self.c_links.fail(
                f"{self.where(n, sid, seq)}: prev is not the hash of the previous envelope"
            )
        if ts >= chain.last_ts:
            self.c_ts.passed += 1
            chain.last_ts = ts
        else:
            self.c_ts.fail(f"{self.where(n, sid, seq)}: earlier than its predecessor")
        chains = self.chains
        for m, q, hb in seen:
            other = chains.get(m)
            if other is None or q > other.tree.size or other.b64[H64 * (q - 1) : H64 * q] != hb:
                self.c_causal.fail(f"{self.where(n, sid, seq)}: {self.unseen(m, q)}")
                break
        else:
            self.c_causal.passed += 1
        if committed is not None:
            self.bodies += 1
            text = fields[3]
            if not committed:
                self.c_commit.fail(
                    f"{self.where(n, sid, seq)}: the body and salt do not match the signed "
                    "commitment"
                )
            else:
                self.c_commit.passed += 1
                # Only checkpoints need parsing: the commitment already fixed every body's bytes.
                if b'"type":"checkpoint' in text:
                    self.body(n, At(sid, seq), text)
        chain.b64 += h64
        chain.tree.append(leaf)

    def unseen(self, m: str, q: int) -> str:
        other = self.chains.get(m)
        if m not in self.members:
            return f"names {m}, which is not a member"
        if other is None or q > other.tree.size:
            return f"has seen {self.name(m)} seq {q}, which comes later or not at all"
        return f"has seen a {self.name(m)} seq {q} other than the one in this file"

    def body(self, n: int, s: At, text: bytes) -> None:
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

    def checkpoint_body(self, n: int, s: At, body: dict[str, Any]) -> None:
        # Failure messages (where, what) are made only on failure: a file's every checkpoint
        # takes this path, and almost all of them pass.
        r = self.r
        # `prev` links to the chain's previous checkpoint envelope, whatever became of it.
        before = self.last_checkpoint.get(s.sender, 1) - 1
        self.last_checkpoint[s.sender] = s.seq
        try:
            cb = check_checkpoint_body(body)
        except RejectedInput as exc:
            r["checkpoint_signature"].fail(f"{self.where(n, *s)}: {exc.message}")
            return
        # What parse_signed_checkpoint made of body["note"]: the cosignatures repeat it. Each
        # sender's latest only (cosignatures follow it), so this stays as small as the channel.
        self.parsed.pop(self.parsed_of.pop(s.sender, ""), None)
        self.parsed_of[s.sender] = body["note"]
        self.parsed[body["note"]] = (
            note.Note(cb.text, cb.signatures),
            note.Checkpoint(origin(cb.channel, cb.sender), cb.size, cb.root),
        )
        if (cb.channel, cb.sender, cb.size) != (self.channel, s.sender, s.seq - 1):
            r["checkpoint_signature"].fail(
                f"{self.where(n, *s)}: a checkpoint at seq {s.seq} must name this channel and "
                f"its sender's chain, and cover seq 1..{s.seq - 1}"
            )
            return
        # Any key of the sender: the envelope carrying it was checked by the key of its time.
        signers = self.signers[s.sender]
        if any(self.line_ok(cb.text, cb.signatures[0], v) for v in signers):
            r["checkpoint_signature"].ok()
        else:
            r["checkpoint_signature"].fail(
                f"{self.where(n, *s)}: the checkpoint note's signature does not verify with the "
                "sender's key"
            )
            return
        self.checkpoints[(s.sender, cb.size)] = cb.root
        if self.root(s.sender, cb.size) == cb.root:
            r["checkpoint_root"].ok()
        else:
            r["checkpoint_root"].fail(
                f"{self.where(n, *s)}: the checkpoint's root is not the root of the chain's "
                f"envelopes 1..{cb.size} in this file"
            )
        if cb.prev != before:
            r["consistency"].fail(
                f"{self.where(n, *s)}: its prev is {cb.prev}, but the chain's previous "
                f"checkpoint covers {before} envelopes"
            )
        elif cb.prev:
            old = self.root(s.sender, cb.prev)
            try:
                if old is None:
                    raise RejectedInput(Code.MALFORMED, f"the file lacks seq 1..{cb.prev}")
                merkle.verify_consistency(cb.prev, cb.size, cb.proof, old, cb.root)
            except RejectedInput as exc:
                r["consistency"].fail(
                    f"{self.where(n, *s)}: no consistent extension of checkpoint {cb.prev}: "
                    f"{exc.message}"
                )
            else:
                r["consistency"].ok()

    def cosign_body(self, n: int, s: At, body: dict[str, Any]) -> None:
        r = self.r  # failure messages made only on failure, as in checkpoint_body
        try:
            cb = check_cosign_body(body, self.parsed)
        except RejectedInput as exc:
            r["cosignature"].fail(f"{self.where(n, *s)}: {exc.message}")
            return
        of = self.members.get(cb.of)
        if cb.channel != self.channel or of is None or cb.cosignature.name != s.sender:
            r["cosignature"].fail(
                f"{self.where(n, *s)}: a cosignature must be its sender's, on a member's chain "
                "of this channel"
            )
            return
        # The cosigned checkpoint was signed before the cosignature: by any key of its sender.
        if not (
            any(self.line_ok(cb.text, cb.signature, v) for v in self.signers[cb.of])
            and any(self.line_ok(cb.text, cb.cosignature, v) for v in self.cosigners[s.sender])
        ):
            r["cosignature"].fail(
                f"{self.where(n, *s)}: a signature on the cosigned checkpoint does not verify"
            )
            return
        if self.root(cb.of, cb.size) == cb.root:
            r["cosignature"].ok()
        else:
            r["cosignature"].fail(
                f"{self.where(n, *s)}: it cosigns a root of {self.name(cb.of)}'s chain at size "
                f"{cb.size} that is not the root of the envelopes in this file"
            )
            return
        self.cosigned.setdefault((cb.of, cb.size), set()).add(s.sender)
        # What parse_signed_checkpoint made of body["note"] (it allows no extension lines).
        self.notes[body["note"]] = (
            note.Note(cb.text, (cb.signature, cb.cosignature)),
            note.Checkpoint(origin(cb.channel, cb.of), cb.size, cb.root),
        )

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
            known = self.notes.pop(doc["note"], None) if isinstance(doc["note"], str) else None
            signed, cp = known or parse_signed_checkpoint(doc["note"], "checkpoint line")
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
            len(own) == 1
            and any(self.line_ok(signed.text, own[0], v) for v in self.signers[sender.station]),
            f"{at}: the sender's signature is missing or does not verify",
        ):
            return
        if not r["checkpoint_root"].record(
            self.root(sender.station, cp.size) == cp.root_hash,
            f"{at}: the root is not the root of the chain's envelopes 1..{cp.size} in this file",
        ):
            return
        self.latest[sender.station] = max(self.latest.get(sender.station, 0), cp.size)
        for sig in signed.signatures:
            if sig is own[0]:
                continue
            m = self.members.get(sig.name)
            if m is None:
                self.witness_line(at, signed.text, sig, (sender.station, cp.size))
                continue
            if r["cosignature"].record(
                m is not None
                and any(self.line_ok(signed.text, sig, v) for v in self.cosigners[m.station]),
                f"{at}: the cosignature by {self.name(sig.name)} does not verify",
            ):
                self.cosigned.setdefault((sender.station, cp.size), set()).add(sig.name)

    def witness_line(self, at: str, text: str, sig: note.Signature, cp: tuple[str, int]) -> None:
        """A signature line by someone not a member: a witness the policy names is checked
        (cosignature/v1 on this checkpoint); anyone else is ignored, as signed notes are read."""
        v = self.witnesses.verifier_for(sig) if self.witnesses is not None else None
        if v is None:
            self.unknown_lines += 1
            return
        if self.r[WITNESS_CHECK].record(
            self.line_ok(text, sig, v), f"{at}: the cosignature by witness {v.name} does not verify"
        ):
            self.witnessed.setdefault(cp, set()).add(v.name)

    def witness_quorum(self) -> None:
        """Each chain's latest checkpoint must meet the policy's quorum; each unmet one named."""
        policy = self.witnesses
        if policy is None:
            return
        check = self.r[WITNESS_CHECK]
        for station in sorted(self.chains):
            who = self.name(station)
            if policy.logs and self.members[station].identity not in policy.logs:
                check.fail(f"{who}'s key is not one of the policy's log keys")
            if not self.chains[station].tree.size:
                continue
            size = self.latest.get(station, 0)
            if not size:
                check.fail(f"{who}'s chain has no checkpoint for witnesses to have cosigned")
                continue
            unmet = policy.unmet(self.witnessed.get((station, size), set()))
            check.record(not unmet, f"{who}'s checkpoint at size {size}: {unmet}")
        self.r.facts["witnessed"] = [
            {"sender": s, "size": z, "witnesses": sorted(w)}
            for (s, z), w in sorted(self.witnessed.items())
        ]

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
        self.signers = {m.station: m.signers_at(-1) for m in members}
        self.cosigners = {m.station: m.cosigners_at(-1) for m in members}
        keys = {
            m.station: tuple((e.public, e.start, -1 if e.until is None else e.until)
                             for e in m.epochs)
            for m in members
        }  # fmt: skip
        self.context = Members(self.channel, keys, self.others)
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
                    "envelopes": chain.tree.size,
                    "checkpoints": sum(1 for who, _ in self.checkpoints if who == station),
                    "cosigned_up_to": max(fixed, default=0),
                }
            )
        self.r.facts.update(
            envelopes=self.envelopes,
            bodies=self.bodies,
            chains=chains,
            note_signatures=len(self.memo),  # distinct checkpoint and cosignature lines checked
            unknown_signatures=self.unknown_lines,  # by neither a member nor a policy witness
        )


class _Lines:
    """The file read line by line, in order: the export digest, the signature line, and each
    line handed to the verifier by its kind."""

    def __init__(self, v: _Verifier, progress: Callable[[int], None] | None) -> None:
        self.v, self.r, self.progress = v, v.r, progress
        self.digest = crypto.sha256_hasher()
        self.signature: bytes | None = None
        self.after_signature = False
        self.done = 0  # bytes read
        self.n = 0  # lines read

    def line(self, line: bytes) -> int:
        """Read the next line: GO on, STOP reading (a file of another kind), or QUIT at once
        (an unreadable header: nothing else can be checked)."""
        report, v = self.r, self.v
        self.n += 1
        n = self.n
        self.done += len(line)
        if self.progress is not None and n % 4096 == 0:
            self.progress(self.done)
        if line[-1:] != b"\n":
            report["file_format"].fail(f"line {n}: the last line does not end in a newline")
        fields = line.rstrip(b"\n").split(b"\t")
        if fields[0] == b"envelope" and n > 2 and self.signature is None and len(fields) in (2, 4):
            v.envelope(n, fields)  # the common case first
        elif n == 1:
            if line != FORMAT.encode("ascii") + b"\n":
                report["file_format"].fail(f"line 1: not a {FORMAT} file")
                return STOP
        elif n == 2:
            if not v.header(n, fields):
                return QUIT
        elif self.signature is not None:
            self.after_signature = True
        elif fields[0] == b"checkpoint" and len(fields) == 2:
            v.flush()  # a checkpoint line is checked against every envelope before it
            v.checkpoint_line(n, fields[1])
        elif fields[0] == b"signature" and len(fields) == 2:
            try:
                self.signature = b64d(fields[1].decode("ascii"), field="signature", size=64)
            except (RejectedInput, UnicodeDecodeError):
                self.signature = b""
            return GO
        else:
            report["file_format"].fail(f"line {n}: unknown line {fields[0][:20]!r}")
        self.digest.update(line)
        return GO

    def span_may_follow(self) -> bool:
        """Whether envelope lines here may be taken a span at a time: after the header, before
        any signature line, with the line path's batches applied."""
        if self.n < 2 or self.signature is not None or not self.v.members:
            return False
        self.v.flush()
        return True

    def finish(self) -> Report:
        report, v = self.r, self.v
        v.flush()
        if self.progress is not None:
            self.progress(self.done)
        if self.n < 2:
            if self.n == 0:
                report["file_format"].fail("the file is empty")
            elif not report["file_format"].failed:
                report["file_format"].fail("the file ends after line 1")
            return report
        if v.members and not report["file_format"].failed:
            report["file_format"].ok()
        if self.after_signature:
            report["file_format"].fail("lines follow the exporter's signature")
        exporter = v.members.get(str(report.facts.get("exported_by", "")))
        if self.signature is None:
            report["export_signature"].fail("the file has no signature line (it is cut short)")
        elif exporter is not None:
            report["export_signature"].record(
                crypto.verify(exporter.current, TRANSCRIPT_LABEL, self.digest.digest(),
                              self.signature),
                "the exporter's signature does not cover this file as it is",
            )  # fmt: skip
        v.witness_quorum()
        v.facts()
        return report


GO, STOP, QUIT = 0, 1, 2


def _report(witnesses: WitnessPolicy | None) -> Report:
    return Report.of((*TRANSCRIPT_CHECKS, WITNESS_CHECK) if witnesses else TRANSCRIPT_CHECKS)


def verify_transcript(
    lines: Iterable[bytes],
    progress: Callable[[int], None] | None = None,
    *,
    trust: TrustPolicy,
    witnesses: WitnessPolicy | None = None,
) -> Report:
    """Check a transcript file given as its lines (each ending in b"\\n"), offline, in this
    process (`verify_buffer` checks a whole file on every core).

    `witnesses`: a witness policy (protocol/witness_policy.py); with one, the `witnesses` check
    requires each chain's latest checkpoint to carry the cosignatures its quorum names.

    `trust` says which member keys to accept (protocol/trust.py): there is no default, and the
    file's own keys count only under `UNSAFE_TRUST_FILE_KEYS`. `progress(bytes_done)` is called
    every few thousand lines. Never raises for bad input.
    """
    report = _report(witnesses)
    reader = _Lines(_Verifier(report, trust, witnesses), progress)
    for line in lines:
        status = reader.line(line)
        if status == QUIT:
            return report
        if status == STOP:
            break
    return reader.finish()


class Pending(Protocol):
    """A span being checked (a `concurrent.futures.Future` is one)."""

    def done(self) -> bool: ...

    def result(self) -> Span | None: ...


class SpanCheck(Protocol):
    """Checks spans of the file elsewhere (other processes, each reading the same file):
    `check(start, end, members)` starts `spans.check_span` on `buf[start:end]`. `workers`: how
    many run at once."""

    workers: int

    def __call__(self, start: int, end: int, members: Members) -> Pending: ...


class _Done:
    __slots__ = ("value",)

    def __init__(self, value: Span | None) -> None:
        self.value = value

    def done(self) -> bool:
        return True

    def result(self) -> Span | None:
        return self.value


# About 3,200 envelopes: a 1 MiB span (800) cost the main process ~0.8 us more per envelope, in
# the hand-overs between checking a span and stitching; the tail is cut smaller (TAIL_SHARE).
SPAN_BYTES = 4 << 20
SPANS_AHEAD = 2  # spans queued per worker, so that none waits for this process to hand it one
# Near the end of the file a span is at most this share of what is left per span in flight (and
# at least a sixteenth of a full one): at a full span's size the last spans queued in a worker
# kept this process waiting for them alone, about two spans' time with one core idle.
TAIL_SHARE = 4


def span_end(buf: FileBytes, start: int, span_bytes: int, in_flight: int) -> int:
    """Where the span from line start `start` ends (after a newline, or at the end of `buf`):
    about `span_bytes` on, less near the end when `in_flight` spans are checked at once."""
    size = len(buf)
    if in_flight > 1:
        tail = (size - start) // (TAIL_SHARE * in_flight)
        span_bytes = min(span_bytes, max(span_bytes // 16, tail))
    nl = buf.find(b"\n", min(start + max(span_bytes, 1), size) - 1)
    return size if nl < 0 else nl + 1


def verify_buffer(
    buf: FileBytes,
    progress: Callable[[int], None] | None = None,
    spans: SpanCheck | None = None,
    *,
    trust: TrustPolicy,
    witnesses: WitnessPolicy | None = None,
    span_bytes: int | None = None,
) -> Report:
    """Check a whole transcript file held in `buf` (bytes, or a mapped file) offline; the same
    checks and the same report as `verify_transcript` on its lines.

    Envelope lines are checked a span at a time (protocol/spans.py), by `spans` in other
    processes and by this one while it has nothing to add to the chains; this process adds each
    span's results to the chains in file order. A span that is not all good, and every line of
    another kind, is read line by line as `verify_transcript` reads it. The core starts no
    process: the caller's `spans` does. `span_bytes`: about how long a span is (SPAN_BYTES).
    """
    report = _report(witnesses)
    v = _Verifier(report, trust, witnesses)
    reader = _Lines(v, progress)
    size = len(buf)

    def by_line(start: int, end: int) -> int:
        while start < end:
            nl = buf.find(b"\n", start, end)
            stop = end if nl < 0 else nl + 1
            status = reader.line(buf[start:stop])
            if status != GO:
                return status
            start = stop
        return GO

    # The format line and the header, line by line.
    pos = 0
    while reader.n < 2 and pos < size:
        nl = buf.find(b"\n", pos)
        stop = size if nl < 0 else nl + 1
        status = by_line(pos, stop)
        if status == QUIT:
            return report
        if status == STOP:
            return reader.finish()
        pos = stop

    queue: deque[tuple[int, int, Pending, bool]] = deque()  # (start, end, result, elsewhere)
    elsewhere = 0
    span_bytes = span_bytes or SPAN_BYTES
    ahead = SPANS_AHEAD * spans.workers if spans is not None else 0

    def next_span() -> tuple[int, int]:
        nonlocal pos
        start, pos = pos, span_end(buf, pos, span_bytes, ahead + 1)
        return start, pos

    while queue or pos < size:
        while spans is not None and elsewhere < ahead and pos < size:
            start, end = next_span()
            queue.append((start, end, spans(start, end, v.context), True))
            elsewhere += 1
        if not (queue and queue[0][2].done()) and pos < size:
            # Nothing to add to the chains yet: check the next span here meanwhile.
            start, end = next_span()
            queue.append((start, end, _Done(check_span(buf, start, end, v.context)), False))
            continue
        start, end, pending, remote = queue.popleft()
        elsewhere -= remote
        span = pending.result()
        if span is not None and reader.span_may_follow() and v.fits(span):
            v.apply_span(reader.n + 1, span)
            reader.digest.update(buf[start : span.stop])
            reader.n += span.lines
            reader.done += span.stop - start
            start = span.stop
        by_line(start, end)  # what the span could not take: every status is GO after line 2
        if progress is not None:
            progress(reader.done)
    return reader.finish()
