"""Frames and bundle files: a header line, then envelopes, one per line.

A frame carries envelopes with something about them (pull responses, relay requests, bundles):

    line 1      the header: a canonical JSON object (its fields depend on the use)
    lines 2..   canonical envelopes, one per line, byte for byte as in a push body
    Lines end with "\\n" (the last one too); empty lines are not allowed.

A bundle file (`parley bundle export`, docs/protocol.md §18.3) is a frame whose header is

    {"v":1, "type":"parley/bundle", "from":<station id>, "to":<station id>, "ts":<unix ms>,
     "count":n, "digest":b64u(SHA-256(the n envelope lines joined by "\\n")),
     "receipts":[receipt objects (§8)], "prekeys":[prekey records (§3.3)], "sig":<64 B>}

`sig` is Ed25519 by `from` over "parley/bundle/v1\\0" || canonical(header without "sig"). The
digest binds the envelope lines to the signed header, so one signature covers the whole file.
A bundle has no freshness window: like the envelopes and receipts in it, it may arrive late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.errors import Code, RejectedInput
from parley.protocol import crypto
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.identity import is_station_id
from parley.protocol.schema import require_fields, require_int

BUNDLE_LABEL = b"parley/bundle/v1\x00"
BUNDLE_TYPE = "parley/bundle"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_BUNDLE_ENVELOPES = 100_000
MAX_BUNDLE_RECEIPTS = 4096
MAX_BUNDLE_PREKEYS = 8
# Receipts are at most 4 KiB each (protocol.receipt); the header holds at most 4096 of them.
MAX_HEADER_BYTES = 17 * 1024 * 1024


def join_frame(header: dict[str, Any], raws: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in [canonical(header), *raws])


def split_frame(
    data: bytes, what: str, *, header_limit: int, max_envelopes: int
) -> tuple[dict[str, Any], list[bytes]]:
    """The header object and the envelope lines of a frame (envelopes not yet parsed)."""
    if not data.endswith(b"\n"):
        raise RejectedInput(Code.MALFORMED, f"{what}: the last line must end with a newline")
    lines = data[:-1].split(b"\n")
    if any(not line for line in lines):
        raise RejectedInput(Code.MALFORMED, f"{what}: empty line")
    if len(lines) - 1 > max_envelopes:
        raise RejectedInput(Code.OVERSIZED, f"{what}: more than {max_envelopes} envelopes")
    header = parse(lines[0], limit=header_limit)
    if not isinstance(header, dict):
        raise RejectedInput(Code.MALFORMED, f"{what}: the header must be an object")
    return header, lines[1:]


@dataclass(frozen=True)
class Bundle:
    sender: str
    to: str
    ts: int
    digest: bytes
    receipts: tuple[dict[str, Any], ...]
    prekeys: tuple[dict[str, Any], ...]
    envelopes: tuple[bytes, ...]
    sig: bytes

    def header(self) -> dict[str, Any]:
        return {
            "v": 1,
            "type": BUNDLE_TYPE,
            "from": self.sender,
            "to": self.to,
            "ts": self.ts,
            "count": len(self.envelopes),
            "digest": b64e(self.digest),
            "receipts": list(self.receipts),
            "prekeys": list(self.prekeys),
        }

    def encode(self) -> bytes:
        return join_frame({**self.header(), "sig": b64e(self.sig)}, list(self.envelopes))


def _digest(raws: list[bytes] | tuple[bytes, ...]) -> bytes:
    return crypto.sha256(b"\n".join(raws))


def make_bundle(
    identity: crypto.SigningKey,
    sender: str,
    to: str,
    envelopes: list[bytes],
    receipts: list[dict[str, Any]],
    prekeys: list[dict[str, Any]],
    now_ms: int,
) -> Bundle:
    prekeys = prekeys[:MAX_BUNDLE_PREKEYS]
    if len(envelopes) > MAX_BUNDLE_ENVELOPES or len(receipts) > MAX_BUNDLE_RECEIPTS:
        raise RejectedInput(
            Code.OVERSIZED,
            f"a bundle holds at most {MAX_BUNDLE_ENVELOPES} envelopes and "
            f"{MAX_BUNDLE_RECEIPTS} receipts",
        )
    unsigned = Bundle(
        sender, to, now_ms, _digest(envelopes), tuple(receipts), tuple(prekeys),
        tuple(envelopes), b"",
    )  # fmt: skip
    sig = identity.sign(BUNDLE_LABEL, canonical(unsigned.header()))
    return Bundle(
        sender, to, now_ms, unsigned.digest, unsigned.receipts, unsigned.prekeys,
        unsigned.envelopes, sig,
    )  # fmt: skip


def parse_bundle(data: bytes) -> Bundle:
    """Parse a bundle file and check that its lines match its header; `verify_bundle` checks
    the signature. Envelopes and receipts inside are checked by the receive path as usual."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise RejectedInput(Code.OVERSIZED, f"a bundle is at most {MAX_BUNDLE_BYTES} bytes")
    header, lines = split_frame(
        data, "bundle", header_limit=MAX_HEADER_BYTES, max_envelopes=MAX_BUNDLE_ENVELOPES
    )
    obj = require_fields(
        header,
        "bundle",
        {"v", "type", "from", "to", "ts", "count", "digest", "receipts", "prekeys", "sig"},
    )
    if type(obj["v"]) is not int or obj["v"] != 1 or obj["type"] != BUNDLE_TYPE:
        raise RejectedInput(Code.MALFORMED, "bundle: not a version 1 Parley bundle")
    if not is_station_id(obj["from"]) or not is_station_id(obj["to"]):
        raise RejectedInput(Code.MALFORMED, "bundle: from and to are station ids")
    receipts = _objects(obj, "receipts", MAX_BUNDLE_RECEIPTS)
    prekeys = _objects(obj, "prekeys", MAX_BUNDLE_PREKEYS)
    if require_int(obj, "count", 0, MAX_BUNDLE_ENVELOPES) != len(lines):
        raise RejectedInput(Code.MALFORMED, "bundle: count does not match the envelope lines")
    digest = b64d(obj["digest"], field="bundle.digest", size=32)
    if _digest(lines) != digest:
        raise RejectedInput(
            Code.BAD_SIGNATURE, "bundle: the envelopes do not match the signed digest"
        )
    return Bundle(
        sender=obj["from"],
        to=obj["to"],
        ts=require_int(obj, "ts"),
        digest=digest,
        receipts=tuple(receipts),
        prekeys=tuple(prekeys),
        envelopes=tuple(lines),
        sig=b64d(obj["sig"], field="bundle.sig", size=64),
    )


def _objects(obj: dict[str, Any], key: str, most: int) -> list[dict[str, Any]]:
    v = obj[key]
    if not isinstance(v, list) or len(v) > most or not all(isinstance(x, dict) for x in v):
        raise RejectedInput(Code.MALFORMED, f"bundle: {key} is a list of at most {most} objects")
    return v


def verify_bundle(bundle: Bundle, *sender_keys: bytes) -> None:
    """Signed by one of `sender_keys`: the keys that may sign for the sender at the bundle's
    `ts` (around an identity hand-over, the old and the new one, §3.6)."""
    signed = canonical(bundle.header())
    if not any(crypto.verify(k, BUNDLE_LABEL, signed, bundle.sig) for k in sender_keys):
        raise RejectedInput(Code.BAD_SIGNATURE, "bundle signature does not verify")
