"""Acknowledgements, notice deadlines and escalation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.domain.deadlines import (
    Ack,
    Answer,
    DeadlineTracker,
    Escalation,
    EscalationAction,
    EscalationLevel,
    EscalationPolicy,
    NoticeStatus,
    ack_body,
    parse_ack,
    parse_ref,
)
from parley.domain.precedence import Pending, Precedence, outbox_order, parse_precedence
from parley.errors import Code, Conflict, LocalError, RejectedInput
from parley.protocol.encoding import b64e

REF = b64e(bytes(range(32)))
REF2 = b64e(bytes(range(1, 33)))
HOUR = 3_600_000
HOOK = "https://ops.example/hooks/parley"
POLICY = EscalationPolicy(
    [(0, "console_alarm"), (HOUR, "webhook", HOOK), (4 * HOUR, "webhook", HOOK + "/duty")]
)


def ack(answer: Answer = Answer.ACKNOWLEDGED, ts: int = 0, ref: str = REF, text: str = "") -> Ack:
    return Ack(ref, answer, text, "Lt. Park", ts)


# --- acknowledgement bodies ---------------------------------------------------------------


def test_ack_body_round_trips() -> None:
    body = ack_body(REF, Answer.QUESTIONS, "Which launch area?", "Lt. Park")
    assert body == {
        "ref": REF,
        "answer": "questions",
        "text": "Which launch area?",
        "by": "Lt. Park",
    }
    assert parse_ack(body, 7) == Ack(REF, Answer.QUESTIONS, "Which launch area?", "Lt. Park", 7)


def test_acknowledged_and_rejected_may_have_empty_text() -> None:
    assert parse_ack(ack_body(REF, "acknowledged", "", "Kim"), 0).text == ""
    assert parse_ack(ack_body(REF, "rejected", "", "Kim"), 0).answer is Answer.REJECTED


GOOD = {"ref": REF, "answer": "acknowledged", "text": "", "by": "Kim"}


@pytest.mark.parametrize(
    "change",
    [
        {"ref": REF + "="},
        {"ref": REF[:-1]},
        {"ref": b64e(bytes(31))},
        {"ref": REF.replace("A", "+")},
        {"ref": 5},
        {"answer": "maybe"},
        {"answer": "ACKNOWLEDGED"},
        {"answer": None},
        {"text": None},
        {"text": "x" * 4001},
        {"answer": "questions", "text": "  "},
        {"by": ""},
        {"by": "x" * 201},
        {"extra": 1},
    ],
)
def test_bad_ack_bodies_are_rejected_as_bad_body(change: dict[str, object]) -> None:
    with pytest.raises(RejectedInput) as err:
        parse_ack({**GOOD, **change}, 0)
    assert err.value.code is Code.BAD_BODY


def test_missing_fields_are_rejected() -> None:
    with pytest.raises(RejectedInput):
        parse_ack({"ref": REF, "answer": "acknowledged", "text": ""}, 0)
    with pytest.raises(RejectedInput):
        parse_ack([REF], 0)


def test_building_a_bad_ack_is_a_local_error() -> None:
    with pytest.raises(LocalError) as err:
        ack_body(REF, Answer.QUESTIONS, "", "Kim")
    assert err.value.code is Code.INVALID_REQUEST


def test_parse_ref_accepts_only_a_32_byte_hash() -> None:
    assert parse_ref(REF) == REF
    with pytest.raises(RejectedInput) as err:
        parse_ref("abc")
    assert err.value.code is Code.BAD_BODY


# --- deadlines ----------------------------------------------------------------------------


def tracker() -> DeadlineTracker:
    t = DeadlineTracker()
    t.add_notice(REF, 10 * HOUR)
    return t


def test_a_notice_is_open_then_overdue() -> None:
    t = tracker()
    assert t.status(REF, 10 * HOUR) is NoticeStatus.OPEN
    assert t.overdue(10 * HOUR) == []
    assert t.status(REF, 10 * HOUR + 1) is NoticeStatus.OVERDUE
    assert [n.ref for n in t.overdue(10 * HOUR + 1)] == [REF]


def test_any_first_answer_meets_the_deadline_and_the_latest_is_current() -> None:
    t = tracker()
    t.add_ack(ack(Answer.QUESTIONS, ts=HOUR, text="Which area?"))
    t.add_ack(ack(Answer.ACKNOWLEDGED, ts=12 * HOUR))
    assert t.status(REF, 20 * HOUR) is NoticeStatus.ANSWERED
    assert [a.answer for a in t.answers(REF)] == [Answer.QUESTIONS, Answer.ACKNOWLEDGED]


def test_a_late_answer_is_recorded_as_late() -> None:
    t = tracker()
    t.add_ack(ack(ts=11 * HOUR))
    assert t.status(REF, 11 * HOUR) is NoticeStatus.ANSWERED_LATE
    assert t.overdue(11 * HOUR) == []


def test_answers_are_kept_in_time_order_and_duplicates_once() -> None:
    t = tracker()
    later, earlier = ack(ts=5), ack(Answer.REJECTED, ts=3)
    for a in (later, earlier, later):
        t.add_ack(a)
    assert t.answers(REF) == [earlier, later]


def test_a_message_without_deadline_can_be_answered() -> None:
    t = DeadlineTracker()
    t.add_ack(ack(ref=REF2))
    assert len(t.answers(REF2)) == 1
    with pytest.raises(LocalError):
        t.status(REF2, 0)


def test_a_notice_cannot_change_its_deadline() -> None:
    t = tracker()
    t.add_notice(REF, 10 * HOUR)  # the same notice again is a no-op
    with pytest.raises(Conflict) as err:
        t.add_notice(REF, 11 * HOUR)
    assert err.value.code is Code.CONFLICT


# --- escalation ---------------------------------------------------------------------------


def test_levels_fire_in_turn_and_each_only_once() -> None:
    t = tracker()
    deadline = 10 * HOUR
    assert t.escalation(deadline, POLICY) == []
    assert t.escalation(deadline + 1, POLICY) == [
        Escalation(REF, 0, EscalationAction.CONSOLE_ALARM, None, deadline, 1)
    ]
    assert t.escalation(deadline + 2, POLICY) == []
    [webhook] = t.escalation(deadline + HOUR, POLICY)
    assert (webhook.level, webhook.action, webhook.target) == (1, EscalationAction.WEBHOOK, HOOK)
    assert t.escalation(deadline + 3 * HOUR, POLICY) == []
    assert [e.level for e in t.escalation(deadline + 4 * HOUR, POLICY)] == [2]
    assert t.escalation(deadline + 100 * HOUR, POLICY) == []


def test_levels_due_together_fire_together_lowest_first() -> None:
    t = tracker()
    assert [e.level for e in t.escalation(20 * HOUR, POLICY)] == [0, 1, 2]


def test_an_answer_stops_further_levels() -> None:
    t = tracker()
    t.escalation(10 * HOUR + 1, POLICY)
    t.add_ack(ack(ts=10 * HOUR + 5))
    assert t.escalation(20 * HOUR, POLICY) == []


def test_fired_levels_survive_a_restart() -> None:
    t = tracker()
    t.escalation(11 * HOUR, POLICY)
    restored = DeadlineTracker(fired=t.fired)
    restored.add_notice(REF, 10 * HOUR)
    assert restored.escalation(11 * HOUR, POLICY) == []
    assert [e.level for e in restored.escalation(14 * HOUR, POLICY)] == [2]


def test_several_notices_escalate_independently_most_overdue_first() -> None:
    t = tracker()
    t.add_notice(REF2, 5 * HOUR)
    assert [(e.ref, e.level) for e in t.escalation(10 * HOUR + 1, POLICY)] == [
        (REF2, 0),
        (REF2, 1),
        (REF2, 2),
        (REF, 0),
    ]


@given(st.lists(st.integers(0, 40 * HOUR), max_size=30))
def test_each_level_fires_at_most_once_whatever_the_tick_times(ticks: list[int]) -> None:
    t = tracker()
    fired = [(e.ref, e.level) for now in sorted(ticks) for e in t.escalation(now, POLICY)]
    assert len(fired) == len(set(fired))
    if ticks and max(ticks) > 10 * HOUR:
        overdue = max(ticks) - 10 * HOUR
        expected = [i for i, lv in enumerate(POLICY.levels) if overdue >= lv.after_overdue_ms]
        assert sorted(level for _, level in fired) == expected


# --- policy -------------------------------------------------------------------------------


def test_policy_accepts_levels_and_tuples() -> None:
    level = EscalationLevel(0, EscalationAction.CONSOLE_ALARM)
    assert EscalationPolicy([level, (5, "webhook", HOOK)]).levels[1] == EscalationLevel(
        5, EscalationAction.WEBHOOK, HOOK
    )


@pytest.mark.parametrize(
    "levels",
    [
        [],
        [(0, "email")],
        [(-1, "console_alarm")],
        [(0, "webhook")],
        [(0, "webhook", "ftp://x")],
        [(0, "webhook", "https://")],
        [(0, "console_alarm", HOOK)],
        [(HOUR, "console_alarm"), (0, "console_alarm")],
        [(0, "console_alarm", None, "extra")],
        [(True, "console_alarm")],
    ],
)
def test_policy_refuses_bad_levels(levels: list[tuple[object, ...]]) -> None:
    with pytest.raises(LocalError) as err:
        EscalationPolicy(levels)  # type: ignore[arg-type]
    assert err.value.code is Code.INVALID_REQUEST


# --- precedence (notices and acks travel with one; it has no test module of its own) ------


def test_flash_overtakes_queued_routine_traffic() -> None:
    queue = [Pending("a", Precedence.ROUTINE, n) for n in range(1, 100)]
    queue += [Pending("b", Precedence.FLASH, 100), Pending("c", Precedence.PRIORITY, 101)]
    queue += [Pending("d", Precedence.IMMEDIATE, 102), Pending("c", Precedence.ROUTINE, 103)]
    ordered = [(p.channel, p.created) for p in outbox_order(queue)]
    assert ordered[:5] == [("b", 100), ("d", 102), ("c", 101), ("c", 103), ("a", 1)]
    assert [n for _, n in ordered[4:]] == list(range(1, 100))  # creation order within a chain


def test_a_flash_goes_alone_and_lifts_its_channel() -> None:
    """The FLASH itself first; its channel's other pending envelopes then go, in chain order,
    before a channel whose most urgent pending envelope ranks lower."""
    queue = [
        Pending("slow", Precedence.PRIORITY, 1), Pending("fast", Precedence.ROUTINE, 2),
        Pending("fast", Precedence.FLASH, 3), Pending("slow", Precedence.ROUTINE, 4),
    ]  # fmt: skip
    assert [p.created for p in outbox_order(queue)] == [3, 2, 1, 4]


def test_precedence_ranks_and_wire_names() -> None:
    assert [p.rank for p in Precedence] == [0, 1, 2, 3]
    assert Precedence.FLASH.rank > Precedence.IMMEDIATE.rank > Precedence.PRIORITY.rank
    assert parse_precedence("FLASH") is Precedence.FLASH
    for bad in ("flash", "URGENT", None, 3):
        with pytest.raises(RejectedInput) as err:
            parse_precedence(bad)
        assert err.value.code is Code.BAD_BODY
