"""Identity hand-over: a station replaces its identity key with a record its old key signs
(docs/protocol.md §3.6). Pure: records, keys and times in, decisions out.

Rules:
- The station id does not change: it stays derived from the station's **first** identity key
  (§3.1), and a chain of hand-overs links every later key to it. Channels, chains and peer
  tables keep naming the same id.
- A hand-over names the station, its sequence number (1 for the first rotation, +1 each
  time), the old and the new key, when it was made, until when the old key may still sign
  (`old_until`, the grace), and the hash of the previous hand-over (32 zero bytes for the
  first). It is signed by the OLD key (which says "my successor is …") and by the NEW key
  (proof of possession, so nobody can hand a station over to a key they do not hold, nor claim
  another station's new key as theirs).
- A receiver accepts a hand-over only from the key it currently holds for that station
  (`wrong_old` otherwise): a peer cannot forge one for another station, because it holds no
  other station's key. Accepting it, the receiver keeps both keys: the old one verifies what
  is dated up to `old_until`, the new one what is dated from `created` on (`epochs`).
- Nothing here reads a clock: `signer_for(epochs, ts)` answers which keys may have signed a
  document dated `ts`; the caller decides what `ts` is trusted (an envelope's, or now).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.errors import Code, RejectedInput
from parley.protocol import crypto
from parley.protocol.encoding import b64d, b64e, canonical, parse
from parley.protocol.ids import is_station_id, station_id
from parley.protocol.schema import require_fields, require_int

HANDOVER_LABEL = b"parley/handover/v1\x00"
MAX_HANDOVER_BYTES = 2048
MAX_HANDOVERS = 64  # rotations one station may have made and a peer follows
ZERO = bytes(32)
_FIELDS = {
    "v",
    "station",
    "seq",
    "old",
    "new",
    "created",
    "old_until",
    "prev",
    "sig_old",
    "sig_new",
}


@dataclass(frozen=True)
class Handover:
    station: str
    seq: int
    old: bytes
    new: bytes
    created: int
    old_until: int
    prev: bytes
    sig_old: bytes = b""
    sig_new: bytes = b""

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "station": self.station,
            "seq": self.seq,
            "old": b64e(self.old),
            "new": b64e(self.new),
            "created": self.created,
            "old_until": self.old_until,
            "prev": b64e(self.prev),
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig_old": b64e(self.sig_old), "sig_new": b64e(self.sig_new)}

    @property
    def raw(self) -> bytes:
        return canonical(self.to_json())

    @property
    def hash(self) -> bytes:
        return crypto.sha256(self.raw)


def make_handover(
    old: crypto.SigningKey,
    new: crypto.SigningKey,
    station: str,
    seq: int,
    created: int,
    old_until: int,
    prev: bytes = ZERO,
) -> Handover:
    """Sign a hand-over from `old` to `new` (both keys are held by the rotating station)."""
    h = Handover(station, seq, old.public, new.public, created, old_until, prev)
    signed = canonical(h.body())
    return Handover(
        station, seq, old.public, new.public, created, old_until, prev,
        old.sign(HANDOVER_LABEL, signed), new.sign(HANDOVER_LABEL, signed),
    )  # fmt: skip


def _bad(message: str) -> RejectedInput:
    return RejectedInput(Code.BAD_HANDOVER, f"hand-over: {message}")


def parse_handover(value: object) -> Handover:
    """Shape and both signatures; not yet whether it continues what the receiver holds."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) > MAX_HANDOVER_BYTES:
            raise RejectedInput(Code.OVERSIZED, f"a hand-over is at most {MAX_HANDOVER_BYTES} B")
        value = parse(bytes(value), limit=MAX_HANDOVER_BYTES)
    try:
        obj = require_fields(value, "handover", _FIELDS)
        if obj["v"] != 1 or isinstance(obj["v"], bool):
            raise _bad("v must be 1")
        if not is_station_id(obj["station"]):
            raise _bad("station is not a station id")
        h = Handover(
            station=obj["station"],
            seq=require_int(obj, "seq", 1, MAX_HANDOVERS),
            old=b64d(obj["old"], field="old", size=32),
            new=b64d(obj["new"], field="new", size=32),
            created=require_int(obj, "created"),
            old_until=require_int(obj, "old_until"),
            prev=b64d(obj["prev"], field="prev", size=32),
            sig_old=b64d(obj["sig_old"], field="sig_old", size=64),
            sig_new=b64d(obj["sig_new"], field="sig_new", size=64),
        )
    except RejectedInput as exc:
        if exc.code == Code.BAD_HANDOVER:
            raise
        raise _bad(exc.message) from None
    if h.old == h.new:
        raise _bad("the new key is the old key")
    if h.old_until < h.created:
        raise _bad("old_until is before created")
    if (h.seq == 1) != (h.prev == ZERO):
        raise _bad("prev is 32 zero bytes exactly for the first hand-over (seq 1)")
    signed = canonical(h.body())
    if not crypto.verify(h.old, HANDOVER_LABEL, signed, h.sig_old):
        raise _bad("the old key's signature does not verify")
    if not crypto.verify(h.new, HANDOVER_LABEL, signed, h.sig_new):
        raise _bad("the new key's signature does not verify (no proof of possession)")
    return h


@dataclass(frozen=True)
class Epoch:
    """One identity key of a station and the times it may sign: [start, until] (None: open)."""

    public: bytes
    start: int
    until: int | None
    handover: Handover | None = None  # the record that introduced this key (None: the first)


def follow(
    genesis: bytes, station: str, records: list[Handover], *, check_id: bool = True
) -> list[Epoch]:
    """The key epochs of `station` from its first key `genesis` through `records` in order.
    Each record must continue the chain (station, seq, prev, old = the current key);
    `check_id` also requires that `station` derives from `genesis` (§3.1)."""
    if check_id and station_id(genesis) != station:
        raise _bad(f"{station} does not derive from its first key")
    epochs = [Epoch(genesis, 0, None)]
    prev = ZERO
    for i, h in enumerate(records, start=1):
        cont(epochs, station, h, i, prev)
        last = epochs[-1]
        epochs[-1] = Epoch(last.public, last.start, h.old_until, last.handover)
        epochs.append(Epoch(h.new, h.created, None, h))
        prev = h.hash
    return epochs


def cont(epochs: list[Epoch], station: str, h: Handover, seq: int, prev: bytes) -> None:
    """Whether `h` is the next hand-over of a station whose key history is `epochs`."""
    if h.station != station:
        raise _bad(f"it is for {h.station}, not {station}")
    if h.old != epochs[-1].public:
        raise _bad("wrong_old: it is not signed by the key this station holds for that peer")
    if h.seq != seq or h.prev != prev:
        raise _bad(f"out of order: expected seq {seq} after the hand-over held")
    if h.created < epochs[-1].start:
        raise _bad("created before the current key's own start")


def verify_next(epochs: list[Epoch], station: str, value: object) -> Handover:
    """Parse a hand-over and check that it continues `station`'s key history `epochs` (what the
    receiver holds): the one check a receiver runs before switching keys."""
    h = parse_handover(value)
    last = epochs[-1].handover
    cont(epochs, station, h, len(epochs), last.hash if last else ZERO)
    return h


def signers_at(epochs: list[Epoch], ts: int) -> list[bytes]:
    """The keys that may have signed a document dated `ts`, newest first."""
    return [
        e.public for e in reversed(epochs) if e.start <= ts and (e.until is None or ts <= e.until)
    ]
