"""What the station's vigil keeps: link health and its changes, check-call schedules, the calls
issued and answered on each channel, and a view of crisis bodies for incident threads.

Rules:
- `link_health` is this station's judgement of each link (up / degraded / down) and
  `link_events` every change of it: local observations, not transcript content.
- `checkcall_answers` has one row per (call, member expected to answer), created with the call;
  its answer columns stay NULL until that member's answer arrives, and `missed_alarmed` records
  that the missed-call alarm was raised, so it is raised once.
- Calls and answers are recorded from the transcript (observers); the first answer stands.
Queries use the SQL subset SQLite and PostgreSQL share (see base.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.store.base import _ENV_COLS, BodyRow, EnvelopeRow, SqlStore, _env

# --- link health ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthRow:
    peer: str
    state: str
    since: int
    reason: str


@dataclass(frozen=True)
class LinkEventRow:
    id: int
    peer: str
    at_ms: int
    old: str
    new: str
    reason: str


def health(store: SqlStore, peer: str) -> HealthRow | None:
    rows = store.q("SELECT peer, state, since, reason FROM link_health WHERE peer = ?", peer)
    return HealthRow(rows[0][0], rows[0][1], int(rows[0][2]), rows[0][3]) if rows else None


def set_health(store: SqlStore, row: HealthRow) -> None:
    with store.tx():
        store.q("DELETE FROM link_health WHERE peer = ?", row.peer)
        store.q(
            "INSERT INTO link_health (peer, state, since, reason) VALUES (?, ?, ?, ?)",
            row.peer, row.state, row.since, row.reason,
        )  # fmt: skip


def add_link_event(store: SqlStore, peer: str, at_ms: int, old: str, new: str, reason: str) -> None:
    with store.tx():
        store.q(
            "INSERT INTO link_events (peer, at_ms, old, new, reason) VALUES (?, ?, ?, ?, ?)",
            peer, at_ms, old, new, reason,
        )  # fmt: skip


def link_events(
    store: SqlStore, peers: list[str] | None = None, since_ms: int = 0, limit: int = 1000
) -> list[LinkEventRow]:
    """Changes at or after `since_ms`, oldest first; only those of `peers` if given."""
    sql = "SELECT id, peer, at_ms, old, new, reason FROM link_events WHERE at_ms >= ?"
    params: list[object] = [since_ms]
    if peers is not None:
        if not peers:
            return []
        sql += f" AND peer IN ({', '.join('?' for _ in peers)})"
        params += peers
    # The newest `limit`, returned oldest first.
    rows = store.q(f"{sql} ORDER BY at_ms DESC, id DESC LIMIT ?", *params, limit)
    return [LinkEventRow(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5]) for r in reversed(rows)]


# --- check-call schedules ------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleRow:
    channel: str
    times: list[str]
    tz: str
    weekdays: list[int]
    answer_within_ms: int
    holidays: list[str]  # ISO dates
    covered: int  # slots up to this instant have been issued or skipped
    updated: int
    updated_by: str


_SCHEDULE_COLS = (
    "channel, times, tz, weekdays, answer_within_ms, holidays, covered, updated, updated_by"
)


def _schedule(r: tuple[Any, ...]) -> ScheduleRow:
    return ScheduleRow(
        r[0], json.loads(r[1]), r[2], json.loads(r[3]), int(r[4]), json.loads(r[5]), int(r[6]),
        int(r[7]), r[8],
    )  # fmt: skip


def put_schedule(store: SqlStore, row: ScheduleRow) -> None:
    with store.tx():
        store.q("DELETE FROM checkcall_schedules WHERE channel = ?", row.channel)
        store.q(
            f"INSERT INTO checkcall_schedules ({_SCHEDULE_COLS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row.channel, json.dumps(row.times), row.tz, json.dumps(row.weekdays),
            row.answer_within_ms, json.dumps(row.holidays), row.covered, row.updated,
            row.updated_by,
        )  # fmt: skip


def schedule(store: SqlStore, channel: str) -> ScheduleRow | None:
    rows = store.q(f"SELECT {_SCHEDULE_COLS} FROM checkcall_schedules WHERE channel = ?", channel)
    return _schedule(rows[0]) if rows else None


def schedules(store: SqlStore) -> list[ScheduleRow]:
    rows = store.q(f"SELECT {_SCHEDULE_COLS} FROM checkcall_schedules ORDER BY channel")
    return [_schedule(r) for r in rows]


def delete_schedule(store: SqlStore, channel: str) -> bool:
    with store.tx():
        found = store.q("SELECT 1 FROM checkcall_schedules WHERE channel = ?", channel)
        store.q("DELETE FROM checkcall_schedules WHERE channel = ?", channel)
    return bool(found)


def set_covered(store: SqlStore, channel: str, covered: int) -> None:
    with store.tx():
        store.q("UPDATE checkcall_schedules SET covered = ? WHERE channel = ?", covered, channel)


# --- calls and answers ---------------------------------------------------------------------


@dataclass(frozen=True)
class CallRow:
    channel: str
    caller: str
    call_id: str
    due_ms: int
    answer_by_ms: int
    ref: str  # the call envelope's hash (base64url)
    ts: int  # the call envelope's timestamp


@dataclass(frozen=True)
class AnswerRow:
    channel: str
    caller: str
    call_id: str
    answerer: str
    by_name: str | None  # None until answered
    ts: int | None
    ref: str | None
    missed_alarmed: int | None


_CALL_COLS = "c.channel, c.caller, c.call_id, c.due_ms, c.answer_by_ms, c.ref, c.ts"
_ANSWER_COLS = (
    "a.channel, a.caller, a.call_id, a.answerer, a.by_name, a.ts, a.ref, a.missed_alarmed"
)
_JOIN = (
    " FROM checkcalls c JOIN checkcall_answers a ON a.channel = c.channel"
    " AND a.caller = c.caller AND a.call_id = c.call_id"
)


def _call(r: tuple[Any, ...]) -> CallRow:
    return CallRow(r[0], r[1], r[2], int(r[3]), int(r[4]), r[5], int(r[6]))


def _answer(r: tuple[Any, ...]) -> AnswerRow:
    return AnswerRow(
        r[0], r[1], r[2], r[3], r[4], None if r[5] is None else int(r[5]), r[6],
        None if r[7] is None else int(r[7]),
    )  # fmt: skip


def add_call(store: SqlStore, call: CallRow, answerers: list[str]) -> bool:
    """Record an issued call and who must answer it; False if that call is already recorded."""
    with store.tx():
        if get_call(store, call.channel, call.caller, call.call_id) is not None:
            return False
        store.q(
            "INSERT INTO checkcalls (channel, caller, call_id, due_ms, answer_by_ms, ref, ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            call.channel, call.caller, call.call_id, call.due_ms, call.answer_by_ms, call.ref,
            call.ts,
        )  # fmt: skip
        for who in answerers:
            store.q(
                "INSERT INTO checkcall_answers (channel, caller, call_id, answerer)"
                " VALUES (?, ?, ?, ?)",
                call.channel, call.caller, call.call_id, who,
            )  # fmt: skip
    return True


def get_call(store: SqlStore, channel: str, caller: str, call_id: str) -> CallRow | None:
    rows = store.q(
        f"SELECT {_CALL_COLS} FROM checkcalls c"
        " WHERE c.channel = ? AND c.caller = ? AND c.call_id = ?",
        channel, caller, call_id,
    )  # fmt: skip
    return _call(rows[0]) if rows else None


def calls_named(store: SqlStore, channel: str, call_id: str) -> list[CallRow]:
    """Every call of that id on the channel, whoever issued it."""
    rows = store.q(
        f"SELECT {_CALL_COLS} FROM checkcalls c WHERE c.channel = ? AND c.call_id = ?"
        " ORDER BY c.caller",
        channel, call_id,
    )  # fmt: skip
    return [_call(r) for r in rows]


def answer(
    store: SqlStore, call: CallRow, answerer: str, by_name: str, ts: int, ref: str
) -> AnswerRow | None:
    """Record `answerer`'s answer; returns the row as it was before (None: not expected to
    answer). An already answered row is left as it is: the first answer stands."""
    with store.tx():
        rows = store.q(
            f"SELECT {_ANSWER_COLS} FROM checkcall_answers a"
            " WHERE a.channel = ? AND a.caller = ? AND a.call_id = ? AND a.answerer = ?",
            call.channel, call.caller, call.call_id, answerer,
        )  # fmt: skip
        if not rows:
            return None
        store.q(
            "UPDATE checkcall_answers SET by_name = ?, ts = ?, ref = ?"
            " WHERE channel = ? AND caller = ? AND call_id = ? AND answerer = ? AND ts IS NULL",
            by_name, ts, ref, call.channel, call.caller, call.call_id, answerer,
        )  # fmt: skip
        return _answer(rows[0])


def calls(
    store: SqlStore,
    channels: list[str],
    *,
    caller: str | None = None,
    not_caller: str | None = None,
    limit: int = 200,
) -> list[tuple[CallRow, list[AnswerRow]]]:
    """The newest `limit` calls on `channels` (optionally only by, or not by, one station), each
    with its expected answerers; oldest first."""
    if not channels:
        return []
    marks = ", ".join("?" for _ in channels)
    sql = f"SELECT {_CALL_COLS} FROM checkcalls c WHERE c.channel IN ({marks})"
    params: list[object] = list(channels)
    if caller is not None:
        sql += " AND c.caller = ?"
        params.append(caller)
    if not_caller is not None:
        sql += " AND c.caller <> ?"
        params.append(not_caller)
    rows = store.q(f"{sql} ORDER BY c.due_ms DESC, c.call_id DESC LIMIT ?", *params, limit)
    found = [_call(r) for r in reversed(rows)]
    return [(c, answers_of(store, c)) for c in found]


def answers_of(store: SqlStore, call: CallRow) -> list[AnswerRow]:
    rows = store.q(
        f"SELECT {_ANSWER_COLS} FROM checkcall_answers a"
        " WHERE a.channel = ? AND a.caller = ? AND a.call_id = ? ORDER BY a.answerer",
        call.channel, call.caller, call.call_id,
    )  # fmt: skip
    return [_answer(r) for r in rows]


def unanswered_past(store: SqlStore, caller: str, now_ms: int) -> list[tuple[CallRow, AnswerRow]]:
    """(call, expected answer) pairs of `caller`'s calls whose answer time has passed without an
    answer and without a missed-call alarm yet, oldest first."""
    rows = store.q(
        f"SELECT {_CALL_COLS}, {_ANSWER_COLS}{_JOIN}"
        " WHERE c.caller = ? AND c.answer_by_ms < ? AND a.ts IS NULL AND a.missed_alarmed IS NULL"
        " ORDER BY c.due_ms, c.call_id, a.answerer",
        caller, now_ms,
    )  # fmt: skip
    return [(_call(r[:7]), _answer(r[7:])) for r in rows]


def mark_missed_alarmed(store: SqlStore, call: CallRow, answerer: str, now_ms: int) -> None:
    with store.tx():
        store.q(
            "UPDATE checkcall_answers SET missed_alarmed = ?"
            " WHERE channel = ? AND caller = ? AND call_id = ? AND answerer = ?",
            now_ms, call.channel, call.caller, call.call_id, answerer,
        )  # fmt: skip


def recent_for(
    store: SqlStore, caller: str, answerer: str, limit: int = 100
) -> list[tuple[CallRow, AnswerRow]]:
    """`caller`'s latest calls that `answerer` was to answer, newest first."""
    rows = store.q(
        f"SELECT {_CALL_COLS}, {_ANSWER_COLS}{_JOIN}"
        " WHERE c.caller = ? AND a.answerer = ? ORDER BY c.due_ms DESC, c.call_id DESC LIMIT ?",
        caller, answerer, limit,
    )  # fmt: skip
    return [(_call(r[:7]), _answer(r[7:])) for r in rows]


# --- transcript views for incident threads -------------------------------------------------


def typed_events(
    store: SqlStore, types: list[str], channel: str | None = None
) -> list[tuple[EnvelopeRow, BodyRow]]:
    """Envelopes whose body is of one of `types` (on one channel, if given), in stored order,
    which is causal order: a station applies each envelope after everything it names. Bodies
    as stored (unchecked: the station checks them)."""
    cols = ", ".join("e." + c for c in _ENV_COLS.split(", "))
    # Few bodies are of these types: start from them (CROSS JOIN fixes SQLite's join order).
    sql = (
        f"SELECT {cols}, b.body, b.salt, b.type FROM bodies b CROSS JOIN envelopes e"
        " WHERE e.hash = b.hash"
        f" AND b.type IN ({', '.join('?' for _ in types)})"
    )
    params: list[object] = list(types)
    if channel is not None:
        sql += " AND e.channel = ?"
        params.append(channel)
    rows = store.q(f"{sql} ORDER BY e.id", *params)
    return [(_env(r[:9]), BodyRow(str(r[9]), bytes(r[10]), str(r[11]))) for r in rows]


def event(store: SqlStore, h: bytes) -> tuple[EnvelopeRow, BodyRow] | None:
    """One envelope and its stored body by hash (unchecked)."""
    env = store.envelope_by_hash(h)
    body = store.body(h) if env is not None else None
    return (env, body) if env is not None and body is not None else None
