"""Check calls: scheduled liveness checks that a person must answer in time.

Schedule rules:
- A schedule is a list of local wall-clock times ("HH:MM") in one IANA time zone, on chosen
  weekdays (Monday = 0), minus listed holidays; e.g. 09:00 and 16:00 Asia/Seoul, Mon–Fri.
- A scheduled local time that does not exist (the spring-forward gap) is shifted forward by the
  gap: 02:30 on the day New York springs forward is called at 03:30 EDT. A local time that occurs
  twice (fall back) is called once, at its first occurrence. Both follow PEP 495 `fold=0`.
- Weekday and holiday tests use the local date of the scheduled time, not of the shifted instant.
- Intervals are half-open on the left: `due_between(s, e)` gives the instants t with s < t <= e,
  so a scheduler that calls it with (last tick, now] never issues a call twice or skips one;
  `next_due(after)` is the first instant t > after.

Book rules (`CheckCallBook`, folded from the transcript in causal order):
- `checkcall.call` {call_id, due_ms, answer_by_ms} issues a call; `checkcall.answer`
  {call_id, by} answers it, at the answer envelope's signed timestamp.
- A call is PENDING until answered or until now > answer_by_ms, then MISSED (an alarm on the calling
  side). An answer with ts <= answer_by_ms is ANSWERED, a later one ANSWERED_LATE; a late answer
  turns a MISSED call into ANSWERED_LATE (the alarm already raised stays in the audit log).
- The same event twice is a no-op (delivery is at least once). A second, different issue of one
  call_id, a second answer, or an answer to an unknown call is a Conflict; the book is unchanged,
  so the first answer stands while the transcript keeps the later envelope as evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.domain.bodies import checked_locally, exact_fields
from parley.errors import Code, Conflict, LocalError, RejectedInput

KIND_CALL = "checkcall.call"
KIND_ANSWER = "checkcall.answer"

MAX_TIMES_PER_DAY = 24
MAX_ANSWER_WITHIN_MS = 24 * 3600 * 1000  # an answer window longer than a day is not a check call
MAX_PERSON_CHARS = 200
MAX_MS = 2**53 - 1  # the largest integer every JSON implementation holds exactly

_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class CheckCallSchedule:
    times: tuple[str, ...]
    tz: str
    weekdays: frozenset[int]
    answer_within_ms: int
    holidays: frozenset[date]

    def __init__(
        self,
        times: list[str] | tuple[str, ...],
        tz: str,
        weekdays: Set[int],
        answer_within_ms: int,
        holidays: Set[date] = frozenset(),
    ) -> None:
        if not 1 <= len(times) <= MAX_TIMES_PER_DAY:
            raise LocalError(Code.INVALID_REQUEST, f"need 1..{MAX_TIMES_PER_DAY} call times")
        for t in times:
            if not isinstance(t, str) or not _TIME.fullmatch(t):
                raise LocalError(Code.INVALID_REQUEST, f"call time {t!r}: expected HH:MM (24 h)")
        if not weekdays or not all(isinstance(d, int) and 0 <= d <= 6 for d in weekdays):
            raise LocalError(Code.INVALID_REQUEST, "weekdays: a non-empty set of 0 (Mon)..6 (Sun)")
        if not 0 < answer_within_ms <= MAX_ANSWER_WITHIN_MS:
            raise LocalError(Code.INVALID_REQUEST, "answer_within_ms must be in (0, 24 h]")
        _zone(tz)  # fail now, at configuration time, not at the first call
        object.__setattr__(self, "times", tuple(sorted(set(times))))
        object.__setattr__(self, "tz", tz)
        object.__setattr__(self, "weekdays", frozenset(weekdays))
        object.__setattr__(self, "answer_within_ms", answer_within_ms)
        object.__setattr__(self, "holidays", frozenset(holidays))

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.tz)

    def calls_on(self, day: date) -> list[int]:
        """The instants (Unix ms) of the calls scheduled on local date `day`, ascending."""
        if day.weekday() not in self.weekdays or day in self.holidays:
            return []
        zone = self.zone
        out = set()  # a set: a gap-shifted 02:30 and a scheduled 03:30 are one call
        for t in self.times:
            hh, mm = int(t[:2]), int(t[3:])
            local = datetime(day.year, day.month, day.day, hh, mm, tzinfo=zone)  # fold=0
            out.add((local - _EPOCH) // _MS)
        return sorted(out)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise LocalError(Code.INVALID_REQUEST, f"unknown time zone {tz!r}") from None


def _local_date(ms: int, zone: ZoneInfo) -> date:
    return (_EPOCH + ms * _MS).astimezone(zone).date()


def _calls_from(schedule: CheckCallSchedule, day: date) -> Iterator[tuple[date, list[int]]]:
    while True:
        yield day, schedule.calls_on(day)
        day += timedelta(days=1)


def due_between(schedule: CheckCallSchedule, start_ms: int, end_ms: int) -> list[int]:
    """Scheduled instants t with start_ms < t <= end_ms, ascending."""
    if end_ms <= start_ms:
        return []
    zone = schedule.zone
    # Start a day early and stop a day late: a shifted local time can cross midnight.
    first = _local_date(start_ms, zone) - timedelta(days=1)
    last = _local_date(end_ms, zone) + timedelta(days=1)
    out: set[int] = set()
    for day, calls in _calls_from(schedule, first):
        if day > last:
            break
        out.update(t for t in calls if start_ms < t <= end_ms)
    return sorted(out)


def next_due(schedule: CheckCallSchedule, after_ms: int) -> int:
    """The first scheduled instant strictly after `after_ms`."""
    zone = schedule.zone
    best: int | None = None
    found_on: date | None = None
    # Every week has a scheduled weekday, and each holiday removes at most one day.
    limit = _local_date(after_ms, zone) + timedelta(days=9 + len(schedule.holidays))
    for day, calls in _calls_from(schedule, _local_date(after_ms, zone) - timedelta(days=1)):
        # Look one day past the first hit, for the same midnight-crossing reason as above.
        if day > limit or (found_on is not None and day > found_on + timedelta(days=1)):
            break
        later = [t for t in calls if t > after_ms]
        if later:
            best = later[0] if best is None else min(best, later[0])
            found_on = found_on or day
    if best is None:
        raise LocalError(Code.INVALID_REQUEST, "the schedule has no call in the coming days")
    return best


def call_id_for(due_ms: int) -> str:
    """A deterministic call id, so a restarted scheduler re-issuing a slot is a no-op."""
    return f"cc-{due_ms}"


# --- bodies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallIssued:
    call_id: str
    due_ms: int
    answer_by_ms: int


@dataclass(frozen=True)
class CallAnswered:
    call_id: str
    by: str
    ts_ms: int  # the answer envelope's signed timestamp


def parse_call(body: object) -> CallIssued:
    """Validate a received `checkcall.call` body; RejectedInput(bad_body) names the field."""
    obj = exact_fields(body, KIND_CALL, {"call_id", "due_ms", "answer_by_ms"})
    call = CallIssued(_call_id(obj), _ms(obj, "due_ms"), _ms(obj, "answer_by_ms"))
    if call.answer_by_ms <= call.due_ms:
        raise RejectedInput(Code.BAD_BODY, f"{KIND_CALL}: answer_by_ms must be after due_ms")
    return call


def parse_answer(body: object, ts_ms: int) -> CallAnswered:
    """Validate a received `checkcall.answer` body; `ts_ms` is its envelope's timestamp."""
    obj = exact_fields(body, KIND_ANSWER, {"call_id", "by"})
    by = obj["by"]
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_PERSON_CHARS:
        raise RejectedInput(Code.BAD_BODY, f"by: the answering person, 1..{MAX_PERSON_CHARS} chars")
    return CallAnswered(_call_id(obj), by, ts_ms)


def call_body(schedule: CheckCallSchedule, due_ms: int) -> dict[str, Any]:
    """The body of the `checkcall.call` envelope for the slot at `due_ms`."""
    body = {
        "call_id": call_id_for(due_ms),
        "due_ms": due_ms,
        "answer_by_ms": due_ms + schedule.answer_within_ms,
    }
    checked_locally(parse_call, body)
    return body


def answer_body(call_id: str, by: str) -> dict[str, Any]:
    """The body of the `checkcall.answer` envelope: person `by` answers call `call_id`."""
    body = {"call_id": call_id, "by": by}
    checked_locally(lambda b: parse_answer(b, 0), body)
    return body


def _call_id(obj: dict[str, Any]) -> str:
    v = obj["call_id"]
    if not isinstance(v, str) or not _CALL_ID.fullmatch(v):
        raise RejectedInput(Code.BAD_BODY, "call_id: 1..64 of A-Z a-z 0-9 . _ : - (letter first)")
    return v


def _ms(obj: dict[str, Any], key: str) -> int:
    v = obj[key]
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_MS:
        raise RejectedInput(Code.BAD_BODY, f"{key}: expected Unix milliseconds")
    return v


# --- the book -----------------------------------------------------------------------------


class CallStatus(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    ANSWERED_LATE = "answered_late"
    MISSED = "missed"


@dataclass
class CallRecord:
    call: CallIssued
    answer: CallAnswered | None = None

    def status(self, now_ms: int) -> CallStatus:
        if self.answer is not None:
            late = self.answer.ts_ms > self.call.answer_by_ms
            return CallStatus.ANSWERED_LATE if late else CallStatus.ANSWERED
        return CallStatus.MISSED if now_ms > self.call.answer_by_ms else CallStatus.PENDING


class CheckCallBook:
    """Check calls of one channel in one direction, folded from issue and answer events."""

    def __init__(self) -> None:
        self.calls: dict[str, CallRecord] = {}

    def apply(self, event: CallIssued | CallAnswered) -> None:
        if isinstance(event, CallIssued):
            known = self.calls.get(event.call_id)
            if known is None:
                self.calls[event.call_id] = CallRecord(event)
            elif known.call != event:
                raise Conflict(Code.CONFLICT, f"call {event.call_id} was issued differently")
            return
        record = self.calls.get(event.call_id)
        if record is None:
            raise Conflict(Code.CONFLICT, f"answer to unknown call {event.call_id}")
        if record.answer is None:
            record.answer = event
        elif record.answer != event:
            raise Conflict(Code.CONFLICT, f"call {event.call_id} is already answered")

    def status(self, call_id: str, now_ms: int) -> CallStatus:
        record = self.calls.get(call_id)
        if record is None:
            raise LocalError(Code.INVALID_REQUEST, f"no call {call_id}")
        return record.status(now_ms)

    def missed(self, now_ms: int) -> list[CallIssued]:
        """Calls past their answer time without an answer, oldest first: alarms to raise."""
        out = [r.call for r in self.calls.values() if r.status(now_ms) is CallStatus.MISSED]
        return sorted(out, key=lambda c: (c.due_ms, c.call_id))

    def pending(self, now_ms: int) -> list[CallIssued]:
        """Calls waiting for an answer within their time, oldest first."""
        out = [r.call for r in self.calls.values() if r.status(now_ms) is CallStatus.PENDING]
        return sorted(out, key=lambda c: (c.due_ms, c.call_id))
