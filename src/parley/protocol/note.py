"""C2SP signed notes, tlog-checkpoint bodies and tlog-cosignature/v1 (Ed25519) cosignatures.

Formats (https://c2sp.org/signed-note, /tlog-checkpoint, /tlog-cosignature):

    <text, ending in "\\n">
    <blank line>
    — <key name> base64(key ID[4] || signature)        one line per signature, at least one

    key ID = SHA-256(name || 0x0A || type || public key)[:4]    type 0x01 Ed25519 over the text,
                                                               type 0x04 cosignature/v1
    cosignature/v1 signature = timestamp (u64 big-endian) || Ed25519 over
        "cosignature/v1\\ntime <timestamp>\\n" || checkpoint body
    checkpoint body = origin "\\n" tree size "\\n" base64(root hash) "\\n" *(extension "\\n")
    verifier key (vkey) = name "+" hex(key ID) "+" base64(type || public key)

Rules:
- Parsing is strict and bounded: a note is at most 1 MiB of UTF-8 with no control characters
  but "\\n", at most 100 signature lines; base64 must be standard and canonical; tree sizes are
  decimal with no sign, spaces or leading zeros; root hashes are 32 bytes. Anything else is
  RejectedInput(MALFORMED / OVERSIZED) with a message that says what is wrong.
- `open_note` follows the spec's trust rules: signatures by unknown (name, key ID) pairs are
  ignored; every signature by a known key must verify or the whole note is rejected
  (BAD_SIGNATURE); a note with no verified known signature is rejected (UNKNOWN_KEY).
- Signing and formatting our own data raise LocalError (our caller's mistake), never produce
  a note we would refuse to parse.
All Ed25519 goes through `parley.protocol.crypto` with an empty label: these formats define the
exact signed bytes themselves.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from parley.errors import Code, LocalError, RejectedInput
from parley.protocol import crypto

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
SUPPORTED_TYPES = frozenset({ED25519, COSIGNATURE_V1})

# A checkpoint note with a few dozen cosignatures is a few KiB; 1 MiB leaves room for large
# (e.g. post-quantum) signatures while bounding what a peer can make us scan.
MAX_NOTE_BYTES = 1 << 20
# golang.org/x/mod/sumdb/note refuses more than 100 signatures; the spec requires at least 16.
MAX_SIGNATURES = 100
MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature: "MUST NOT exceed 2^63 - 1"
MAX_TREE_SIZE = 2**64 - 1
HASH_BYTES = 32

_SIG_PREFIX = "\u2014 "  # em dash, space
_COSIG_HEADER = "cosignature/v1\n"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every ASCII control character except "\n"
_PLAIN_NAME = re.compile(r"[!-*,-~]+")  # printable ASCII but space and "+": a valid name


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || "\\n" || type || public key)[:4]."""
    return crypto.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public)[:4]


def valid_name(name: str) -> bool:
    """Key names are non-empty, with no Unicode space, no "+" and no control character."""
    if _PLAIN_NAME.fullmatch(name):  # every station id: no need to look at each character
        return True
    return (
        bool(name)
        and "+" not in name
        and not any(ch.isspace() or ord(ch) < 0x20 for ch in name)
        and _encodable(name)
    )


@dataclass(frozen=True)
class Verifier:
    """A key we trust to sign notes: a name, a signature type and an Ed25519 public key."""

    name: str
    public: bytes
    sig_type: int = ED25519

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise LocalError(Code.INVALID_REQUEST, f"invalid key name {self.name!r}")
        if self.sig_type not in SUPPORTED_TYPES:
            raise LocalError(Code.INVALID_REQUEST, f"unsupported signature type {self.sig_type}")
        if len(self.public) != crypto.PUBLIC_KEY_BYTES:
            raise LocalError(Code.INVALID_REQUEST, "an Ed25519 public key is 32 bytes")

    @cached_property  # a SHA-256 each time: every signature line checked compares it
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public)

    def vkey(self) -> str:
        """The verifier key text: name+hex(key ID)+base64(type || public key)."""
        material = base64.b64encode(bytes([self.sig_type]) + self.public).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"


def parse_vkey(text: str) -> Verifier:
    """Parse a verifier key, checking that its key ID matches its name, type and key."""
    name, sep1, rest = text.partition("+")
    id_hex, sep2, material_b64 = rest.partition("+")
    if not (sep1 and sep2):
        raise RejectedInput(Code.MALFORMED, "a verifier key is name+keyid+key: missing '+'")
    if not valid_name(name):
        raise RejectedInput(Code.MALFORMED, f"verifier key name {name!r} is not a valid key name")
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise RejectedInput(Code.MALFORMED, "verifier key ID must be 8 lowercase hex digits")
    material = _b64decode(material_b64, "verifier key material")
    if len(material) != 1 + crypto.PUBLIC_KEY_BYTES or material[0] not in SUPPORTED_TYPES:
        raise RejectedInput(
            Code.MALFORMED,
            "verifier key must be an Ed25519 (type 0x01) or cosignature/v1 (type 0x04) key",
        )
    verifier = Verifier(name, material[1:], material[0])
    if verifier.key_id.hex() != id_hex:
        raise RejectedInput(
            Code.MALFORMED,
            f"verifier key ID {id_hex} does not match its key (expected {verifier.key_id.hex()})",
        )
    return verifier


# --- notes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: who (name, key ID) and the signature bytes after the key ID."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        b64 = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {b64}\n"


@dataclass(frozen=True)
class Note:
    """A note's text (ending in "\\n") and its signature lines, in order."""

    text: str
    signatures: tuple[Signature, ...]

    def format(self) -> str:
        _check_text(self.text)
        if not self.signatures:
            raise LocalError(Code.INVALID_REQUEST, "a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise LocalError(Code.INVALID_REQUEST, f"more than {MAX_SIGNATURES} signatures")
        for sig in self.signatures:
            if not valid_name(sig.name) or len(sig.key_id) != 4 or not sig.signature:
                raise LocalError(Code.INVALID_REQUEST, f"invalid signature by {sig.name!r}")
        out = self.text + "\n" + "".join(s.line() for s in self.signatures)
        if len(out.encode("utf-8")) > MAX_NOTE_BYTES:
            raise LocalError(Code.INVALID_REQUEST, f"note exceeds {MAX_NOTE_BYTES} bytes")
        return out

    def with_signature(self, signature: Signature) -> Note:
        """This note plus one more signature line (e.g. a cosignature)."""
        return Note(self.text, (*self.signatures, signature))


def parse_note(data: bytes | str) -> Note:
    """Split a signed note into text and signatures. Checks syntax only, not signatures."""
    # surrogatepass: a str with lone surrogates becomes invalid UTF-8 and is refused below.
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > MAX_NOTE_BYTES:
        raise RejectedInput(
            Code.OVERSIZED, f"signed note of {len(raw)} bytes exceeds {MAX_NOTE_BYTES}"
        )
    try:
        msg = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedInput(Code.MALFORMED, "signed note is not valid UTF-8") from exc
    bad = _CONTROL.search(msg)
    if bad is not None:
        raise RejectedInput(
            Code.MALFORMED, f"signed note contains control character U+{ord(bad.group()):04X}"
        )
    split = msg.rfind("\n\n")
    if split < 0:
        raise RejectedInput(
            Code.MALFORMED, "signed note has no blank line between text and signatures"
        )
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block or not block.endswith("\n"):
        raise RejectedInput(
            Code.MALFORMED, "signed note must end with signature lines, each ending in a newline"
        )
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise RejectedInput(
            Code.MALFORMED,
            f"signed note has {len(lines)} signature lines; the limit is {MAX_SIGNATURES}",
        )
    return Note(text, tuple(_parse_signature_line(line, i) for i, line in enumerate(lines)))


def parse_longer_note(data: str, cut: int, prefix: Note) -> Note | None:
    """`parse_note(data)` when `data[:cut]` is a note that parsed as `prefix` and the rest is
    one more signature line (a cosignature added to a checkpoint already read); None for
    anything else, which `parse_note` then reads and names what is wrong. The rest is checked
    as `parse_note` would check it there: no control character, valid UTF-8, the size, the
    count of lines, and the line itself; the blank line and the text are the prefix's."""
    line = data[cut:-1]
    if (
        data[-1:] != "\n"
        or data[cut - 1 : cut] != "\n"
        or not line.startswith(_SIG_PREFIX)  # so "\n\n" cannot end the text here instead
        or "\n" in line
        or len(prefix.signatures) >= MAX_SIGNATURES
        or _CONTROL.search(line)
    ):
        return None
    try:
        if len(data.encode("utf-8")) > MAX_NOTE_BYTES:
            return None
        sig = _parse_signature_line(line, len(prefix.signatures))
    except (UnicodeEncodeError, RejectedInput):
        return None
    return Note(prefix.text, (*prefix.signatures, sig))


def _parse_signature_line(line: str, i: int) -> Signature:
    if not line.startswith(_SIG_PREFIX):
        raise RejectedInput(
            Code.MALFORMED, f"signature line {i + 1} does not start with an em dash and a space"
        )
    name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not valid_name(name):
        raise RejectedInput(Code.MALFORMED, f"signature line {i + 1} has an invalid key name")
    raw = _b64decode(b64, f"signature line {i + 1}")
    if len(raw) < 5:
        raise RejectedInput(Code.MALFORMED, f"signature line {i + 1} is too short")
    return Signature(name, raw[:4], raw[4:])


def sign_note(text: str, name: str, key: crypto.SigningKey) -> str:
    """Sign `text` with an Ed25519 (type 0x01) note signature; return the signed note."""
    return Note(text, (sign_text(text, name, key),)).format()


def sign_text(text: str, name: str, key: crypto.SigningKey) -> Signature:
    """The Ed25519 (type 0x01) signature line for `text`, to add to a Note."""
    _check_text(text)
    _check_name(name)
    sig = key.sign(b"", text.encode("utf-8"))
    return Signature(name, key_id(name, ED25519, key.public), sig)


@dataclass(frozen=True)
class VerifiedSignature:
    verifier: Verifier
    signature: Signature
    timestamp: int | None  # set for cosignature/v1, None for plain Ed25519


@dataclass(frozen=True)
class OpenedNote:
    """A note whose known signatures all verified. `unverified` lists unknown signers."""

    note: Note
    verified: tuple[VerifiedSignature, ...]
    unverified: tuple[Signature, ...]

    @property
    def text(self) -> str:
        return self.note.text

    def signed_by(self, verifier: Verifier) -> bool:
        return any(v.verifier == verifier for v in self.verified)


def open_note(data: bytes | str, verifiers: Iterable[Verifier]) -> OpenedNote:
    """Parse a signed note and verify it against the keys we trust.

    Unknown signers are ignored; a known signer whose signature fails rejects the note; a note
    without any verified known signature is rejected. Each known key is reported once.
    """
    known = _index(verifiers)
    note = parse_note(data)
    verified: dict[tuple[str, bytes], VerifiedSignature] = {}
    unverified: list[Signature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.append(sig)
            continue
        # Every line from a known key is checked, even repeats: a bad duplicate is still bad.
        timestamp = _verify(note.text, sig, verifier)
        verified.setdefault((sig.name, sig.key_id), VerifiedSignature(verifier, sig, timestamp))
    if not verified:
        signers = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in note.signatures)
        raise RejectedInput(
            Code.UNKNOWN_KEY,
            f"the note has no signature from a key we trust (it is signed by: {signers})",
        )
    return OpenedNote(note, tuple(verified.values()), tuple(unverified))


def _index(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    out: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        k = (v.name, v.key_id)
        if k in out and out[k] != v:
            raise LocalError(
                Code.INVALID_REQUEST,
                f"two different trusted keys share the name and key ID {v.name}+{v.key_id.hex()}",
            )
        out[k] = v
    return out


def _verify(text: str, sig: Signature, verifier: Verifier) -> int | None:
    if verifier.sig_type == COSIGNATURE_V1:
        return _verify_cosignature(text, sig, verifier)
    if not crypto.verify(verifier.public, b"", text.encode("utf-8"), sig.signature):
        raise RejectedInput(
            Code.BAD_SIGNATURE,
            f"note signature by {verifier.name}+{verifier.key_id.hex()} does not verify",
        )
    return None


def _verify_cosignature(text: str, sig: Signature, verifier: Verifier) -> int:
    who = f"{verifier.name}+{verifier.key_id.hex()}"
    if len(sig.signature) != 8 + crypto.SIGNATURE_BYTES:
        raise RejectedInput(Code.BAD_SIGNATURE, f"cosignature by {who} is not 8 + 64 bytes long")
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise RejectedInput(Code.BAD_SIGNATURE, f"cosignature by {who} has timestamp > 2^63-1")
    message = cosignature_message(text, timestamp)
    if not crypto.verify(verifier.public, b"", message, sig.signature[8:]):
        raise RejectedInput(Code.BAD_SIGNATURE, f"cosignature by {who} does not verify")
    return timestamp


# --- checkpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def format(self) -> str:
        return format_checkpoint(self)


def format_checkpoint(cp: Checkpoint) -> str:
    """The note text of a checkpoint (ends with "\\n")."""
    for i, line in enumerate((cp.origin, *cp.extensions)):
        if not line or "\n" in line or not _encodable(line) or any(ord(c) < 0x20 for c in line):
            what = "origin" if i == 0 else f"extension line {i}"
            raise LocalError(Code.INVALID_REQUEST, f"checkpoint {what} must be one non-empty line")
    if isinstance(cp.size, bool) or not 0 <= cp.size <= MAX_TREE_SIZE:
        raise LocalError(Code.INVALID_REQUEST, "checkpoint tree size must be in 0..2^64-1")
    if len(cp.root_hash) != HASH_BYTES:
        raise LocalError(Code.INVALID_REQUEST, "checkpoint root hash must be 32 bytes")
    lines = [cp.origin, str(cp.size), base64.b64encode(cp.root_hash).decode("ascii")]
    return "".join(line + "\n" for line in (*lines, *cp.extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (a note's text, not the whole signed note)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise RejectedInput(Code.OVERSIZED, f"checkpoint exceeds {MAX_NOTE_BYTES} bytes")
    if not text.endswith("\n"):
        raise RejectedInput(Code.MALFORMED, "checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise RejectedInput(
            Code.MALFORMED, "checkpoint needs three lines: origin, tree size, root hash"
        )
    origin, size_text, root_b64, *extensions = lines
    if not origin:
        raise RejectedInput(Code.MALFORMED, "checkpoint origin line is empty")
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise RejectedInput(
            Code.MALFORMED,
            "checkpoint tree size must be a decimal number with no leading zeros, below 2^64",
        )
    root_hash = _b64decode(root_b64, "checkpoint root hash")
    if len(root_hash) != HASH_BYTES:
        raise RejectedInput(
            Code.MALFORMED, f"checkpoint root hash is {len(root_hash)} bytes; SHA-256 is 32"
        )
    for i, ext in enumerate(extensions, start=1):
        if not ext:
            raise RejectedInput(Code.MALFORMED, f"checkpoint extension line {i} is empty")
    # The lines' characters are the text's but its newlines: one search over the text.
    if not _encodable(text) or _CONTROL.search(text):
        raise RejectedInput(Code.MALFORMED, "checkpoint contains a control character")
    return Checkpoint(origin, int(size_text), root_hash, tuple(extensions))


# --- cosignatures ---------------------------------------------------------------------------------


def cosignature_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: header line, time line, checkpoint body."""
    return f"{_COSIG_HEADER}time {timestamp}\n{body}".encode()


def cosign(body: str, name: str, key: crypto.SigningKey, timestamp: int) -> Signature:
    """A cosignature/v1 on a checkpoint body at `timestamp` (POSIX seconds), as a note line."""
    parse_checkpoint(body)  # a cosignature vouches for a checkpoint; refuse anything else
    _check_name(name)
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise LocalError(Code.INVALID_REQUEST, "cosignature timestamp must be in 0..2^63-1")
    sig = key.sign(b"", cosignature_message(body, timestamp))
    return Signature(
        name, key_id(name, COSIGNATURE_V1, key.public), timestamp.to_bytes(8, "big") + sig
    )


def verify_cosignature(body: str, signature: Signature, verifier: Verifier) -> int:
    """Check a cosignature/v1 on a checkpoint body; return its timestamp or raise.

    The caller decides what timestamp is acceptable (e.g. not in the future beyond its skew).
    """
    if verifier.sig_type != COSIGNATURE_V1:
        raise LocalError(Code.INVALID_REQUEST, "verifier is not a cosignature/v1 key")
    if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
        raise RejectedInput(
            Code.UNKNOWN_KEY,
            f"cosignature is by {signature.name}+{signature.key_id.hex()}, not by "
            f"{verifier.name}+{verifier.key_id.hex()}",
        )
    parse_checkpoint(body)
    return _verify_cosignature(body, signature, verifier)


def cosignature_timestamp(signature: Signature) -> int:
    """The timestamp a cosignature/v1 claims, read without verifying it."""
    if len(signature.signature) != 8 + crypto.SIGNATURE_BYTES:
        raise RejectedInput(Code.MALFORMED, "a cosignature/v1 signature is 8 + 64 bytes")
    return int.from_bytes(signature.signature[:8], "big")


# --- helpers --------------------------------------------------------------------------------------


def decode_base64(text: str, what: str) -> bytes:
    """Standard, padded, canonical base64 (as these formats write hashes and keys), or
    RejectedInput(MALFORMED) naming `what`."""
    return _b64decode(text, what)


def _b64decode(text: str, what: str) -> bytes:
    """Standard, padded, canonical base64 only: one value, one encoding."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise RejectedInput(Code.MALFORMED, f"{what}: not standard base64") from exc
    if not text or base64.b64encode(raw).decode("ascii") != text:
        raise RejectedInput(Code.MALFORMED, f"{what}: not canonical standard base64")
    return raw


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot be sent as UTF-8
        return False
    return True


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise LocalError(
            Code.INVALID_REQUEST, f"key name {name!r} must be non-empty, without spaces or '+'"
        )


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise LocalError(Code.INVALID_REQUEST, "note text must end with a newline")
    if not _encodable(text) or _CONTROL.search(text):
        raise LocalError(Code.INVALID_REQUEST, "note text must be UTF-8 without control characters")
