"""Reads and writes for integrity at rest (station/integrity.py, station/selfaudit.py).

Table `integrity_findings` (migration 8): one row per stored item that failed its check, keyed by
(kind, channel, sender, seq), so a tampered envelope raises one alarm however often it is read.
The rest are the pages the self-audit walks: every envelope with its stored body, by id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.store.base import _ENV_COLS, BodyRow, EnvelopeRow, SqlStore, _body, _env

_COLS = ", ".join("e." + c for c in _ENV_COLS.split(", "))


@dataclass(frozen=True)
class FindingRow:
    kind: str  # envelope | checkpoint
    channel: str
    sender: str
    seq: int  # the envelope's seq, or the checkpoint's tree size
    problem: str
    found_by: str  # read | selfaudit
    detected: int


_F = "kind, channel, sender, seq, problem, found_by, detected"


def _finding(r: tuple[Any, ...]) -> FindingRow:
    return FindingRow(str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), str(r[5]), int(r[6]))


def add_finding(store: SqlStore, f: FindingRow) -> bool:
    """Record a finding; False if that item already has one (the first one stands)."""
    with store.tx():
        key = (f.kind, f.channel, f.sender, f.seq)
        if store.q(
            "SELECT 1 FROM integrity_findings WHERE kind = ? AND channel = ? AND sender = ?"
            " AND seq = ?",
            *key,
        ):
            return False
        # Two API workers may find the same item at once (PostgreSQL): one insert wins.
        made = store.q(
            f"INSERT INTO integrity_findings ({_F}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING seq",
            *key, f.problem, f.found_by, f.detected,
        )  # fmt: skip
    return bool(made)


def findings(store: SqlStore, channel: str | None = None) -> list[FindingRow]:
    if channel is None:
        rows = store.q(f"SELECT {_F} FROM integrity_findings ORDER BY detected, channel, seq")
    else:
        rows = store.q(
            f"SELECT {_F} FROM integrity_findings WHERE channel = ? ORDER BY detected, seq",
            channel,
        )
    return [_finding(r) for r in rows]


def page(store: SqlStore, after_id: int, limit: int) -> list[tuple[EnvelopeRow, BodyRow | None]]:
    """Every stored envelope after `after_id` with its stored body (None if it has none), by id:
    within one chain that is seq order, since seq n+1 is stored only after n."""
    rows = store.q(
        f"SELECT {_COLS}, b.body, b.salt, b.type FROM envelopes e"
        " LEFT JOIN bodies b ON b.hash = e.hash WHERE e.id > ? ORDER BY e.id LIMIT ?",
        after_id, limit,
    )  # fmt: skip
    return [(_env(r[:9]), _body(r[9:])) for r in rows]


def envelope_count(store: SqlStore) -> int:
    rows = store.q("SELECT COUNT(*) FROM envelopes")
    return int(rows[0][0] or 0)


def held_raw(store: SqlStore, channel: str, sender: str, seq: int) -> bytes | None:
    """The bytes of an envelope held ahead of its chain (a FLASH one shown early)."""
    rows = store.q(
        "SELECT raw FROM held WHERE channel = ? AND sender = ? AND seq = ?", channel, sender, seq
    )
    return bytes(rows[0][0]) if rows else None


# --- the self-audit's summary of its last pass ------------------------------------------------

AUDIT_META = "selfaudit"


def save_pass(store: SqlStore, summary: dict[str, Any]) -> None:
    store.set_meta(AUDIT_META, json.dumps(summary, sort_keys=True))


def last_pass(store: SqlStore) -> dict[str, Any] | None:
    text = store.get_meta(AUDIT_META)
    return dict(json.loads(text)) if text else None
