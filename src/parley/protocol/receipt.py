"""Receipts: "I, `by`, hold `of`'s chain on `ch` up to `seq`, whose envelope hash is `hash`".

Wire form (canonical JSON): {"v":1, "ch", "of", "by", "seq", "hash", "ts", "head"?, "sig"} where
`head` = {"seq","hash"} is the receiver's own chain on that channel at the time (what it had
itself said), so a receipt also fixes the receiver's state. A receipt for seq n covers 1..n.
`sig` is Ed25519 by `by` over "parley/receipt/v1\\0" || canonical(receipt without "sig").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.errors import Code, RejectedInput
from parley.protocol import crypto
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.envelope import Ref
from parley.protocol.identity import is_station_id
from parley.protocol.schema import require_fields, require_int

RECEIPT_LABEL = b"parley/receipt/v1\x00"
MAX_RECEIPT_BYTES = 4096


@dataclass(frozen=True)
class Receipt:
    channel: str
    of: str
    by: str
    seq: int
    hash: bytes
    ts: int
    head: Ref | None
    sig: bytes

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "v": 1,
            "ch": self.channel,
            "of": self.of,
            "by": self.by,
            "seq": self.seq,
            "hash": b64e(self.hash),
            "ts": self.ts,
        }
        if self.head is not None:
            doc["head"] = {"seq": self.head.seq, "hash": b64e(self.head.hash)}
        return doc

    def encode(self) -> bytes:
        return canonical({**self.body(), "sig": b64e(self.sig)})

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig": b64e(self.sig)}


def sign_receipt(
    identity: crypto.SigningKey,
    by: str,
    channel: str,
    of: str,
    ref: Ref,
    head: Ref | None,
    now_ms: int,
) -> Receipt:
    unsigned = Receipt(channel, of, by, ref.seq, ref.hash, now_ms, head, b"")
    sig = identity.sign(RECEIPT_LABEL, canonical(unsigned.body()))
    return Receipt(channel, of, by, ref.seq, ref.hash, now_ms, head, sig)


def parse_receipt(value: object) -> Receipt:
    """Parse a receipt (as a decoded JSON object); verify with `verify_receipt`."""
    obj = require_fields(
        value, "receipt", {"v", "ch", "of", "by", "seq", "hash", "ts", "sig"}, frozenset({"head"})
    )
    if (
        type(obj["v"]) is not int
        or obj["v"] != 1
        or not is_station_id(obj["of"])
        or not is_station_id(obj["by"])
    ):
        raise RejectedInput(Code.MALFORMED, "receipt: bad version or station id")
    b64d(obj["ch"], field="receipt.ch", size=16)
    head = None
    if "head" in obj:
        h = require_fields(obj["head"], "receipt.head", {"seq", "hash"})
        head = Ref(require_int(h, "seq", 1), b64d(h["hash"], field="receipt.head.hash", size=32))
    return Receipt(
        channel=obj["ch"],
        of=obj["of"],
        by=obj["by"],
        seq=require_int(obj, "seq", 1),
        hash=b64d(obj["hash"], field="receipt.hash", size=32),
        ts=require_int(obj, "ts"),
        head=head,
        sig=b64d(obj["sig"], field="receipt.sig", size=64),
    )


def decode_receipt(raw: bytes) -> Receipt:
    return parse_receipt(parse(raw, limit=MAX_RECEIPT_BYTES))


def verify_receipt(receipt: Receipt, by_public: bytes) -> None:
    if not crypto.verify(by_public, RECEIPT_LABEL, canonical(receipt.body()), receipt.sig):
        raise RejectedInput(Code.BAD_SIGNATURE, "receipt signature does not verify")
