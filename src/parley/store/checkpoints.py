"""Checkpoints and cosignatures a station holds, and the reads that checkpointing and exports need.

Tables (migration 4): `checkpoints` holds signed tree heads over one sender's chain, keyed by
(channel, sender, size): our own, and other members' that matched the chain we hold. A head
that did not match is evidence (the `evidence` table), never a row here. `cosignatures` holds
the countersignatures that matched our own view, one per (checkpoint, cosigner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.store.base import SqlStore

# Bodies that checkpointing itself sends: they do not make a new checkpoint due.
HOUSEKEEPING = ("checkpoint", "checkpoint.cosign")


@dataclass(frozen=True)
class CheckpointRow:
    channel: str
    sender: str
    size: int
    root: bytes
    seq: int  # the sender's envelope that carried it (size + 1)
    note: str  # the signed note as the sender signed it
    ts: int


@dataclass(frozen=True)
class CosignatureRow:
    channel: str
    sender: str
    size: int
    cosigner: str
    line: str  # the cosigner's signature line, without its newline
    signed: int  # the cosignature's own timestamp (POSIX seconds)
    seq: int  # the cosigner's envelope that carried it


_CP = "channel, sender, size, root, seq, note, ts"
_CS = "channel, sender, size, cosigner, line, signed, seq"


def _cp(r: tuple[Any, ...]) -> CheckpointRow:
    return CheckpointRow(
        str(r[0]), str(r[1]), int(r[2]), bytes(r[3]), int(r[4]), str(r[5]),
        int(r[6]),
    )  # fmt: skip


def _cs(r: tuple[Any, ...]) -> CosignatureRow:
    return CosignatureRow(
        str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), int(r[5]),
        int(r[6]),
    )  # fmt: skip


def chain_hashes(
    store: SqlStore, channel: str, sender: str, upto: int | None = None, after: int = 0
) -> list[bytes]:
    """Envelope hashes of one chain in seq order (after+1..upto, or all held)."""
    rows = store.q(
        "SELECT hash FROM envelopes WHERE channel = ? AND sender = ? AND seq > ? AND seq <= ?"
        " ORDER BY seq",
        channel, sender, after, upto if upto is not None else 2**62,
    )  # fmt: skip
    return [bytes(r[0]) for r in rows]


def add_checkpoint(store: SqlStore, row: CheckpointRow) -> bool:
    """Keep a checkpoint; False if one of that size is already kept for the chain."""
    with store.tx():
        if store.q(
            "SELECT 1 FROM checkpoints WHERE channel = ? AND sender = ? AND size = ?",
            row.channel, row.sender, row.size,
        ):  # fmt: skip
            return False
        store.q(
            f"INSERT INTO checkpoints ({_CP}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            row.channel, row.sender, row.size, row.root, row.seq, row.note, row.ts,
        )  # fmt: skip
    return True


def checkpoint_at(store: SqlStore, channel: str, sender: str, size: int) -> CheckpointRow | None:
    rows = store.q(
        f"SELECT {_CP} FROM checkpoints WHERE channel = ? AND sender = ? AND size = ?",
        channel, sender, size,
    )  # fmt: skip
    return _cp(rows[0]) if rows else None


def latest_checkpoint(store: SqlStore, channel: str, sender: str) -> CheckpointRow | None:
    rows = store.q(
        f"SELECT {_CP} FROM checkpoints WHERE channel = ? AND sender = ?"
        " ORDER BY size DESC LIMIT 1",
        channel, sender,
    )  # fmt: skip
    return _cp(rows[0]) if rows else None


def previous_checkpoint_size(store: SqlStore, channel: str, sender: str, before_seq: int) -> int:
    """What `prev` of the sender's checkpoint at `before_seq` must be (docs/protocol.md §17.2):
    the size its latest earlier `checkpoint` envelope covers, that envelope's seq - 1; 0 if
    the chain has none before."""
    rows = store.q(
        "SELECT MAX(e.seq) FROM envelopes e JOIN bodies b ON b.hash = e.hash"
        " WHERE e.channel = ? AND e.sender = ? AND e.seq < ? AND b.type = 'checkpoint'",
        channel, sender, before_seq,
    )  # fmt: skip
    return int(rows[0][0]) - 1 if rows and rows[0][0] is not None else 0


def checkpoints(store: SqlStore, channel: str) -> list[CheckpointRow]:
    rows = store.q(
        f"SELECT {_CP} FROM checkpoints WHERE channel = ? ORDER BY sender, size", channel
    )
    return [_cp(r) for r in rows]


def add_cosignature(store: SqlStore, row: CosignatureRow) -> bool:
    """Keep a cosignature; False if that cosigner's is already kept for that checkpoint."""
    with store.tx():
        if store.q(
            "SELECT 1 FROM cosignatures WHERE channel = ? AND sender = ? AND size = ?"
            " AND cosigner = ?",
            row.channel, row.sender, row.size, row.cosigner,
        ):  # fmt: skip
            return False
        store.q(
            f"INSERT INTO cosignatures ({_CS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            row.channel, row.sender, row.size, row.cosigner, row.line, row.signed, row.seq,
        )  # fmt: skip
    return True


def cosignatures(
    store: SqlStore, channel: str, sender: str | None = None, size: int | None = None
) -> list[CosignatureRow]:
    where, params = chain_filter(channel, sender, size)
    order = "ORDER BY sender, size, cosigner"
    rows = store.q(f"SELECT {_CS} FROM cosignatures {where} {order}", *params)
    return [_cs(r) for r in rows]


def chain_filter(
    channel: str, sender: str | None = None, size: int | None = None
) -> tuple[str, list[object]]:
    """The WHERE clause and parameters that pick a channel's rows, optionally one sender's chain
    and one size of it: shared by every table keyed by (channel, sender, size)."""
    where = "WHERE channel = ?"
    params: list[object] = [channel]
    if sender is not None:
        where += " AND sender = ?"
        params.append(sender)
    if size is not None:
        where += " AND size = ?"
        params.append(size)
    return where, params


def covering(store: SqlStore, channel: str, sender: str, seq: int) -> list[CheckpointRow]:
    """Checkpoints of a chain that cover `seq` and carry at least one cosignature, smallest
    first."""
    rows = store.q(
        f"SELECT {', '.join('c.' + c for c in _CP.split(', '))} FROM checkpoints c"
        " WHERE c.channel = ? AND c.sender = ? AND c.size >= ? AND EXISTS (SELECT 1 FROM"
        " cosignatures s WHERE s.channel = c.channel AND s.sender = c.sender"
        " AND s.size = c.size) ORDER BY c.size",
        channel, sender, seq,
    )  # fmt: skip
    return [_cp(r) for r in rows]


def uncovered(store: SqlStore, channel: str, sender: str, after_seq: int) -> tuple[int, int]:
    """(count, oldest ts) of a chain's envelopes after `after_seq` other than checkpointing's own
    bodies: what a new checkpoint would be for."""
    where, params = _uncovered(channel, sender, after_seq)
    count, oldest = store.q(f"SELECT COUNT(*), MIN(e.ts) {where}", *params)[0]
    return int(count or 0), int(oldest or 0)


def oldest_uncovered(store: SqlStore, channel: str, sender: str, after_seq: int) -> int | None:
    """The time of the first envelope `uncovered` counts (None if there is none)."""
    where, params = _uncovered(channel, sender, after_seq)
    rows = store.q(f"SELECT e.ts {where} ORDER BY e.seq LIMIT 1", *params)
    return int(rows[0][0]) if rows else None


def _uncovered(channel: str, sender: str, after_seq: int) -> tuple[str, list[object]]:
    """FROM and WHERE of the envelopes `uncovered` counts, and their parameters."""
    marks = ", ".join("?" for _ in HOUSEKEEPING)
    where = (
        "FROM envelopes e LEFT JOIN bodies b ON b.hash = e.hash"
        " WHERE e.channel = ? AND e.sender = ? AND e.seq > ?"
        f" AND (b.type IS NULL OR b.type NOT IN ({marks}))"
    )
    return where, [channel, sender, after_seq, *HOUSEKEEPING]


def max_envelope_id(store: SqlStore, channel: str) -> int:
    rows = store.q("SELECT MAX(id) FROM envelopes WHERE channel = ?", channel)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def export_page(
    store: SqlStore, channel: str, after_id: int, upto_id: int, limit: int
) -> list[tuple[int, str, int, bytes, str | None, bytes | None]]:
    """(id, sender, seq, raw, canonical body text or None, salt or None) in stored order."""
    rows = store.q(
        "SELECT e.id, e.sender, e.seq, e.raw, b.body, b.salt FROM envelopes e"
        " LEFT JOIN bodies b ON b.hash = e.hash"
        " WHERE e.channel = ? AND e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?",
        channel, after_id, upto_id, limit,
    )  # fmt: skip
    return [
        (
            int(r[0]), str(r[1]), int(r[2]), bytes(r[3]),
            None if r[4] is None else str(r[4]),
            None if r[5] is None else bytes(r[5]),
        )
        for r in rows
    ]  # fmt: skip
