"""Notices, acknowledgements, acknowledgement deadlines and escalations.

Tables (schema migration 5): `notices` (one row per notice envelope held), `notice_acks` (one
row per `ack` envelope held), `notice_deadlines` (one row per notice and station expected to
answer it, kept where this station is the sender or the answerer), `notice_escalations` (the
levels fired, so a level fires once even across restarts); `notice_webhooks` is no longer
written: escalation webhooks go through the notification outbox (store/notify.py).

Everything here is derived from the transcript and can be rebuilt from it; functions take the
SqlStore and join the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.store.base import SqlStore


@dataclass(frozen=True)
class NoticeRow:
    hash: str
    channel: str
    sender: str
    seq: int
    ts: int
    form: str
    version: int
    lang: str
    deadline_ms: int
    late: bool


@dataclass(frozen=True)
class AckRow:
    hash: str
    channel: str
    ref: str
    station: str
    seq: int
    ts: int
    answer: str
    text: str
    by: str


@dataclass(frozen=True)
class DeadlineRow:
    ref: str
    answerer: str
    channel: str
    sender: str
    deadline_ms: int
    answered_ts: int | None
    level: int  # the highest escalation level fired (1-based); 0 if none


_NOTICE_COLS = "hash, channel, sender, seq, ts, form, version, lang, deadline_ms, late"
_ACK_COLS = "hash, channel, ref, station, seq, ts, answer, answer_text, by_name"


def _notice(r: tuple[Any, ...]) -> NoticeRow:
    return NoticeRow(
        str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), str(r[5]),
        int(r[6]), str(r[7]), int(r[8]), bool(r[9]),
    )  # fmt: skip


def _ack(r: tuple[Any, ...]) -> AckRow:
    return AckRow(
        str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]),
        str(r[6]), str(r[7]), str(r[8]),
    )  # fmt: skip


# --- notices -------------------------------------------------------------------------------------
def add_notice(store: SqlStore, n: NoticeRow) -> None:
    store.q(
        f"INSERT INTO notices ({_NOTICE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        n.hash, n.channel, n.sender, n.seq, n.ts, n.form, n.version, n.lang, n.deadline_ms,
        int(n.late),
    )  # fmt: skip


def notice(store: SqlStore, h: str) -> NoticeRow | None:
    rows = store.q(f"SELECT {_NOTICE_COLS} FROM notices WHERE hash = ?", h)
    return _notice(rows[0]) if rows else None


def notices(store: SqlStore, channel: str, limit: int = 1000) -> list[NoticeRow]:
    rows = store.q(
        f"SELECT {_NOTICE_COLS} FROM notices WHERE channel = ? ORDER BY ts, hash LIMIT ?",
        channel, limit,
    )  # fmt: skip
    return [_notice(r) for r in rows]


# --- acknowledgements ----------------------------------------------------------------------------
def add_ack(store: SqlStore, a: AckRow) -> None:
    store.q(
        f"INSERT INTO notice_acks ({_ACK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        a.hash, a.channel, a.ref, a.station, a.seq, a.ts, a.answer, a.text, a.by,
    )  # fmt: skip


def acks(store: SqlStore, ref: str) -> list[AckRow]:
    """Every answer to `ref`, oldest first (the last one is the current answer)."""
    rows = store.q(f"SELECT {_ACK_COLS} FROM notice_acks WHERE ref = ? ORDER BY ts, hash", ref)
    return [_ack(r) for r in rows]


def first_ack_ts(store: SqlStore, channel: str, ref: str, station: str) -> int | None:
    rows = store.q(
        "SELECT MIN(ts) FROM notice_acks WHERE channel = ? AND ref = ? AND station = ?",
        channel, ref, station,
    )  # fmt: skip
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


# --- deadlines -----------------------------------------------------------------------------------
_DL_SELECT = (
    "SELECT d.ref, d.answerer, d.channel, d.sender, d.deadline_ms, d.answered_ts,"
    " (SELECT MAX(e.level) FROM notice_escalations e"
    "  WHERE e.ref = d.ref AND e.answerer = d.answerer)"
    " FROM notice_deadlines d"
)


def _deadline(r: tuple[Any, ...]) -> DeadlineRow:
    return DeadlineRow(
        str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]),
        int(r[5]) if r[5] is not None else None,
        int(r[6]) + 1 if r[6] is not None else 0,
    )  # fmt: skip


def add_deadline(
    store: SqlStore, ref: str, answerer: str, channel: str, sender: str, deadline_ms: int,
    answered_ts: int | None,
) -> None:  # fmt: skip
    store.q(
        "INSERT INTO notice_deadlines (ref, answerer, channel, sender, deadline_ms, answered_ts)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        ref, answerer, channel, sender, deadline_ms, answered_ts,
    )  # fmt: skip


def mark_answered(store: SqlStore, channel: str, ref: str, answerer: str, ts: int) -> bool:
    """Record the first answer of `answerer` to `ref`; True if this answer was the first.
    Only an answer on the notice's own channel counts."""
    rows = store.q(
        "SELECT answered_ts FROM notice_deadlines WHERE ref = ? AND answerer = ? AND channel = ?",
        ref, answerer, channel,
    )  # fmt: skip
    if not rows:
        return False
    if rows[0][0] is not None and int(rows[0][0]) <= ts:
        return False
    store.q(
        "UPDATE notice_deadlines SET answered_ts = ? WHERE ref = ? AND answerer = ?",
        ts, ref, answerer,
    )  # fmt: skip
    return True


def unanswered(store: SqlStore, ref: str) -> int:
    rows = store.q(
        "SELECT COUNT(*) FROM notice_deadlines WHERE ref = ? AND answered_ts IS NULL", ref
    )
    return int(rows[0][0])


def deadlines(store: SqlStore, *, only_unanswered: bool = True) -> list[DeadlineRow]:
    where = " WHERE d.answered_ts IS NULL" if only_unanswered else ""
    rows = store.q(f"{_DL_SELECT}{where} ORDER BY d.deadline_ms, d.ref, d.answerer")
    return [_deadline(r) for r in rows]


def deadlines_for(store: SqlStore, ref: str) -> list[DeadlineRow]:
    rows = store.q(f"{_DL_SELECT} WHERE d.ref = ? ORDER BY d.answerer", ref)
    return [_deadline(r) for r in rows]


def overdue(store: SqlStore, now_ms: int) -> list[DeadlineRow]:
    """Unanswered rows past their deadline."""
    rows = store.q(
        f"{_DL_SELECT} WHERE d.answered_ts IS NULL AND d.deadline_ms < ?"
        " ORDER BY d.deadline_ms, d.ref, d.answerer",
        now_ms,
    )
    return [_deadline(r) for r in rows]


# --- escalations ---------------------------------------------------------------------------------
def fired(store: SqlStore, ref: str, answerer: str) -> list[int]:
    """Escalation levels (0-based policy indices) already fired for (ref, answerer)."""
    rows = store.q(
        "SELECT level FROM notice_escalations WHERE ref = ? AND answerer = ?", ref, answerer
    )
    return [int(r[0]) for r in rows]


def add_escalation(
    store: SqlStore, ref: str, answerer: str, level: int, action: str, now_ms: int
) -> None:
    store.q(
        "INSERT INTO notice_escalations (ref, answerer, level, action, fired_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        ref, answerer, level, action, now_ms,
    )  # fmt: skip


def clear_alarms(
    store: SqlStore, kind: str, subject: str, now_ms: int,
    note: str = "every member acknowledged the notice",
) -> int:  # fmt: skip
    """Resolve the open alarms of `kind` about `subject` (kept, marked resolved by the station
    with `note`); returns how many."""
    n = store.q(
        "SELECT COUNT(*) FROM alarms WHERE kind = ? AND subject = ? AND cleared IS NULL",
        kind, subject,
    )[0][0]  # fmt: skip
    store.q(
        "UPDATE alarms SET cleared = ?, cleared_by = 'station', resolution = 'resolved',"
        " note = ? WHERE kind = ? AND subject = ? AND cleared IS NULL",
        now_ms, note, kind, subject,
    )  # fmt: skip
    return int(n)
