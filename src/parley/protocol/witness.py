"""A C2SP tlog-witness, sans I/O: an add-checkpoint request in, the witness's answer out.

Specifications (cited, not copied): https://c2sp.org/tlog-witness (the HTTP API),
https://c2sp.org/tlog-cosignature (the cosignature/v1 it answers with), https://c2sp.org/signed-note
and https://c2sp.org/tlog-checkpoint (the checkpoint it is given). docs/protocol.md §24.

    parse_request(body)                          -> Request, or RejectedInput (answer 400/413)
    decide(request, log, state, key, now_s)      -> Answer (status, body, content type, and the
                                                    state to persist before answering, if any)
    format_request(old_size, proof, signed_note) -> the request body a client sends

Rules, in the order `decide` applies them (each answer is the spec's):
- the checkpoint's origin is not a log this witness is configured for: 404;
- no signature on the note verifies with a key the witness trusts for that origin (signatures by
  unknown keys are ignored; a known key whose signature fails counts as none): 403;
- the old size is larger than the checkpoint's size: 400;
- the old size is not the size of the latest checkpoint cosigned for that origin (0 if none):
  409 with that size and a newline, content type `text/x.tlog.size`. A replay of an older
  checkpoint lands here (or in the 400 above), and so does a client that does not know the state;
- the consistency proof (RFC 6962 §2.1.2 as in protocol/merkle.py) from the stored tree to the
  new one does not verify, or is not empty when the old size is 0 or equal to the new size: 422;
- same size, different root: 409 (a fork). 422 and this 409 are `suspicious`: the note was
  signed by the log, so the caller keeps it as evidence of misbehaviour;
- otherwise: 200, one cosignature/v1 line by the witness key, and the new state, which the
  caller MUST persist atomically with the check of the old size (the spec's race).
The witness key is its own, never a station's identity key: cosignature/v1 does not commit to the
cosigner's name, so one key must not cosign under two names (tlog-cosignature).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from parley.errors import Code, RejectedInput
from parley.protocol import crypto, merkle, note

# Not fixed by the spec. A checkpoint with a few dozen signatures is a few KiB and 63 proof lines
# are under 3 KiB: 64 KiB bounds what an unauthenticated caller can make the witness parse.
MAX_REQUEST_BYTES = 64 * 1024
MAX_PROOF_LINES = 63  # tlog-witness: "MUST NOT send more than 63"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
_OLD = "old "
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Request:
    old_size: int
    proof: tuple[bytes, ...]
    signed_note: str  # the checkpoint as a signed note, exactly as sent
    parsed: note.Note
    checkpoint: note.Checkpoint

    @property
    def origin(self) -> str:
        return self.checkpoint.origin


@dataclass(frozen=True)
class Log:
    """A log the witness is configured for: its origin and the keys that sign its checkpoints."""

    origin: str
    verifiers: tuple[note.Verifier, ...]


@dataclass(frozen=True)
class State:
    """The latest checkpoint the witness cosigned for one origin."""

    size: int
    root: bytes
    signed_note: str


@dataclass(frozen=True)
class WitnessKey:
    """The witness's name (a schema-less URL by convention) and its own Ed25519 key."""

    name: str
    key: crypto.SigningKey

    @property
    def verifier(self) -> note.Verifier:
        return note.Verifier(self.name, self.key.public, note.COSIGNATURE_V1)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    reason: str  # for people and logs; the status is the answer
    new_state: State | None = None  # on 200 only: persist before answering
    suspicious: bool = False  # a log-signed checkpoint that fails consistency: keep as evidence

    @property
    def accepted(self) -> bool:
        return self.status == 200


def parse_request(body: bytes) -> Request:
    """Parse an add-checkpoint body. Raises RejectedInput: OVERSIZED (413) or MALFORMED (400)."""
    if len(body) > MAX_REQUEST_BYTES:
        raise RejectedInput(
            Code.OVERSIZED, f"add-checkpoint body of {len(body)} bytes exceeds {MAX_REQUEST_BYTES}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedInput(Code.MALFORMED, "add-checkpoint body is not UTF-8") from exc
    head, sep, signed = text.partition("\n\n")
    if not sep:
        raise RejectedInput(Code.MALFORMED, "add-checkpoint body has no empty line before the note")
    lines = head.split("\n")
    if not lines[0].startswith(_OLD) or not _DECIMAL.fullmatch(lines[0][len(_OLD) :]):
        raise RejectedInput(
            Code.MALFORMED, "the first line must be 'old <size>', decimal, no leading zeros"
        )
    old_size = int(lines[0][len(_OLD) :])
    if old_size > merkle.MAX_TREE_SIZE:
        raise RejectedInput(Code.MALFORMED, "old size exceeds 2^64-1")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise RejectedInput(
            Code.MALFORMED, f"{len(lines) - 1} consistency proof lines; at most {MAX_PROOF_LINES}"
        )
    proof = []
    for i, line in enumerate(lines[1:], start=1):
        h = note.decode_base64(line, f"consistency proof line {i}")
        if len(h) != merkle.HASH_BYTES:
            raise RejectedInput(Code.MALFORMED, f"consistency proof line {i} is not 32 bytes")
        proof.append(h)
    parsed = note.parse_note(signed)
    checkpoint = note.parse_checkpoint(parsed.text)
    return Request(old_size, tuple(proof), signed, parsed, checkpoint)


def format_request(
    old_size: int, proof: list[bytes] | tuple[bytes, ...], signed_note: str
) -> bytes:
    """The add-checkpoint body: 'old N', the proof lines, an empty line, the signed note."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("\n".join(lines) + "\n\n" + signed_note).encode("utf-8")


def decide(
    request: Request, log: Log | None, state: State | None, key: WitnessKey, now_s: int
) -> Answer:
    """The witness's answer to one add-checkpoint request (the module docstring's rules)."""
    cp = request.checkpoint
    if log is None or log.origin != cp.origin:
        return refusal(404, f"this witness does not witness the log {cp.origin!r}")
    try:
        note.open_note(request.signed_note, log.verifiers)
    except RejectedInput as exc:
        return refusal(403, f"no trusted signature on the checkpoint: {exc.message}")
    if request.old_size > cp.size:
        return refusal(
            400, f"old size {request.old_size} is larger than the checkpoint's {cp.size}"
        )
    held = state.size if state is not None else 0
    if request.old_size != held:
        return conflict(held, f"old size {request.old_size} is not the size {held} cosigned")
    if request.proof and request.old_size in (0, cp.size):
        return refusal(
                422, "the consistency proof must be empty when old size is 0 or the checkpoint's",
                suspicious=True,
            )  # fmt: skip
    if state is not None and request.old_size == cp.size and state.root != cp.root_hash:
        return conflict(held, f"a different root for the cosigned size {held}: a fork", True)
    if state is not None and 0 < request.old_size < cp.size:
        try:
            merkle.verify_consistency(state.size, cp.size, request.proof, state.root, cp.root_hash)
        except RejectedInput as exc:
            return refusal(422, f"consistency proof does not verify: {exc.message}", True)
    sig = note.cosign(request.parsed.text, key.name, key.key, now_s)
    new = State(cp.size, cp.root_hash, request.signed_note)
    return Answer(200, sig.line().encode("utf-8"), TEXT_CONTENT_TYPE, "cosigned", new)


def parse_answer(body: bytes) -> list[note.Signature]:
    """A 200 answer's signature lines (syntax only; verify them against the checkpoint)."""
    if len(body) > MAX_REQUEST_BYTES or not body.endswith(b"\n"):
        raise RejectedInput(Code.MALFORMED, "a witness answer is signature lines ending in '\\n'")
    return list(note.parse_note(b"x\n\n" + body).signatures)


def parse_conflict(body: bytes) -> int:
    """The size a 409 answer names (`text/x.tlog.size`)."""
    text = body.decode("ascii", "replace")
    if len(body) > 32 or not text.endswith("\n") or not _DECIMAL.fullmatch(text[:-1]):
        raise RejectedInput(Code.MALFORMED, "a 409 answer is a decimal tree size and a newline")
    return int(text[:-1])


def refusal(status: int, reason: str, suspicious: bool = False) -> Answer:
    """A refusal with a one-line reason as its text body."""
    return Answer(
        status, (reason + "\n").encode("utf-8"), TEXT_CONTENT_TYPE, reason, None, suspicious
    )


def conflict(held: int, reason: str, suspicious: bool = False) -> Answer:
    """409: the size the witness holds, as `text/x.tlog.size`."""
    return Answer(409, f"{held}\n".encode("ascii"), SIZE_CONTENT_TYPE, reason, None, suspicious)
