"""Check calls at a station: schedules per channel, calls sent when due, answers by people.

Rules (the pure ones are in domain/checkcalls.py):
- A schedule is this station's configuration for one channel, not transcript content: the station
  that holds it is the caller. Every other member of the channel is expected to answer each call.
- `issue_due` (a scheduled task) sends a `checkcall.call` for every slot in (covered, now] and then
  sets covered = now. A slot whose answer time had already passed when the station got to it (it
  was not running) is skipped and audited, not sent: calling it would report our own outage as
  the other side's silence. A channel that is not open is skipped the same way.
- Call ids are `cc-<due ms>.<8 characters of the caller's station id>`: deterministic, so a
  re-issued slot is the same envelope (idempotency key), and distinct between callers, so an
  answer on a channel with several calling stations names exactly one call.
- An answer is a person's act: `checkcall.answer` carries the user's name in `by`. Answering
  after the answer time is allowed and shows as answered_late.
- The observer records calls and answers from the transcript, sent or received. A contradiction
  from a peer (a second, different call of one id, an answer to an unknown call) leaves the
  record unchanged and is an alarm; the transcript keeps the envelope as evidence. The first
  answer stands.
- Overdue calls of a peer (for "the link is up but nobody answers") are the calls it missed
  after its latest answer: a peer that answers again is no longer silent, whatever it missed
  before.
- The operator's functions take the acting user and check the role table first: setting or
  removing a schedule needs `checkcall.schedule`, calling now `checkcall.call`, answering
  `checkcall.answer`, reading `channel.read`; each also passes `Station.guard` for its channel
  (a back channel's schedule and calls exist only for its named representatives). They answer
  plain data (`schedule_json`, `call_json`) for the adapters to render.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from parley.domain import channels
from parley.domain import checkcalls as cc
from parley.errors import Code, Conflict, Forbidden, LocalError, NotFound, ParleyError
from parley.station import alarms
from parley.station.node import Accepted, Station
from parley.station.roles import Action, authorize
from parley.station.users import User
from parley.store import vigil as db

WORKING_DAYS = (0, 1, 2, 3, 4)
PRECEDENCE = "IMMEDIATE"  # a call must not wait behind routine traffic
# Worst first: the status an outgoing call shows when members differ.
_RANK = {
    cc.CallStatus.MISSED: 0,
    cc.CallStatus.PENDING: 1,
    cc.CallStatus.ANSWERED_LATE: 2,
    cc.CallStatus.ANSWERED: 3,
}


def call_id(due_ms: int, caller: str) -> str:
    return f"{cc.call_id_for(due_ms)}.{caller[2:10]}"


# --- schedules -----------------------------------------------------------------------------


def domain_schedule(row: db.ScheduleRow) -> cc.CheckCallSchedule:
    return cc.CheckCallSchedule(
        row.times, row.tz, set(row.weekdays), row.answer_within_ms,
        {date.fromisoformat(d) for d in row.holidays},
    )  # fmt: skip


def schedules(station: Station, who: User) -> list[dict[str, Any]]:
    """The schedules of the channels `who` may see."""
    authorize(who, Action.CHANNEL_READ)
    visible = {s.channel for s in station.channel_states(who)}
    now = station.clock()
    return [schedule_json(s, now) for s in db.schedules(station.store) if s.channel in visible]


def settable(station: Station, who: User) -> list[channels.ChannelState]:
    """The channels whose schedule `who` may set: those they may see that are not closed."""
    authorize(who, Action.CHECKCALL_SCHEDULE)
    return [s for s in station.channel_states(who) if s.state != "closed"]


def schedule_of(station: Station, who: User, channel: str) -> dict[str, Any] | None:
    """One channel's schedule (None: it has none), if `who` may see the channel."""
    authorize(who, Action.CHANNEL_READ)
    station.guard(channel, who)
    row = db.schedule(station.store, channel)
    return schedule_json(row, station.clock()) if row else None


def set_schedule(
    station: Station,
    channel: str,
    times: list[str],
    tz: str,
    weekdays: list[int],
    answer_within_ms: int,
    holidays: list[str],
    who: User,
) -> dict[str, Any]:
    """Create or replace the channel's schedule; calls start with the first slot after now."""
    authorize(who, Action.CHECKCALL_SCHEDULE)
    state = station.guard(channel, who)
    if station.id not in state.members:
        raise Forbidden(Code.NOT_A_MEMBER, "this station is not a member of that channel")
    try:
        days = {date.fromisoformat(d) for d in holidays}
    except ValueError:
        raise LocalError(Code.INVALID_REQUEST, "holidays: expected dates as YYYY-MM-DD") from None
    schedule = cc.CheckCallSchedule(times, tz, set(weekdays), answer_within_ms, days)
    now = station.clock()
    old = db.schedule(station.store, channel)
    row = db.ScheduleRow(
        channel, list(schedule.times), schedule.tz, sorted(schedule.weekdays),
        schedule.answer_within_ms, sorted(d.isoformat() for d in schedule.holidays),
        max(now, old.covered) if old else now, now, who.name,
    )  # fmt: skip
    with station.store.tx():
        db.put_schedule(station.store, row)
        station.store.audit(who.name, "checkcall.schedule", schedule_json(row, now), now)
    return schedule_json(row, now)


def remove_schedule(station: Station, channel: str, who: User) -> bool:
    authorize(who, Action.CHECKCALL_SCHEDULE)
    station.guard(channel, who)
    now = station.clock()
    with station.store.tx():
        found = db.delete_schedule(station.store, channel)
        if found:
            station.store.audit(who.name, "checkcall.unschedule", {"channel": channel}, now)
    return found


def schedule_json(row: db.ScheduleRow, now_ms: int) -> dict[str, Any]:
    try:
        upcoming: int | None = cc.next_due(domain_schedule(row), max(row.covered, now_ms))
    except LocalError:
        upcoming = None
    return {
        "channel": row.channel,
        "times": row.times,
        "tz": row.tz,
        "weekdays": row.weekdays,
        "answer_within_ms": row.answer_within_ms,
        "holidays": row.holidays,
        "next_due_ms": upcoming,
        "updated_ms": row.updated,
        "updated_by": row.updated_by,
    }


# --- calling -------------------------------------------------------------------------------


def issue_due(station: Station, now_ms: int) -> None:
    """Scheduled task: send the calls that fell due since the last run (see module rules)."""
    for row in db.schedules(station.store):
        try:
            _issue_schedule(station, row, now_ms)
        except ParleyError as exc:
            # One channel's trouble must not stop the others' calls, nor repeat every second.
            db.set_covered(station.store, row.channel, now_ms)
            station.alarm(
                "checkcall", "warning", row.channel,
                f"check call on channel {row.channel} not sent: {exc.message}",
            )  # fmt: skip


def _issue_schedule(station: Station, row: db.ScheduleRow, now_ms: int) -> None:
    due = cc.due_between(domain_schedule(row), row.covered, now_ms)
    if not due:
        return
    state = station.channel_state(row.channel)
    for due_ms in due:
        answer_by = due_ms + row.answer_within_ms
        if not state.is_open or now_ms > answer_by:
            why = f"the channel is {state.state}" if not state.is_open else "its answer time passed"
            station.store.audit(
                "station", "checkcall.skipped",
                {"channel": row.channel, "due_ms": due_ms, "reason": why}, now_ms,
            )  # fmt: skip
            continue
        _send_call(station, row.channel, due_ms, answer_by, "station")
    db.set_covered(station.store, row.channel, now_ms)


def call_now(station: Station, channel: str, answer_within_ms: int, who: User) -> dict[str, Any]:
    """An unscheduled call by `who`, due now (a test of the line, or a call an operator
    decides on)."""
    authorize(who, Action.CHECKCALL_CALL)
    station.guard(channel, who)
    if not 0 < answer_within_ms <= cc.MAX_ANSWER_WITHIN_MS:
        raise LocalError(Code.INVALID_REQUEST, "answer_within_ms must be in (0, 24 h]")
    now = station.clock()
    return _answered_json(
        station, _send_call(station, channel, now, now + answer_within_ms, who.name)
    )


def _answered_json(station: Station, row: db.CallRow) -> dict[str, Any]:
    return call_json(station, row, db.answers_of(station.store, row), station.clock())


def _send_call(
    station: Station, channel: str, due_ms: int, answer_by_ms: int, actor: str
) -> db.CallRow:
    cid = call_id(due_ms, station.id)
    fields = {"call_id": cid, "due_ms": due_ms, "answer_by_ms": answer_by_ms}
    cc.parse_call(fields)
    station.send(
        channel, {"type": cc.KIND_CALL, **fields}, PRECEDENCE, f"checkcall:{channel}:{cid}", actor
    )
    row = db.get_call(station.store, channel, station.id, cid)
    assert row is not None  # the observer recorded it in the send's transaction
    return row


def answer(station: Station, channel: str, cid: str, user: User) -> dict[str, Any]:
    """`user` answers another station's call `cid` on `channel`."""
    authorize(user, Action.CHECKCALL_ANSWER)
    station.guard(channel, user)
    theirs = [c for c in db.calls_named(station.store, channel, cid) if c.caller != station.id]
    if not theirs:
        raise NotFound(Code.NOT_FOUND, f"no check call {cid} from another station on {channel}")
    call = theirs[0]
    mine = [a for a in db.answers_of(station.store, call) if a.answerer == station.id]
    if not mine:
        raise Conflict(Code.CONFLICT, f"this station is not asked to answer check call {cid}")
    if mine[0].ts is not None:
        raise Conflict(Code.CONFLICT, f"check call {cid} was already answered by {mine[0].by_name}")
    fields = cc.answer_body(cid, user.name)
    station.send(
        channel, {"type": cc.KIND_ANSWER, **fields}, PRECEDENCE,
        f"checkcall-answer:{channel}:{cid}", user.name,
    )  # fmt: skip
    return _answered_json(station, call)


# --- the transcript ------------------------------------------------------------------------


def observe(station: Station, acc: Accepted) -> None:
    """Record calls and answers as they are stored (inside that transaction; never raises for a
    peer's envelope: it is stored already, and the record ignores what contradicts it)."""
    kind = acc.body.get("type")
    if kind not in (cc.KIND_CALL, cc.KIND_ANSWER):
        return
    fields = {k: v for k, v in acc.body.items() if k != "type"}
    if kind == cc.KIND_CALL:
        issued = cc.parse_call(fields)
        row = db.CallRow(
            acc.channel, acc.sender, issued.call_id, issued.due_ms, issued.answer_by_ms,
            acc.hash, acc.ts,
        )  # fmt: skip
        members = station.channel_state(acc.channel).members
        known = db.get_call(station.store, acc.channel, acc.sender, issued.call_id)
        if known is None:
            db.add_call(station.store, row, [m for m in members if m != acc.sender])
        elif (known.due_ms, known.answer_by_ms) != (row.due_ms, row.answer_by_ms):
            station.alarm(
                "checkcall", "warning", acc.sender,
                f"{station.peer_name(acc.sender)} issued check call {issued.call_id} a second "
                "time, differently; the first stands",
            )  # fmt: skip
        return
    answered = cc.parse_answer(fields, acc.ts)
    calls = [
        c
        for c in db.calls_named(station.store, acc.channel, answered.call_id)
        if c.caller != acc.sender
    ]
    if not calls:
        station.alarm(
            "checkcall", "warning", acc.sender,
            f"{station.peer_name(acc.sender)} answered check call {answered.call_id}, "
            "which nobody issued",
        )  # fmt: skip
        return
    call = calls[0]
    before = db.answer(station.store, call, acc.sender, answered.by, acc.ts, acc.hash)
    if before is None or before.ts is not None or call.caller != station.id:
        return
    if acc.ts > call.answer_by_ms:
        late_s = (acc.ts - call.answer_by_ms) // 1000
        message = (
            f"{answered.by} ({station.peer_name(acc.sender)}) answered check call "
            f"{call.call_id} {late_s} s after its answer time"
        )
        ref = alarms.call_ref(acc.channel, call.caller, call.call_id, acc.sender)
        alarms.resolve(station, ["checkcall_missed"], ref, message)
        alarms.settled(station, "checkcall_late", "info", acc.sender, message, ref, "answered")


# --- reading -------------------------------------------------------------------------------


def status_of(call: db.CallRow, ans: db.AnswerRow, now_ms: int) -> cc.CallStatus:
    issued = cc.CallIssued(call.call_id, call.due_ms, call.answer_by_ms)
    got = cc.CallAnswered(call.call_id, ans.by_name or "", ans.ts) if ans.ts is not None else None
    return cc.CallRecord(issued, got).status(now_ms)


def call_json(
    station: Station, call: db.CallRow, answers: list[db.AnswerRow], now_ms: int
) -> dict[str, Any]:
    outgoing = call.caller == station.id
    statuses = {a.answerer: status_of(call, a, now_ms) for a in answers}
    views = [
        {
            "station": a.answerer,
            "name": station.peer_name(a.answerer),
            "status": str(statuses[a.answerer]),
            "by": a.by_name,
            "answered_ms": a.ts,
            "ref": a.ref,
        }
        for a in answers
    ]
    if outgoing:
        worst = min(statuses.values(), key=_RANK.__getitem__, default=cc.CallStatus.ANSWERED)
        status = str(worst)
    else:
        mine = statuses.get(station.id)
        status = str(mine) if mine is not None else "not_asked"
    return {
        "channel": call.channel,
        "call_id": call.call_id,
        "caller": call.caller,
        "caller_name": station.peer_name(call.caller),
        "direction": "outgoing" if outgoing else "incoming",
        "due_ms": call.due_ms,
        "answer_by_ms": call.answer_by_ms,
        "ts": call.ts,
        "ref": call.ref,
        "status": status,
        "answers": views,
    }


def list_calls(
    station: Station,
    user: User,
    channel: str | None = None,
    status: str | None = None,
    direction: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    authorize(user, Action.CHANNEL_READ)
    if channel is not None:
        station.guard(channel, user)
        chans = [channel]
    else:
        chans = [s.channel for s in station.channel_states(user)]
    now = station.clock()
    caller = station.id if direction == "outgoing" else None
    not_caller = station.id if direction == "incoming" else None
    rows = db.calls(station.store, chans, caller=caller, not_caller=not_caller, limit=limit)
    out = [call_json(station, c, a, now) for c, a in rows]
    return [c for c in out if status is None or c["status"] == status]


def overdue(station: Station, peer: str, now_ms: int) -> int:
    """Our calls `peer` missed since its latest answer (see module rules)."""
    count = 0
    for call, ans in db.recent_for(station.store, station.id, peer):
        st = status_of(call, ans, now_ms)
        if st in (cc.CallStatus.ANSWERED, cc.CallStatus.ANSWERED_LATE):
            break
        if st is cc.CallStatus.MISSED:
            count += 1
    return count


def missed_unalarmed(station: Station, now_ms: int) -> list[tuple[db.CallRow, db.AnswerRow]]:
    """Our calls whose answer time passed without an answer and without an alarm yet."""
    return db.unanswered_past(station.store, station.id, now_ms)
