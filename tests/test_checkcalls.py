"""Check-call schedules across time zones and DST, bodies, and the book of calls and answers."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.domain.checkcalls import (
    CallAnswered,
    CallIssued,
    CallStatus,
    CheckCallBook,
    CheckCallSchedule,
    answer_body,
    call_body,
    call_id_for,
    due_between,
    next_due,
    parse_answer,
    parse_call,
)
from parley.errors import Code, Conflict, LocalError, RejectedInput

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
MIN = 60_000
WORKING_DAYS = {0, 1, 2, 3, 4}
KOREA = CheckCallSchedule(["16:00", "09:00"], "Asia/Seoul", WORKING_DAYS, 10 * MIN)


def ms(zone: ZoneInfo, y: int, mo: int, d: int, hh: int, mm: int, fold: int = 0) -> int:
    return int(datetime(y, mo, d, hh, mm, tzinfo=zone, fold=fold).timestamp() * 1000)


def local(zone: ZoneInfo, t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, zone)


# --- schedule -----------------------------------------------------------------------------


def test_schedule_is_normalised() -> None:
    assert KOREA.times == ("09:00", "16:00")
    assert KOREA.weekdays == frozenset(WORKING_DAYS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"times": []},
        {"times": ["9:00"]},
        {"times": ["24:00"]},
        {"times": ["09:60"]},
        {"times": ["09:00:00"]},
        {"weekdays": set()},
        {"weekdays": {7}},
        {"tz": "Mars/Olympus_Mons"},
        {"tz": "../etc/passwd"},
        {"answer_within_ms": 0},
        {"answer_within_ms": 25 * 3600 * 1000},
    ],
)
def test_schedule_refuses_bad_configuration(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "times": ["09:00"],
        "tz": "Asia/Seoul",
        "weekdays": WORKING_DAYS,
        "answer_within_ms": MIN,
    }
    args.update(kwargs)
    with pytest.raises(LocalError) as err:
        CheckCallSchedule(**args)  # type: ignore[arg-type]
    assert err.value.code is Code.INVALID_REQUEST


def test_seoul_calls_at_nine_and_four_on_working_days() -> None:
    friday_evening = ms(SEOUL, 2024, 3, 8, 17, 0)
    monday_nine = ms(SEOUL, 2024, 3, 11, 9, 0)
    assert next_due(KOREA, friday_evening) == monday_nine
    assert next_due(KOREA, monday_nine - 1) == monday_nine
    assert next_due(KOREA, monday_nine) == ms(SEOUL, 2024, 3, 11, 16, 0)
    week = due_between(KOREA, friday_evening, friday_evening + 7 * 86_400_000)
    assert [(local(SEOUL, t).weekday(), local(SEOUL, t).hour) for t in week] == [
        (d, h) for d in range(5) for h in (9, 16)
    ]


def test_holidays_are_skipped() -> None:
    schedule = CheckCallSchedule(
        ["09:00"], "Asia/Seoul", WORKING_DAYS, MIN, holidays={date(2024, 3, 1)}
    )
    thursday_ten = ms(SEOUL, 2024, 2, 29, 10, 0)
    assert next_due(schedule, thursday_ten) == ms(SEOUL, 2024, 3, 4, 9, 0)


def test_intervals_are_open_on_the_left_and_closed_on_the_right() -> None:
    nine = ms(SEOUL, 2024, 3, 11, 9, 0)
    assert due_between(KOREA, nine - 1, nine) == [nine]
    assert due_between(KOREA, nine, nine + 1) == []
    assert due_between(KOREA, nine, nine - 10) == []


def test_new_york_spring_forward_gap_shifts_the_call_forward() -> None:
    schedule = CheckCallSchedule(["02:30", "09:00"], "America/New_York", set(range(7)), MIN)
    calls = schedule.calls_on(date(2024, 3, 10))  # 02:00 EST → 03:00 EDT
    assert [local(NEW_YORK, t).strftime("%H:%M %Z") for t in calls] == ["03:30 EDT", "09:00 EDT"]
    assert calls[1] - calls[0] == (5 * 60 + 30) * MIN  # 09:00 EDT is 5.5 real hours later


def test_a_shifted_call_and_a_scheduled_one_at_the_same_instant_are_one_call() -> None:
    schedule = CheckCallSchedule(["02:30", "03:30"], "America/New_York", set(range(7)), MIN)
    assert len(schedule.calls_on(date(2024, 3, 10))) == 1
    assert len(schedule.calls_on(date(2024, 3, 11))) == 2


def test_new_york_fall_back_calls_a_repeated_time_once_at_its_first_occurrence() -> None:
    schedule = CheckCallSchedule(["01:30"], "America/New_York", set(range(7)), MIN)
    start = ms(NEW_YORK, 2024, 11, 2, 12, 0)
    calls = due_between(schedule, start, start + 86_400_000)
    assert calls == [ms(NEW_YORK, 2024, 11, 3, 1, 30, fold=0)]
    assert local(NEW_YORK, calls[0]).strftime("%Z") == "EDT"


def test_across_dst_the_local_time_stays_and_the_utc_time_moves() -> None:
    schedule = CheckCallSchedule(["09:00"], "America/New_York", set(range(7)), MIN)
    before = next_due(schedule, ms(NEW_YORK, 2024, 3, 9, 8, 0))
    after = next_due(schedule, before)
    assert after - before == 23 * 60 * MIN  # the night of 10 March is one hour short
    assert local(NEW_YORK, before).hour == local(NEW_YORK, after).hour == 9


def test_seoul_has_no_dst_so_days_are_always_24_hours() -> None:
    schedule = CheckCallSchedule(["09:00"], "Asia/Seoul", set(range(7)), MIN)
    start = ms(SEOUL, 2024, 1, 1, 0, 0)
    calls = due_between(schedule, start, start + 366 * 86_400_000)
    assert len(calls) == 366
    assert {b - a for a, b in pairwise(calls)} == {86_400_000}


ZONES = ["America/New_York", "Asia/Seoul", "Europe/London", "Australia/Lord_Howe"]
_times = st.lists(
    st.builds(
        lambda h, m: f"{h:02d}:{m:02d}",
        st.integers(0, 23),
        st.sampled_from([0, 1, 15, 30, 45, 59]),
    ),
    min_size=1,
    max_size=4,
)
_schedules = st.builds(
    CheckCallSchedule,
    times=_times,
    tz=st.sampled_from(ZONES),
    weekdays=st.sets(st.integers(0, 6), min_size=1),
    answer_within_ms=st.just(MIN),
)
_instants = st.integers(
    min_value=ms(SEOUL, 2000, 1, 1, 0, 0), max_value=ms(SEOUL, 2040, 1, 1, 0, 0)
)


def _is_scheduled(schedule: CheckCallSchedule, t: int) -> bool:
    day = local(schedule.zone, t).date()
    return any(t in schedule.calls_on(day + timedelta(days=k)) for k in (-1, 0, 1))


@settings(max_examples=300)
@given(_schedules, _instants)
def test_next_due_is_the_first_scheduled_instant_after(
    schedule: CheckCallSchedule, after: int
) -> None:
    t = next_due(schedule, after)
    assert t > after
    assert _is_scheduled(schedule, t)
    # Nothing scheduled was skipped in between.
    assert due_between(schedule, after, t) == [t]
    # Unless shifted by a DST gap, the call falls on a scheduled local time and weekday.
    when = local(schedule.zone, t)
    if when.strftime("%H:%M") in schedule.times:
        assert when.weekday() in schedule.weekdays


@settings(max_examples=100)
@given(_schedules, _instants, st.integers(0, 20 * 86_400_000))
def test_due_between_is_next_due_iterated(
    schedule: CheckCallSchedule, start: int, span: int
) -> None:
    expected = []
    t = start
    while (t := next_due(schedule, t)) <= start + span:
        expected.append(t)
    assert due_between(schedule, start, start + span) == expected


def test_seoul_calls_are_always_on_scheduled_local_time_and_weekday() -> None:
    start = ms(SEOUL, 2024, 1, 1, 0, 0)
    for t in due_between(KOREA, start, start + 60 * 86_400_000):
        when = local(SEOUL, t)
        assert when.strftime("%H:%M") in KOREA.times and when.weekday() in WORKING_DAYS


# --- bodies -------------------------------------------------------------------------------


def test_call_body_round_trips() -> None:
    due = ms(SEOUL, 2024, 3, 11, 9, 0)
    body = call_body(KOREA, due)
    assert body == {"call_id": call_id_for(due), "due_ms": due, "answer_by_ms": due + 10 * MIN}
    assert parse_call(body) == CallIssued(call_id_for(due), due, due + 10 * MIN)


def test_answer_body_round_trips() -> None:
    body = answer_body("cc-1", "Duty officer Kim")
    assert parse_answer(body, 42) == CallAnswered("cc-1", "Duty officer Kim", 42)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"call_id": "cc-1", "due_ms": 1},
        {"call_id": "cc-1", "due_ms": 1, "answer_by_ms": 2, "extra": 0},
        {"call_id": "", "due_ms": 1, "answer_by_ms": 2},
        {"call_id": "-cc", "due_ms": 1, "answer_by_ms": 2},
        {"call_id": "x" * 65, "due_ms": 1, "answer_by_ms": 2},
        {"call_id": "cc 1", "due_ms": 1, "answer_by_ms": 2},
        {"call_id": "cc-1", "due_ms": True, "answer_by_ms": 2},
        {"call_id": "cc-1", "due_ms": -1, "answer_by_ms": 2},
        {"call_id": "cc-1", "due_ms": "1", "answer_by_ms": 2},
        {"call_id": "cc-1", "due_ms": 2, "answer_by_ms": 2},
        {"call_id": "cc-1", "due_ms": 1, "answer_by_ms": 2**53},
    ],
)
def test_bad_call_bodies_are_rejected(body: object) -> None:
    with pytest.raises(RejectedInput) as err:
        parse_call(body)
    assert err.value.code is Code.BAD_BODY


@pytest.mark.parametrize(
    "body",
    [
        {"call_id": "cc-1"},
        {"call_id": "cc-1", "by": ""},
        {"call_id": "cc-1", "by": "   "},
        {"call_id": "cc-1", "by": "x" * 201},
        {"call_id": "cc-1", "by": 7},
        {"call_id": "cc-1", "by": "Kim", "ts": 5},
    ],
)
def test_bad_answer_bodies_are_rejected(body: object) -> None:
    with pytest.raises(RejectedInput) as err:
        parse_answer(body, 0)
    assert err.value.code is Code.BAD_BODY


def test_building_a_bad_answer_is_a_local_error() -> None:
    with pytest.raises(LocalError) as err:
        answer_body("cc-1", "")
    assert err.value.code is Code.INVALID_REQUEST


# --- the book -----------------------------------------------------------------------------

CALL = CallIssued("cc-1", due_ms=1_000, answer_by_ms=2_000)


def book_with_call() -> CheckCallBook:
    book = CheckCallBook()
    book.apply(CALL)
    return book


def test_a_call_is_pending_then_missed_after_its_answer_time() -> None:
    book = book_with_call()
    assert book.status("cc-1", 1_500) is CallStatus.PENDING
    assert book.status("cc-1", 2_000) is CallStatus.PENDING  # answer_by itself is still in time
    assert book.pending(2_000) == [CALL]
    assert book.missed(2_000) == []
    assert book.status("cc-1", 2_001) is CallStatus.MISSED
    assert book.missed(2_001) == [CALL]


def test_an_answer_in_time_and_a_late_one() -> None:
    book = book_with_call()
    book.apply(CallAnswered("cc-1", "Kim", 2_000))
    assert book.status("cc-1", 10**9) is CallStatus.ANSWERED
    late = book_with_call()
    assert late.missed(3_000) == [CALL]
    late.apply(CallAnswered("cc-1", "Kim", 2_500))
    assert late.status("cc-1", 3_000) is CallStatus.ANSWERED_LATE
    assert late.missed(3_000) == []


def test_repeated_events_are_no_ops() -> None:
    book = book_with_call()
    book.apply(CALL)
    answer = CallAnswered("cc-1", "Kim", 1_500)
    book.apply(answer)
    book.apply(answer)
    assert book.calls["cc-1"].answer == answer


def test_contradictions_are_conflicts_and_the_first_answer_stands() -> None:
    book = book_with_call()
    with pytest.raises(Conflict):
        book.apply(CallIssued("cc-1", 1_000, 9_000))
    with pytest.raises(Conflict):
        book.apply(CallAnswered("cc-404", "Kim", 1_500))
    book.apply(CallAnswered("cc-1", "Kim", 1_500))
    with pytest.raises(Conflict) as err:
        book.apply(CallAnswered("cc-1", "Lee", 1_600))
    assert err.value.code is Code.CONFLICT
    answer = book.calls["cc-1"].answer
    assert answer is not None and answer.by == "Kim"


def test_missed_lists_calls_oldest_first_for_alarms() -> None:
    book = CheckCallBook()
    for due in (5_000, 1_000, 3_000):
        book.apply(parse_call(call_body(KOREA, due)))
    book.apply(CallAnswered(call_id_for(3_000), "Kim", 3_000))
    now = 10**9
    assert [c.due_ms for c in book.missed(now)] == [1_000, 5_000]


def test_status_of_an_unknown_call_is_a_local_error() -> None:
    with pytest.raises(LocalError):
        CheckCallBook().status("cc-1", 0)
