"""Link state from heartbeats, and telling 'link down' from 'nobody answers'."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.domain.liveness import (
    LinkChange,
    LinkMonitor,
    LinkPolicy,
    LinkState,
    Situation,
    assess,
)
from parley.errors import Code, LocalError

SEC = 1000
POLICY = LinkPolicy(heartbeat_interval_ms=10 * SEC, degraded_after_missed=2, down_after_missed=4)


def started(now: int = 0) -> LinkMonitor:
    m = LinkMonitor(POLICY, now, link="peer-b")
    assert m.heartbeat_received(now, rtt_ms=50) == [
        LinkChange(LinkState.DOWN, LinkState.UP, now, "heartbeats arrive", "peer-b")
    ]
    return m


# --- policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "degraded", "down"),
    [(0, 1, 2), (-5, 1, 2), (1000, 0, 2), (1000, 3, 3), (1000, 4, 2)],
)
def test_policy_refuses_impossible_thresholds(interval: int, degraded: int, down: int) -> None:
    with pytest.raises(LocalError) as err:
        LinkPolicy(interval, degraded, down)
    assert err.value.code is Code.INVALID_REQUEST


def test_policy_refuses_non_positive_rtt_threshold() -> None:
    with pytest.raises(LocalError):
        LinkPolicy(1000, 1, 2, degraded_rtt_ms=0)


# --- monitor ------------------------------------------------------------------------------


def test_a_new_monitor_is_down_until_the_first_heartbeat() -> None:
    m = LinkMonitor(POLICY, 0)
    assert m.state is LinkState.DOWN
    assert m.reason == "no heartbeat received yet"
    assert m.tick(10**9) == []
    assert m.heartbeat_received(10**9)[0].new is LinkState.UP


def test_missed_heartbeats_degrade_then_take_the_link_down() -> None:
    m = started()
    assert m.tick(19_999) == []  # one interval missed is jitter, not a fault
    assert m.tick(20_000) == [
        LinkChange(LinkState.UP, LinkState.DEGRADED, 20_000, "2 heartbeats missed", "peer-b")
    ]
    assert m.tick(39_999) == []
    [down] = m.tick(40_000)
    assert (down.old, down.new, down.reason) == (
        LinkState.DEGRADED,
        LinkState.DOWN,
        "4 heartbeats missed",
    )
    assert m.tick(10**7) == []  # no repeated alarm while it stays down


def test_a_heartbeat_brings_a_down_link_straight_back_up() -> None:
    m = started()
    m.tick(60_000)
    assert m.state is LinkState.DOWN
    [up] = m.heartbeat_received(61_000)
    assert (up.old, up.new, up.at_ms) == (LinkState.DOWN, LinkState.UP, 61_000)


def test_a_big_jump_in_time_goes_from_up_to_down_in_one_change() -> None:
    m = started()
    [change] = m.tick(10**6)
    assert (change.old, change.new) == (LinkState.UP, LinkState.DOWN)


def test_send_failures_degrade_and_then_take_the_link_down() -> None:
    m = started()
    assert [c.new for c in m.send_failed(1_000)] == [LinkState.DEGRADED]
    assert m.send_failed(2_000) == []
    assert m.send_failed(3_000) == []
    [down] = m.send_failed(4_000)
    assert down.new is LinkState.DOWN
    assert down.reason == "4 sends failed in a row"


def test_a_pushed_heartbeat_does_not_clear_send_failures_but_a_round_trip_does() -> None:
    m = started()
    m.send_failed(1_000)
    assert m.heartbeat_received(2_000) == []  # inbound only: our sends may still fail
    assert m.state is LinkState.DEGRADED
    [up] = m.heartbeat_received(3_000, rtt_ms=80)
    assert up.new is LinkState.UP


def test_slow_round_trips_degrade_when_the_policy_says_so() -> None:
    policy = LinkPolicy(10 * SEC, 2, 4, degraded_rtt_ms=2_000)
    m = LinkMonitor(policy, 0)
    m.heartbeat_received(0, rtt_ms=100)
    [slow] = m.heartbeat_received(5_000, rtt_ms=2_500)
    assert (slow.new, slow.reason) == (LinkState.DEGRADED, "round trip 2500 ms")
    assert [c.new for c in m.heartbeat_received(9_000, rtt_ms=300)] == [LinkState.UP]


def test_the_worst_cause_wins() -> None:
    policy = LinkPolicy(10 * SEC, 2, 4, degraded_rtt_ms=2_000)
    m = LinkMonitor(policy, 0)
    m.heartbeat_received(0, rtt_ms=5_000)
    [down] = m.tick(40_000)
    assert down.new is LinkState.DOWN


def test_a_clock_stepped_backwards_does_not_revive_a_dead_link() -> None:
    m = started(100_000)
    m.tick(200_000)
    assert m.state is LinkState.DOWN
    assert m.tick(100_001) == []
    assert m.state is LinkState.DOWN


def test_a_resumed_monitor_derives_its_state_from_the_last_heartbeat() -> None:
    assert LinkMonitor(POLICY, 5_000, last_heartbeat_ms=0).state is LinkState.UP
    assert LinkMonitor(POLICY, 25_000, last_heartbeat_ms=0).state is LinkState.DEGRADED
    assert LinkMonitor(POLICY, 45_000, last_heartbeat_ms=0).state is LinkState.DOWN


def test_negative_round_trip_is_refused() -> None:
    with pytest.raises(LocalError):
        started().heartbeat_received(1, rtt_ms=-1)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["tick", "fail", "beat", "round_trip"]),
        st.integers(min_value=-50_000, max_value=80_000),  # steps, sometimes backwards
    ),
    max_size=60,
)


@given(_ops)
def test_only_a_heartbeat_ever_improves_the_link(ops: list[tuple[str, int]]) -> None:
    m = LinkMonitor(POLICY, 0)
    now = 0
    for op, step in ops:
        now += step
        before = m.state
        if op == "tick":
            changes = m.tick(now)
        elif op == "fail":
            changes = m.send_failed(now)
        else:
            changes = m.heartbeat_received(now, rtt_ms=20 if op == "round_trip" else None)
        assert len(changes) <= 1
        for c in changes:
            assert c.old is before and c.new is m.state and c.old is not c.new
            if c.new.severity < c.old.severity:
                assert op in ("beat", "round_trip")
        if op in ("tick", "fail"):
            assert m.state.severity >= before.severity
        if not changes:
            assert m.state is before


# --- assessment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "calls", "acks", "situation"),
    [
        (LinkState.UP, 0, 0, Situation.NORMAL),
        (LinkState.UP, 1, 0, Situation.UNANSWERED),
        (LinkState.UP, 0, 3, Situation.UNANSWERED),
        (LinkState.DEGRADED, 0, 0, Situation.DEGRADED),
        (LinkState.DEGRADED, 2, 2, Situation.DEGRADED),
        (LinkState.DOWN, 0, 0, Situation.LINK_DOWN),
        (LinkState.DOWN, 5, 1, Situation.LINK_DOWN),
    ],
)
def test_assess_tells_a_fault_from_silence(
    state: LinkState, calls: int, acks: int, situation: Situation
) -> None:
    assert assess(state, calls, acks).situation is situation


def test_silence_is_only_reported_while_heartbeats_arrive() -> None:
    # October 2022: the 09:00 call unanswered. With heartbeats arriving, that is silence …
    m = started()
    m.heartbeat_received(9_000, rtt_ms=40)
    assert assess(m.state, 1, 0).situation is Situation.UNANSWERED
    # … and with heartbeats gone, the same unanswered call is a fault, not a statement.
    m.tick(60_000)
    assert assess(m.state, 1, 0).situation is Situation.LINK_DOWN


def test_explanations_exist_in_english_and_korean_with_the_counts() -> None:
    for situation_state, calls, acks in [
        (LinkState.UP, 0, 0),
        (LinkState.UP, 2, 1),
        (LinkState.DEGRADED, 2, 1),
        (LinkState.DOWN, 2, 1),
    ]:
        a = assess(situation_state, calls, acks)
        en, ko = a.explain("en"), a.explain("ko")
        assert en and ko and en != ko
        if a.situation is not Situation.NORMAL:
            assert "2" in en and "1" in en and "2건" in ko and "1건" in ko
    assert "nobody answers" in assess(LinkState.UP, 1, 0).explain("en")
    assert "technical fault" in assess(LinkState.DOWN, 1, 0).explain("en")
    assert "기술적 장애" in assess(LinkState.DOWN, 1, 0).explain("ko")


def test_unknown_language_and_negative_counts_are_refused() -> None:
    with pytest.raises(LocalError):
        assess(LinkState.UP, 0, 0).explain("fr")
    with pytest.raises(LocalError):
        assess(LinkState.UP, -1, 0)
