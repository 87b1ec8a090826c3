"""Road map: reciprocal steps with an owner, conditions and a status history (DESIGN.md §5).

Records (envelope bodies; fields are required unless marked `?`; no nulls, no floats):

    roadmap.add_step {step_id, owner, description, conditions: [{after_step, state}]}
    roadmap.agree    {step_id}
    roadmap.update   {step_id, status, note?}     status: in_progress | done | verified | disputed

Rules (everything that decides what a road-map record means lives in this file):
 1. Members are the `parties` and at most one `facilitator`; a record from anyone else is
    RejectedInput(NOT_A_MEMBER). A malformed body is RejectedInput(BAD_BODY). A well-formed move
    that the current state does not allow is Conflict(CONFLICT). Either way the state is unchanged.
 2. Any member may add a step. Its owner must be a party; its id must be new; its conditions may
    name only steps already on the map, so conditions never form a cycle.
 3. A step's status changes only by a move in TRANSITIONS, made by whom the table says:
    `owner`; `any_other_party` (a party that is not the owner); `every_party` / `every_other_party`
    (the move happens when the last of them has signed; each signature is recorded on the way; the
    author of `add_step`, if a party, has signed its agreement by adding the step).
 4. A step starts (leaves `agreed`) only while its conditions hold: `done` holds while the named
    step is done or verified (a disputed claim does not count), `verified` once it is verified,
    which is final. A step that has started is not stopped by a later dispute of a step it waited
    for; both show in the histories.
 5. Every accepted record appends an `Entry` to its step's history: the move asked for, the status
    after it, who, when, the note and the envelope hash that carries the signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import Field, TypeAdapter

from parley.domain.talks import (
    Event,
    Frozen,
    Label,
    RecordId,
    Text,
    build_record,
    check_parties,
    validate_record,
)
from parley.errors import Code, Conflict, RejectedInput

Status: TypeAlias = Literal["proposed", "agreed", "in_progress", "done", "verified", "disputed"]
Who: TypeAlias = Literal["owner", "any_other_party", "every_party", "every_other_party"]

# Every legal move: current status -> {next status: who makes it}. Nothing else changes a status.
TRANSITIONS: Final[Mapping[Status, Mapping[Status, Who]]] = {
    "proposed": {"agreed": "every_party"},  # by roadmap.agree
    "agreed": {"in_progress": "owner", "done": "owner"},  # a start: conditions must hold
    "in_progress": {"done": "owner"},  # the owner claims it done
    "done": {"verified": "every_other_party", "disputed": "any_other_party"},
    "disputed": {"in_progress": "owner", "done": "owner"},
    "verified": {},
}
STARTED: Final[frozenset[Status]] = frozenset({"in_progress", "done", "verified", "disputed"})
UPDATE_STATUSES = ("in_progress", "done", "verified", "disputed")


# --- records --------------------------------------------------------------------------------------


class Condition(Frozen):
    after_step: RecordId
    state: Literal["done", "verified"]


class AddStep(Frozen):
    type: Literal["roadmap.add_step"] = "roadmap.add_step"
    step_id: RecordId
    owner: Label
    description: Text
    conditions: Annotated[tuple[Condition, ...], Field(max_length=20)] = ()


class Agree(Frozen):
    type: Literal["roadmap.agree"] = "roadmap.agree"
    step_id: RecordId


class Update(Frozen):
    type: Literal["roadmap.update"] = "roadmap.update"
    step_id: RecordId
    status: Literal["in_progress", "done", "verified", "disputed"]
    note: Text | None = None


Record: TypeAlias = AddStep | Agree | Update
_Tagged: TypeAlias = Annotated[Record, Field(discriminator="type")]
_RECORD: TypeAdapter[Record] = TypeAdapter(_Tagged)
BODY_TYPES = ("roadmap.add_step", "roadmap.agree", "roadmap.update")


def parse_body(body: Mapping[str, Any]) -> Record:
    """The road-map record in `body`, or RejectedInput(BAD_BODY)."""
    record: Record = validate_record(_RECORD, body)
    return record


def add_step_body(
    step_id: str, owner: str, description: str, conditions: tuple[Condition, ...] = ()
) -> dict[str, Any]:
    return build_record(
        _RECORD,
        AddStep,
        step_id=step_id,
        owner=owner,
        description=description,
        conditions=conditions,
    )


def agree_body(step_id: str) -> dict[str, Any]:
    return build_record(_RECORD, Agree, step_id=step_id)


def update_body(step_id: str, status: str, note: str | None = None) -> dict[str, Any]:
    return build_record(_RECORD, Update, step_id=step_id, status=status, note=note)


# --- state ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    move: Status  # what the record asked for ("proposed" for add_step, "agreed" for agree)
    status: Status  # the step's status after it
    by: str
    ts_ms: int
    envelope_hash: str
    note: str | None = None


@dataclass(frozen=True)
class Step:
    step_id: str
    owner: str
    description: str
    conditions: tuple[Condition, ...]
    status: Status
    signed: frozenset[str]  # signatures gathered toward an every_* move out of `status`
    history: tuple[Entry, ...]


@dataclass(frozen=True)
class RoadMap:
    parties: frozenset[str]
    facilitator: str | None = None
    steps: Mapping[str, Step] = field(default_factory=dict)  # in the order they were added

    @classmethod
    def start(cls, parties: frozenset[str] | set[str], facilitator: str | None = None) -> RoadMap:
        check_parties(frozenset(parties), facilitator)
        return cls(frozenset(parties), facilitator)

    @property
    def members(self) -> frozenset[str]:
        return self.parties | ({self.facilitator} if self.facilitator is not None else set())

    def apply(self, event: Event) -> RoadMap:
        return apply(self, event)


def holds(state: RoadMap, condition: Condition) -> bool:
    status = state.steps[condition.after_step].status
    if condition.state == "verified":
        return status == "verified"
    return status in ("done", "verified")


def unmet(state: RoadMap, step_id: str) -> tuple[Condition, ...]:
    """The conditions of `step_id` that do not hold now."""
    return tuple(c for c in state.steps[step_id].conditions if not holds(state, c))


def unlocked(state: RoadMap) -> tuple[str, ...]:
    """Agreed steps whose conditions all hold: their owners may start them now."""
    return tuple(
        sid
        for sid, step in state.steps.items()
        if step.status == "agreed" and not unmet(state, sid)
    )


# --- moves ----------------------------------------------------------------------------------------


def apply(state: RoadMap, event: Event) -> RoadMap:
    """The state after `event`, or RejectedInput / Conflict (and `state` stays as it was)."""
    if event.author not in state.members:
        raise RejectedInput(Code.NOT_A_MEMBER, f"{event.author} is not a member of this road map")
    record = parse_body(event.body)
    if isinstance(record, AddStep):
        step = _add_step(state, event, record)
    elif isinstance(record, Agree):
        step = _move(state, event, _step(state, record.step_id), "agreed", None)
    else:
        step = _move(state, event, _step(state, record.step_id), record.status, record.note)
    return replace(state, steps={**state.steps, step.step_id: step})


def _step(state: RoadMap, step_id: str) -> Step:
    step = state.steps.get(step_id)
    if step is None:
        raise Conflict(Code.CONFLICT, f"no step {step_id} on the road map")
    return step


def _add_step(state: RoadMap, event: Event, record: AddStep) -> Step:
    if record.step_id in state.steps:
        raise Conflict(Code.CONFLICT, f"step {record.step_id} already exists")
    if record.owner not in state.parties:
        raise Conflict(Code.CONFLICT, f"the owner of a step must be a party, not {record.owner}")
    for condition in record.conditions:
        if condition.after_step not in state.steps:
            raise Conflict(Code.CONFLICT, f"condition names unknown step {condition.after_step}")
    signed = frozenset({event.author}) & state.parties
    entry = Entry("proposed", "proposed", event.author, event.ts_ms, event.envelope_hash)
    return Step(
        record.step_id,
        record.owner,
        record.description,
        record.conditions,
        "proposed",
        signed,
        (entry,),
    )


def _move(state: RoadMap, event: Event, step: Step, target: Status, note: str | None) -> Step:
    who = TRANSITIONS[step.status].get(target)
    if who is None:
        raise Conflict(Code.CONFLICT, f"step {step.step_id} is {step.status}; not {target}")
    author = event.author
    if who == "owner" and author != step.owner:
        raise Conflict(Code.CONFLICT, f"only the owner {step.owner} can mark it {target}")
    if who == "every_party" and author not in state.parties:
        raise Conflict(Code.CONFLICT, f"only a party can make step {step.step_id} {target}")
    if who in ("any_other_party", "every_other_party") and (
        author not in state.parties or author == step.owner
    ):
        raise Conflict(Code.CONFLICT, f"only a party other than the owner can mark it {target}")
    if step.status == "agreed":
        waiting = unmet(state, step.step_id)
        if waiting:
            names = ", ".join(f"{c.after_step} {c.state}" for c in waiting)
            raise Conflict(Code.CONFLICT, f"step {step.step_id} waits for: {names}")
    status, signed = target, frozenset[str]()
    if who in ("every_party", "every_other_party"):
        if author in step.signed:
            raise Conflict(Code.CONFLICT, f"{author} has already signed this move")
        signed = step.signed | {author}
        needed = state.parties if who == "every_party" else state.parties - {step.owner}
        if not needed <= signed:
            status = step.status
        else:
            signed = frozenset()
    entry = Entry(target, status, author, event.ts_ms, event.envelope_hash, note)
    return replace(step, status=status, signed=signed, history=(*step.history, entry))
