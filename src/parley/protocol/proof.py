"""Proofs of one message (docs/protocol.md §17.4): making them and checking them offline.

A proof shows that a sender sent one message at one seq of its chain, fixed by a countersigned
checkpoint, and reveals nothing else. Checking never raises for bad input: `check_proof` returns
a Report, good only if no check failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto, merkle, note
from parley.protocol.checkpoint import (
    Member,
    leaves,
    origin,
    parse_member,
    parse_signed_checkpoint,
    verify_signature_line,
)
from parley.protocol.encoding import b64d, b64e, parse
from parley.protocol.envelope import ENVELOPE_LABEL
from parley.protocol.identity import fingerprint
from parley.protocol.report import Report, anchor_members
from parley.protocol.scan import commitment_b64, scan_envelope
from parley.protocol.schema import require_fields
from parley.protocol.trust import TrustPolicy

PROOF_FORMAT = "parley-proof/v1"
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
        signed, cp = parse_signed_checkpoint(obj["checkpoint"], "checkpoint")
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
