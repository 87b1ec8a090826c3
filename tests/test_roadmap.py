"""Road map: reciprocal steps, their conditions, and who may move them."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.domain.roadmap import (
    STARTED,
    TRANSITIONS,
    Condition,
    RoadMap,
    add_step_body,
    agree_body,
    apply,
    unlocked,
    unmet,
    update_body,
)
from parley.errors import Code, Conflict, LocalError, ParleyError, RejectedInput
from parley.protocol.crypto import sha256
from parley.protocol.encoding import b64e

NORTH, SOUTH, EAST, UN, STRANGER = "north", "south", "east", "un", "stranger"


@dataclass(frozen=True)
class Event:
    author: str
    envelope_hash: str
    ts_ms: int
    body: Mapping[str, Any]


class Channel:
    def __init__(self, state: RoadMap) -> None:
        self.state = state
        self.count = 0

    def send(self, author: str, body: Mapping[str, Any]) -> str:
        self.count += 1
        envelope = b64e(sha256(f"envelope {self.count}".encode()))
        self.state = apply(self.state, Event(author, envelope, 1000 * self.count, body))
        return envelope

    def refused(self, author: str, body: Mapping[str, Any], error: type[ParleyError]) -> str:
        before = self.state
        with pytest.raises(error) as info:
            self.send(author, body)
        assert self.state is before
        return info.value.message

    def status(self, step_id: str) -> str:
        return self.state.steps[step_id].status


def after(step_id: str, state: str = "verified") -> tuple[Condition, ...]:
    return (Condition(after_step=step_id, state=state),)  # type: ignore[arg-type]


def agreed_map(facilitator: str | None = None) -> Channel:
    """Step 1 (north halts launches); step 2 (south eases pressure) after step 1 is verified."""
    ch = Channel(RoadMap.start({NORTH, SOUTH}, facilitator))
    ch.send(NORTH, add_step_body("1", NORTH, "announce a moratorium on launches"))
    ch.send(SOUTH, add_step_body("2", SOUTH, "suspend the joint exercise", after("1")))
    ch.send(SOUTH, agree_body("1"))
    ch.send(NORTH, agree_body("2"))
    return ch


# --- the story ------------------------------------------------------------------------------------


def test_step_two_unlocks_only_when_the_other_side_verifies_step_one() -> None:
    ch = agreed_map()
    assert ch.status("1") == ch.status("2") == "agreed"
    assert unlocked(ch.state) == ("1",)
    assert "waits for: 1 verified" in ch.refused(SOUTH, update_body("2", "in_progress"), Conflict)

    ch.send(NORTH, update_body("1", "in_progress"))
    claimed = ch.send(NORTH, update_body("1", "done", "moratorium published"))
    assert ch.status("1") == "done"
    assert unlocked(ch.state) == ()  # a claim is not enough: step 2 waits for verification
    assert unmet(ch.state, "2") == after("1")

    verified = ch.send(SOUTH, update_body("1", "verified", "no launches observed for 90 days"))
    assert ch.status("1") == "verified"
    assert unlocked(ch.state) == ("2",)
    ch.send(SOUTH, update_body("2", "done"))
    ch.send(NORTH, update_body("2", "verified"))
    assert unlocked(ch.state) == ()

    history = ch.state.steps["1"].history
    assert [(e.move, e.status, e.by) for e in history] == [
        ("proposed", "proposed", NORTH),
        ("agreed", "agreed", SOUTH),
        ("in_progress", "in_progress", NORTH),
        ("done", "done", NORTH),
        ("verified", "verified", SOUTH),
    ]
    assert history[3].envelope_hash == claimed and history[3].note == "moratorium published"
    assert history[4].envelope_hash == verified


def test_dispute_then_the_owner_works_on_and_claims_again() -> None:
    ch = agreed_map()
    ch.send(NORTH, update_body("1", "done"))  # straight from agreed: a one-off act
    ch.send(SOUTH, update_body("1", "disputed", "a launch was observed on 3 March"))
    assert ch.status("1") == "disputed"
    ch.refused(SOUTH, update_body("1", "verified"), Conflict)  # nothing to verify: no claim
    ch.send(NORTH, update_body("1", "in_progress", "investigating"))
    ch.send(NORTH, update_body("1", "done"))
    ch.send(SOUTH, update_body("1", "verified"))
    assert [e.status for e in ch.state.steps["1"].history][-5:] == [
        "done",
        "disputed",
        "in_progress",
        "done",
        "verified",
    ]


def test_a_done_condition_holds_while_done_but_not_while_disputed() -> None:
    ch = Channel(RoadMap.start({NORTH, SOUTH}))
    ch.send(NORTH, add_step_body("1", NORTH, "open the liaison office"))
    ch.send(SOUTH, add_step_body("2", SOUTH, "send a liaison officer", after("1", "done")))
    ch.send(SOUTH, agree_body("1"))
    ch.send(NORTH, agree_body("2"))
    ch.send(NORTH, update_body("1", "done"))
    assert unlocked(ch.state) == ("2",)
    ch.send(SOUTH, update_body("1", "disputed"))
    assert unlocked(ch.state) == ()
    ch.refused(SOUTH, update_body("2", "in_progress"), Conflict)
    ch.send(NORTH, update_body("1", "done"))
    ch.send(SOUTH, update_body("2", "in_progress"))
    # A later dispute does not stop a step that has started.
    ch.send(SOUTH, update_body("1", "disputed"))
    assert ch.status("2") == "in_progress"


def test_who_may_move_a_step() -> None:
    ch = agreed_map(facilitator=UN)
    assert "only the owner" in ch.refused(SOUTH, update_body("1", "done"), Conflict)
    ch.refused(UN, update_body("1", "in_progress"), Conflict)
    ch.send(NORTH, update_body("1", "done"))
    assert "other than the owner" in ch.refused(NORTH, update_body("1", "verified"), Conflict)
    ch.refused(NORTH, update_body("1", "disputed"), Conflict)
    ch.refused(UN, update_body("1", "verified"), Conflict)  # the other side verifies
    ch.send(SOUTH, update_body("1", "verified"))
    for status in ("in_progress", "done", "disputed", "verified"):
        ch.refused(NORTH, update_body("1", status), Conflict)  # verified is final
        ch.refused(SOUTH, update_body("1", status), Conflict)


def test_agreement_needs_every_party_and_a_step_must_be_agreed_before_it_starts() -> None:
    ch = Channel(RoadMap.start({NORTH, SOUTH}, facilitator=UN))
    ch.send(UN, add_step_body("1", NORTH, "reopen the hotline"))  # tabled by the facilitator
    assert ch.state.steps["1"].signed == frozenset()
    ch.refused(UN, agree_body("1"), Conflict)
    ch.refused(NORTH, update_body("1", "in_progress"), Conflict)
    ch.send(NORTH, agree_body("1"))
    assert ch.status("1") == "proposed"
    assert "already signed" in ch.refused(NORTH, agree_body("1"), Conflict)
    ch.send(SOUTH, agree_body("1"))
    assert ch.status("1") == "agreed"
    ch.refused(SOUTH, agree_body("1"), Conflict)


def test_with_three_parties_every_other_party_verifies_and_any_one_can_dispute() -> None:
    ch = Channel(RoadMap.start({NORTH, SOUTH, EAST}))
    ch.send(NORTH, add_step_body("1", NORTH, "publish the exercise calendar"))
    ch.send(SOUTH, agree_body("1"))
    assert ch.status("1") == "proposed"
    ch.send(EAST, agree_body("1"))
    ch.send(NORTH, update_body("1", "done"))
    ch.send(SOUTH, update_body("1", "verified"))
    assert ch.status("1") == "done"
    assert ch.state.steps["1"].signed == {SOUTH}
    ch.send(EAST, update_body("1", "disputed"))
    assert ch.status("1") == "disputed"
    assert ch.state.steps["1"].signed == frozenset()
    ch.send(NORTH, update_body("1", "done"))
    ch.send(EAST, update_body("1", "verified"))
    ch.send(SOUTH, update_body("1", "verified"))
    assert ch.status("1") == "verified"


def test_adding_steps() -> None:
    ch = Channel(RoadMap.start({NORTH, SOUTH}, facilitator=UN))
    ch.send(NORTH, add_step_body("1", SOUTH, "the other side's first step"))
    assert ch.state.steps["1"].signed == {NORTH}
    assert "already exists" in ch.refused(SOUTH, add_step_body("1", SOUTH, "again"), Conflict)
    assert "unknown step" in ch.refused(
        SOUTH, add_step_body("2", SOUTH, "later", after("9")), Conflict
    )
    ch.refused(SOUTH, add_step_body("2", SOUTH, "itself", after("2")), Conflict)
    ch.refused(SOUTH, add_step_body("2", UN, "facilitator's step"), Conflict)
    ch.refused(SOUTH, add_step_body("2", STRANGER, "someone's step"), Conflict)
    ch.refused(SOUTH, agree_body("9"), Conflict)
    with pytest.raises(RejectedInput) as info:
        ch.send(STRANGER, add_step_body("2", SOUTH, "from outside"))
    assert info.value.code is Code.NOT_A_MEMBER


# --- bodies ---------------------------------------------------------------------------------------

ADD = add_step_body("1", NORTH, "a step", after("0", "done"))

BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("unknown type", {**ADD, "type": "roadmap.delete"}),
    ("unknown field", {**ADD, "deadline": 5}),
    ("blank description", {**ADD, "description": " "}),
    ("bad step id", {**ADD, "step_id": "step one"}),
    ("bad condition state", {**ADD, "conditions": [{"after_step": "0", "state": "agreed"}]}),
    (
        "condition extra field",
        {**ADD, "conditions": [{"after_step": "0", "state": "done", "x": 1}]},
    ),
    ("update to agreed", {"type": "roadmap.update", "step_id": "1", "status": "agreed"}),
    ("update to proposed", {"type": "roadmap.update", "step_id": "1", "status": "proposed"}),
    ("null note", {"type": "roadmap.update", "step_id": "1", "status": "done", "note": None}),
    ("numeric step id", {"type": "roadmap.agree", "step_id": 1}),
    ("float in note", {"type": "roadmap.update", "step_id": "1", "status": "done", "note": 1.5}),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_bad_bodies_are_rejected(case: str, body: dict[str, Any]) -> None:
    ch = agreed_map()
    before = ch.state
    with pytest.raises(RejectedInput) as info:
        ch.send(NORTH, body)
    assert info.value.code is Code.BAD_BODY
    assert ch.state is before


def test_builders() -> None:
    assert update_body("1", "done", "finished") == {
        "type": "roadmap.update",
        "step_id": "1",
        "status": "done",
        "note": "finished",
    }
    assert update_body("1", "done") == {"type": "roadmap.update", "step_id": "1", "status": "done"}
    assert ADD["conditions"] == [{"after_step": "0", "state": "done"}]
    with pytest.raises(LocalError):
        update_body("1", "agreed")
    with pytest.raises(LocalError):
        add_step_body("1", NORTH, "")


def test_transition_table_is_closed_and_verified_is_final() -> None:
    statuses = set(TRANSITIONS)
    for targets in TRANSITIONS.values():
        assert set(targets) <= statuses
    assert TRANSITIONS["verified"] == {}
    assert set(TRANSITIONS["agreed"]) <= STARTED


# --- any sequence of moves keeps the invariants ---------------------------------------------------

STEP_IDS = ["1", "2", "3", "4", "5"]
STATUSES = ["agreed", "in_progress", "done", "verified", "disputed"]
AUTHORS = [NORTH, SOUTH, NORTH, SOUTH, UN, STRANGER]


def _draw_move(data: st.DataObject, state: RoadMap) -> tuple[str, dict[str, Any]]:
    """A move that is often legal-looking (a real step, a next status) but need not be legal."""
    author = data.draw(st.sampled_from(AUTHORS))
    known = list(state.steps)
    kind = data.draw(st.sampled_from(["add", "move", "move", "move", "junk"]))
    if kind == "add" or not known:
        targets = st.sampled_from([*known, "9"]) if known else st.just("9")
        wanted = data.draw(
            st.dictionaries(targets, st.sampled_from(["done", "verified"]), max_size=2)
        )
        conditions = tuple(
            Condition.model_validate({"after_step": k, "state": v}) for k, v in wanted.items()
        )
        step_id = data.draw(st.sampled_from(STEP_IDS))
        owner = data.draw(st.sampled_from([NORTH, SOUTH, NORTH, SOUTH, UN]))
        return author, add_step_body(step_id, owner, "a step", conditions)
    if kind == "junk":
        return author, {"type": "roadmap.update", "step_id": known[0]}
    step = state.steps[data.draw(st.sampled_from(known))]
    other = SOUTH if step.owner == NORTH else NORTH
    author = data.draw(st.sampled_from([step.owner, other, author]))
    status = data.draw(st.sampled_from([*TRANSITIONS[step.status], *STATUSES]))
    prefer_next = data.draw(st.booleans())
    if prefer_next and TRANSITIONS[step.status]:
        status = data.draw(st.sampled_from(list(TRANSITIONS[step.status])))
    if status == "agreed":
        return author, agree_body(step.step_id)
    return author, update_body(step.step_id, status)


def _legal(previous: str, status: str) -> bool:
    return status == previous or status in TRANSITIONS[previous]  # type: ignore[index]


def check_invariants(state: RoadMap) -> None:
    order = list(state.steps)
    for i, (sid, step) in enumerate(state.steps.items()):
        assert step.owner in state.parties
        for c in step.conditions:
            assert c.after_step in order[:i]  # conditions only look back: no cycles
        assert step.signed <= state.parties
        history = step.history
        assert history[0].status == "proposed"
        assert history[-1].status == step.status
        for a, b in itertools.pairwise(history):
            assert _legal(a.status, b.status)
        if step.status in STARTED:
            start = next(j for j, e in enumerate(history) if e.status in STARTED)
            # Every condition held when the step started: the step it named had got there first.
            for c in step.conditions:
                reached = [e for e in state.steps[c.after_step].history if e.status == c.state]
                assert reached, (sid, c)
                assert reached[0].ts_ms < history[start].ts_ms


@settings(max_examples=300, deadline=None)
@given(st.data(), st.booleans())
def test_any_sequence_of_moves_keeps_the_invariants(
    data: st.DataObject, with_facilitator: bool
) -> None:
    state = RoadMap.start({NORTH, SOUTH}, facilitator=UN if with_facilitator else None)
    for i in range(data.draw(st.integers(0, 60))):
        author, body = _draw_move(data, state)
        with contextlib.suppress(RejectedInput, Conflict):  # anything else fails the test
            state = apply(state, Event(author, b64e(sha256(b"%d" % i)), i, body))
        check_invariants(state)
        for sid in unlocked(state):
            assert state.steps[sid].status == "agreed" and not unmet(state, sid)
