"""Receipts: "I, `by`, hold `of`'s chain on `ch` up to `seq`, whose envelope hash is `hash`".

Wire form (canonical JSON): {"v":1, "ch", "of", "by", "seq", "hash", "ts", "head"?, "root"?,
"sig"} where `head` = {"seq","hash"} is the receiver's own chain on that channel at the time (what
it had itself said), and `root` is the RFC 9162 root of `of`'s chain 1..seq as the receiver holds
it: with (ch, of, seq) the receiver's checkpoint of the sender's chain, signed. So a receipt fixes
what the receiver's transcript held, and a sender whose own root differs can prove it. A receipt
for seq n covers 1..n. `sig` is Ed25519 by `by` over "parley/receipt/v1\\0" ||
canonical(receipt without "sig").
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
    root: bytes | None = None  # the receiver's Merkle root of `of`'s chain 1..seq

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
        if self.root is not None:
            doc["root"] = b64e(self.root)
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
    root: bytes | None = None,
) -> Receipt:
    unsigned = Receipt(channel, of, by, ref.seq, ref.hash, now_ms, head, b"", root)
    sig = identity.sign(RECEIPT_LABEL, canonical(unsigned.body()))
    return Receipt(channel, of, by, ref.seq, ref.hash, now_ms, head, sig, root)


def parse_receipt(value: object) -> Receipt:
    """Parse a receipt (as a decoded JSON object); verify with `verify_receipt`."""
    obj = require_fields(
        value,
        "receipt",
        {"v", "ch", "of", "by", "seq", "hash", "ts", "sig"},
        frozenset({"head", "root"}),
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
        root=b64d(obj["root"], field="receipt.root", size=32) if "root" in obj else None,
    )


def decode_receipt(raw: bytes) -> Receipt:
    return parse_receipt(parse(raw, limit=MAX_RECEIPT_BYTES))


def verify_receipt(receipt: Receipt, by_public: bytes) -> None:
    if not crypto.verify(by_public, RECEIPT_LABEL, canonical(receipt.body()), receipt.sig):
        raise RejectedInput(Code.BAD_SIGNATURE, "receipt signature does not verify")


def divergence(receipt: Receipt, sent_hash: bytes | None, sent_root: bytes | None) -> str:
    """Why a verified receipt of our own chain contradicts what we sent, or "" if it does not.
    `sent_hash` is our envelope at the receipt's seq (None: we never sent that seq); `sent_root`
    is the root of our chain 1..seq (None if we cannot compute it)."""
    if sent_hash != receipt.hash:
        return f"it acknowledges seq {receipt.seq} with a hash we never sent"
    if receipt.root is not None and sent_root is not None and receipt.root != sent_root:
        return (
            f"its checkpoint of our chain at size {receipt.seq} has root {b64e(receipt.root)},"
            f" ours is {b64e(sent_root)}: it holds another history of our chain"
        )
    return ""
