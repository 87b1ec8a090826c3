"""What witnessing keeps (migration 10).

`witness_state`: as a witness (station/witness.py), the latest checkpoint cosigned for each log
origin. It changes only by compare-and-swap (`advance`), in the same transaction as the check of
the old size, so two requests racing on one origin cannot roll the log back (tlog-witness).
`witness_cosignatures`: as a channel member (station/witnessing.py), the cosignature lines the
channel's witnesses returned on checkpoints, one per (chain, size, witness vkey).
The witness key's seed is kept in `meta` beside the prekey secrets: one secret store per station.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.protocol import crypto
from parley.protocol.witness import State
from parley.store.base import SqlStore
from parley.store.checkpoints import chain_filter

SEED_KEY = "witness_seed"


def witness_key(store: SqlStore) -> crypto.SigningKey:
    """This station's witness key, made on first use."""
    with store.tx():
        seed = store.get_meta(SEED_KEY)
        if seed is None:
            key = crypto.SigningKey.generate()
            store.set_meta(SEED_KEY, key.seed.hex())
            return key
    return crypto.SigningKey(bytes.fromhex(seed))


def state(store: SqlStore, origin: str) -> State | None:
    rows = store.q("SELECT size, root, note FROM witness_state WHERE origin = ?", origin)
    if not rows:
        return None
    return State(int(rows[0][0]), bytes(rows[0][1]), str(rows[0][2]))


def advance(store: SqlStore, origin: str, old: State | None, new: State, now_ms: int) -> bool:
    """Replace `old` by `new` for `origin` if `old` is still what is held; False if not."""
    if old is None:
        rows = store.q(
            "INSERT INTO witness_state (origin, size, root, note, updated) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING origin",
            origin, new.size, new.root, new.signed_note, now_ms,
        )  # fmt: skip
    else:
        rows = store.q(
            "UPDATE witness_state SET size = ?, root = ?, note = ?, updated = ?"
            " WHERE origin = ? AND size = ? AND root = ? RETURNING origin",
            new.size, new.root, new.signed_note, now_ms, origin, old.size, old.root,
        )  # fmt: skip
    return bool(rows)


def origins(store: SqlStore) -> int:
    return int(store.q("SELECT COUNT(*) FROM witness_state")[0][0])


@dataclass(frozen=True)
class CosignatureRow:
    channel: str
    sender: str
    size: int
    witness: str  # the witness's vkey
    line: str  # its cosignature line, without the newline
    signed: int  # the cosignature's timestamp (POSIX seconds)


def add_cosignature(store: SqlStore, row: CosignatureRow, now_ms: int) -> None:
    store.q(
        "INSERT INTO witness_cosignatures (channel, sender, size, witness, line, signed, received)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        row.channel, row.sender, row.size, row.witness, row.line, row.signed, now_ms,
    )  # fmt: skip


def cosignatures(
    store: SqlStore, channel: str, sender: str | None = None, size: int | None = None
) -> list[CosignatureRow]:
    where, params = chain_filter(channel, sender, size)
    rows = store.q(
        "SELECT channel, sender, size, witness, line, signed FROM witness_cosignatures"
        f" {where} ORDER BY sender, size, witness",
        *params,
    )
    return [
        CosignatureRow(str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), int(r[5]))
        for r in rows
    ]


def latest_cosigned(store: SqlStore, channel: str, sender: str, witness: str) -> int:
    """The largest size of `sender`'s chain that `witness` has cosigned for us (0: none)."""
    rows = store.q(
        "SELECT MAX(size) FROM witness_cosignatures WHERE channel = ? AND sender = ?"
        " AND witness = ?",
        channel, sender, witness,
    )  # fmt: skip
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0
