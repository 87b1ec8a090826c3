"""Notification settings and the notification outbox (schema migration 14).

`notify_settings`: named JSON values an admin set through the API (`targets`, `routes`), each
with when and by whom. `notify_outbox`: one row per notification to one target, webhook or
e-mail alike: its payload (fixed when queued), the back channel it concerns (NULL if none; the
delivery log hides such rows from users not named on it), how many later alarms it stands for
(`coalesced`: a summary row counts the alarms a burst limit held back), and its retry state.

Functions take the SqlStore and join the caller's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.store.base import SqlStore

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

_COLS = (
    "id, alarm_id, kind, target, channel, payload, coalesced, state, attempts, next_ms, created,"
    " updated, last_error"
)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    alarm_id: int | None
    kind: str
    target: str
    channel: str | None
    payload: str
    coalesced: int
    state: str
    attempts: int
    next_ms: int
    created: int
    updated: int
    last_error: str | None


def _row(r: tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(
        int(r[0]), None if r[1] is None else int(r[1]), r[2], r[3], r[4], r[5], int(r[6]), r[7],
        int(r[8]), int(r[9]), int(r[10]), int(r[11]), r[12],
    )  # fmt: skip


# --- settings ------------------------------------------------------------------------------------
def setting(store: SqlStore, name: str) -> Any:
    rows = store.q("SELECT value FROM notify_settings WHERE name = ?", name)
    return json.loads(rows[0][0]) if rows else None


def put_setting(store: SqlStore, name: str, value: Any, by: str, now_ms: int) -> None:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    with store.tx():
        store.q("DELETE FROM notify_settings WHERE name = ?", name)
        store.q(
            "INSERT INTO notify_settings (name, value, updated, updated_by) VALUES (?, ?, ?, ?)",
            name, text, now_ms, by,
        )  # fmt: skip


# --- the outbox ----------------------------------------------------------------------------------
def add(
    store: SqlStore, alarm_id: int | None, kind: str, target: str, channel: str | None,
    payload: str, now_ms: int, *, coalesced: int = 0, next_ms: int | None = None,
) -> int:  # fmt: skip
    return store._insert_id(
        store._sql(
            "INSERT INTO notify_outbox (alarm_id, kind, target, channel, payload, coalesced,"
            " state, attempts, next_ms, created, updated, last_error)"
            " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, NULL)"
        ),
        (alarm_id, kind, target, channel, payload, coalesced,
         now_ms if next_ms is None else next_ms, now_ms, now_ms),
    )  # fmt: skip


def sent_since(store: SqlStore, target: str, kind: str, since_ms: int) -> int:
    """Notifications of `kind` queued for `target` since `since_ms`, summaries not counted."""
    rows = store.q(
        "SELECT COUNT(*) FROM notify_outbox WHERE target = ? AND kind = ? AND created >= ?"
        " AND coalesced = 0",
        target, kind, since_ms,
    )  # fmt: skip
    return int(rows[0][0])


def open_summary(store: SqlStore, target: str, kind: str) -> OutboxRow | None:
    """The summary of `kind` for `target` still waiting for its window to end, if any."""
    rows = store.q(
        f"SELECT {_COLS} FROM notify_outbox WHERE target = ? AND kind = ? AND coalesced > 0"
        " AND state = 'pending' AND attempts = 0 ORDER BY id DESC LIMIT 1",
        target, kind,
    )  # fmt: skip
    return _row(rows[0]) if rows else None


def bump_summary(store: SqlStore, row_id: int, coalesced: int, payload: str, now: int) -> None:
    store.q(
        "UPDATE notify_outbox SET coalesced = ?, payload = ?, updated = ? WHERE id = ?",
        coalesced, payload, now, row_id,
    )  # fmt: skip


def due(store: SqlStore, now_ms: int, limit: int) -> list[OutboxRow]:
    rows = store.q(
        f"SELECT {_COLS} FROM notify_outbox WHERE state = 'pending' AND next_ms <= ?"
        " ORDER BY next_ms, id LIMIT ?",
        now_ms, limit,
    )  # fmt: skip
    return [_row(r) for r in rows]


def result(
    store: SqlStore, row_id: int, state: str, attempts: int, next_ms: int, error: str | None,
    now_ms: int,
) -> None:  # fmt: skip
    store.q(
        "UPDATE notify_outbox SET state = ?, attempts = ?, next_ms = ?, last_error = ?,"
        " updated = ? WHERE id = ?",
        state, attempts, next_ms, error, now_ms, row_id,
    )  # fmt: skip


def get(store: SqlStore, row_id: int) -> OutboxRow | None:
    rows = store.q(f"SELECT {_COLS} FROM notify_outbox WHERE id = ?", row_id)
    return _row(rows[0]) if rows else None


def recent(store: SqlStore, limit: int, alarm_id: int | None = None) -> list[OutboxRow]:
    """The newest rows first (of one alarm, if given)."""
    if alarm_id is not None:
        rows = store.q(
            f"SELECT {_COLS} FROM notify_outbox WHERE alarm_id = ? ORDER BY id DESC LIMIT ?",
            alarm_id, limit,
        )  # fmt: skip
    else:
        rows = store.q(f"SELECT {_COLS} FROM notify_outbox ORDER BY id DESC LIMIT ?", limit)
    return [_row(r) for r in rows]


def pending(store: SqlStore) -> int:
    return int(store.q("SELECT COUNT(*) FROM notify_outbox WHERE state = 'pending'")[0][0])


def prune(store: SqlStore, keep: int) -> None:
    """Forget finished rows beyond the newest `keep` (pending ones are never dropped)."""
    rows = store.q("SELECT id FROM notify_outbox ORDER BY id DESC LIMIT 1 OFFSET ?", keep)
    if rows:
        store.q("DELETE FROM notify_outbox WHERE id <= ? AND state != 'pending'", int(rows[0][0]))
