"""Talks: meeting proposals, counters, withdrawal and acceptance of an exact version."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.domain.talks import (
    NO_PRECONDITIONS,
    Change,
    DateOption,
    DelegationSize,
    Format,
    MeetingTerms,
    Preconditions,
    Talks,
    accept_body,
    apply,
    check_move,
    counter_body,
    diff,
    history,
    parse_body,
    propose_body,
    terms_from_json,
    version_hash,
    withdraw_body,
)
from parley.errors import Code, Conflict, LocalError, ParleyError, RejectedInput
from parley.protocol.crypto import sha256
from parley.protocol.encoding import b64e

NORTH, SOUTH, UN, STRANGER = "station-north", "station-south", "station-un", "station-x"


@dataclass(frozen=True)
class Event:
    author: str
    envelope_hash: str
    ts_ms: int
    body: Mapping[str, Any]


class Channel:
    """Feeds records through `apply` in transcript order, as the transport would."""

    def __init__(self, state: Talks) -> None:
        self.state = state
        self.count = 0

    def send(self, author: str, body: Mapping[str, Any]) -> str:
        self.count += 1
        envelope = b64e(sha256(f"envelope {self.count}".encode()))
        self.state = apply(
            self.state, Event(author, envelope, 1_700_000_000_000 + self.count, body)
        )
        return envelope

    def refused(self, author: str, body: Mapping[str, Any], error: type[ParleyError]) -> str:
        before = self.state
        with pytest.raises(error) as info:
            self.send(author, body)
        assert self.state is before
        return info.value.message


def terms(table: str = "square", **changes: Any) -> MeetingTerms:
    fields: dict[str, Any] = {
        "date_options": (DateOption(start="2025-03-01"), DateOption(start="2025-03-08")),
        "venue_options": ("Panmunjom", "Geneva"),
        "format": Format(table=table, seating="delegations facing each other"),
        "delegation_size": DelegationSize(max=5),
        "agenda": ("talks about talks", "reopening the military hotline"),
        "preconditions": NO_PRECONDITIONS,
    }
    fields.update(changes)
    return MeetingTerms(**fields)


def versions(channel: Channel, negotiation_id: str = "n1") -> list[str]:
    return list(channel.state.negotiations[negotiation_id].versions)


def two_parties() -> Channel:
    return Channel(Talks.start({NORTH, SOUTH}))


def facilitated() -> Channel:
    return Channel(Talks.start({NORTH, SOUTH}, facilitator=UN))


# --- the story ------------------------------------------------------------------------------------


def test_proposal_without_preconditions_countered_to_a_round_table_then_agreed() -> None:
    ch = two_parties()
    proposed = ch.send(NORTH, propose_body("n1", terms("square")))
    v1 = versions(ch)[0]
    assert v1 == version_hash("n1", None, NORTH, terms("square"))
    assert ch.state.negotiations["n1"].versions[v1].terms.preconditions.none is True

    countered = ch.send(SOUTH, counter_body("n1", v1, terms("round")))
    v2 = versions(ch)[1]
    negotiation = ch.state.negotiations["n1"]
    assert negotiation.versions[v1].status == "superseded"
    assert negotiation.versions[v2].status == "open"
    assert negotiation.status == "open"
    # The author of a version accepts it by signing it.
    assert dict(negotiation.versions[v2].acceptances) == {SOUTH: countered}

    accepted = ch.send(NORTH, accept_body("n1", v2))
    agreement = ch.state.negotiations["n1"].agreement
    assert agreement is not None
    assert ch.state.negotiations["n1"].status == "agreed"
    assert agreement.version == v2
    assert agreement.terms == terms("round")
    assert dict(agreement.acceptances) == {NORTH: accepted, SOUTH: countered}
    assert agreement.to_json()["type"] == "talks.agreement"
    assert agreement.to_json()["terms"]["format"]["table"] == "round"
    assert len(agreement.hash) == 43

    entries = history(ch.state.negotiations["n1"])
    assert [(e.action, e.author, e.envelope_hash) for e in entries] == [
        ("propose", NORTH, proposed),
        ("counter", SOUTH, countered),
        ("accept", NORTH, accepted),
    ]
    assert entries[1].parent == v1
    assert entries[1].changes == (Change("format.table", "square", "round"),)

    # Nothing moves an agreed negotiation.
    ch.refused(SOUTH, accept_body("n1", v2), Conflict)
    ch.refused(NORTH, counter_body("n1", v2, terms("rectangular")), Conflict)
    ch.refused(SOUTH, withdraw_body("n1", v2), Conflict)


def test_facilitator_tables_a_proposal_and_both_parties_accept_it() -> None:
    ch = facilitated()
    ch.send(UN, propose_body("n1", terms("round")))
    v1 = versions(ch)[0]
    assert dict(ch.state.negotiations["n1"].versions[v1].acceptances) == {}

    ch.refused(UN, accept_body("n1", v1), Conflict)  # the facilitator does not accept
    north = ch.send(NORTH, accept_body("n1", v1))
    assert ch.state.negotiations["n1"].agreement is None
    south = ch.send(SOUTH, accept_body("n1", v1))
    agreement = ch.state.negotiations["n1"].agreement
    assert agreement is not None
    assert agreement.author == UN
    assert agreement.facilitator == UN
    assert dict(agreement.acceptances) == {NORTH: north, SOUTH: south}
    assert agreement.to_json()["facilitator"] == UN


def test_facilitator_can_table_a_compromise_as_a_counter() -> None:
    ch = facilitated()
    ch.send(NORTH, propose_body("n1", terms("square")))
    v1 = versions(ch)[0]
    ch.send(UN, counter_body("n1", v1, terms("round")))
    v2 = versions(ch)[1]
    ch.send(NORTH, accept_body("n1", v2))
    ch.send(SOUTH, accept_body("n1", v2))
    agreement = ch.state.negotiations["n1"].agreement
    assert agreement is not None and agreement.version == v2


def test_withdrawn_version_cannot_be_accepted_and_can_be_picked_up_again() -> None:
    ch = two_parties()
    ch.send(NORTH, propose_body("n1", terms()))
    v1 = versions(ch)[0]
    ch.refused(SOUTH, withdraw_body("n1", v1), Conflict)  # only the author withdraws
    ch.send(NORTH, withdraw_body("n1", v1))
    assert ch.state.negotiations["n1"].versions[v1].status == "withdrawn"
    assert ch.state.negotiations["n1"].status == "idle"
    ch.refused(SOUTH, accept_body("n1", v1), Conflict)
    ch.refused(NORTH, withdraw_body("n1", v1), Conflict)

    # The other side takes the withdrawn terms up as its own; the first side can then accept.
    ch.send(SOUTH, counter_body("n1", v1, terms()))
    v2 = versions(ch)[1]
    assert history(ch.state.negotiations["n1"])[-1].changes == ()
    ch.send(NORTH, accept_body("n1", v2))
    assert ch.state.negotiations["n1"].agreement is not None


def test_superseded_version_cannot_be_accepted_or_withdrawn() -> None:
    ch = two_parties()
    ch.send(NORTH, propose_body("n1", terms("square")))
    v1 = versions(ch)[0]
    ch.send(SOUTH, counter_body("n1", v1, terms("round")))
    assert "superseded" in ch.refused(SOUTH, accept_body("n1", v1), Conflict)
    ch.refused(NORTH, withdraw_body("n1", v1), Conflict)


def test_a_branch_from_an_older_version_is_allowed() -> None:
    ch = two_parties()
    ch.send(NORTH, propose_body("n1", terms("square")))
    v1 = versions(ch)[0]
    ch.send(SOUTH, counter_body("n1", v1, terms("round")))
    ch.send(NORTH, counter_body("n1", v1, terms("rectangular")))
    v3 = versions(ch)[2]
    assert [v.hash for v in ch.state.negotiations["n1"].open_versions] == versions(ch)[1:]
    ch.send(SOUTH, accept_body("n1", v3))
    assert ch.state.negotiations["n1"].agreement is not None


def test_moves_the_state_does_not_allow_are_conflicts() -> None:
    ch = facilitated()
    ch.send(NORTH, propose_body("n1", terms()))
    v1 = versions(ch)[0]
    assert "already exists" in ch.refused(SOUTH, propose_body("n1", terms("round")), Conflict)
    assert "must change" in ch.refused(SOUTH, counter_body("n1", v1, terms()), Conflict)
    assert "already accepted" in ch.refused(NORTH, accept_body("n1", v1), Conflict)
    ch.refused(SOUTH, accept_body("n2", v1), Conflict)  # no such negotiation
    ch.refused(SOUTH, accept_body("n1", b64e(sha256(b"nothing"))), Conflict)  # no such version
    ch.refused(SOUTH, counter_body("n1", b64e(sha256(b"nothing")), terms("round")), Conflict)
    ch.send(SOUTH, counter_body("n1", v1, terms("round")))
    # The same version a second time (same author, parent and terms) is refused.
    ch.refused(SOUTH, counter_body("n1", v1, terms("round")), Conflict)


def test_negotiations_on_one_channel_are_independent() -> None:
    ch = two_parties()
    ch.send(NORTH, propose_body("meeting-1", terms()))
    ch.send(SOUTH, propose_body("meeting-2", terms("round")))
    ch.send(SOUTH, accept_body("meeting-1", versions(ch, "meeting-1")[0]))
    assert ch.state.negotiations["meeting-1"].status == "agreed"
    assert ch.state.negotiations["meeting-2"].status == "open"


def test_record_from_a_non_member_is_rejected() -> None:
    ch = two_parties()
    with pytest.raises(RejectedInput) as info:
        ch.send(STRANGER, propose_body("n1", terms()))
    assert info.value.code is Code.NOT_A_MEMBER
    ch.refused(UN, propose_body("n1", terms()), RejectedInput)  # no facilitator on this channel


def test_talks_need_two_parties_and_a_separate_facilitator() -> None:
    with pytest.raises(LocalError):
        Talks.start({NORTH})
    with pytest.raises(LocalError):
        Talks.start({NORTH, SOUTH}, facilitator=NORTH)


# --- bodies ---------------------------------------------------------------------------------------

GOOD = propose_body("n1", terms())
GOOD_TERMS = GOOD["terms"]


ACCEPT = accept_body("n1", b64e(sha256(b"")))


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def _with_terms(**changes: Any) -> dict[str, Any]:
    return {**GOOD, "terms": {**GOOD_TERMS, **changes}}


BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("unknown type", {**GOOD, "type": "talks.shout"}),
    ("no type", _without(GOOD, "type")),
    ("unknown field", {**GOOD, "deadline": 1}),
    ("bad negotiation id", {**GOOD, "negotiation_id": "has space"}),
    ("missing preconditions", {**GOOD, "terms": _without(GOOD_TERMS, "preconditions")}),
    ("preconditions left empty", _with_terms(preconditions={})),
    ("preconditions none false", _with_terms(preconditions={"none": False})),
    ("preconditions both ways", _with_terms(preconditions={"none": True, "items": ["x"]})),
    ("preconditions no items", _with_terms(preconditions={"items": []})),
    ("float size", _with_terms(delegation_size={"max": 5.0})),
    ("bool size", _with_terms(delegation_size={"max": True})),
    ("string size", _with_terms(delegation_size={"max": "5"})),
    ("zero size", _with_terms(delegation_size={"max": 0})),
    ("no such day", _with_terms(date_options=[{"start": "2025-02-30"}])),
    ("not a date", _with_terms(date_options=[{"start": "next week"}])),
    ("datetime without offset", _with_terms(date_options=[{"start": "2025-03-01T10:00"}])),
    ("end before start", _with_terms(date_options=[{"start": "2025-03-02", "end": "2025-03-01"}])),
    (
        "mixed kinds",
        _with_terms(date_options=[{"start": "2025-03-01", "end": "2025-03-02T00:00Z"}]),
    ),
    ("null end", _with_terms(date_options=[{"start": "2025-03-01", "end": None}])),
    ("no dates", _with_terms(date_options=[])),
    ("no venues", _with_terms(venue_options=[])),
    ("same venue twice", _with_terms(venue_options=["Geneva", "Geneva"])),
    ("blank agenda item", _with_terms(agenda=["  "])),
    ("empty table", _with_terms(format={"table": "", "seating": "x"})),
    ("table not text", _with_terms(format={"table": 4, "seating": "x"})),
    ("huge agenda item", _with_terms(agenda=["x" * 2001])),
    ("accept a non-hash", {**ACCEPT, "version": "abc"}),
    ("accept with padding", {**ACCEPT, "version": b64e(sha256(b"")) + "="}),
    ("counter without parent", {**_without(GOOD, "type"), "type": "talks.counter"}),
]


def test_a_body_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(RejectedInput) as info:
        parse_body([GOOD])  # type: ignore[arg-type]
    assert info.value.code is Code.BAD_BODY


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_bad_bodies_are_rejected_and_change_nothing(case: str, body: dict[str, Any]) -> None:
    ch = two_parties()
    ch.send(NORTH, propose_body("n0", terms()))
    with pytest.raises(RejectedInput) as info:
        ch.send(SOUTH, body)
    assert info.value.code is Code.BAD_BODY


def test_good_body_round_trips_and_accepts_datetimes_with_offsets() -> None:
    body = _with_terms(
        date_options=[
            {"start": "2025-03-01T10:00:00+09:00", "end": "2025-03-01T16:00:00+09:00"},
            {"start": "2025-03-08T01:00Z"},
        ],
        preconditions={"items": ["release of detained fishermen"]},
    )
    record = parse_body(body)
    assert record.model_dump(mode="json", exclude_none=True) == body


def test_builders_refuse_bad_local_input_with_a_local_error() -> None:
    with pytest.raises(LocalError):
        propose_body("not an id!", terms())
    with pytest.raises(LocalError):
        accept_body("n1", "not-a-hash")
    with pytest.raises(LocalError):
        terms_from_json({**GOOD_TERMS, "preconditions": {}})
    assert terms_from_json(GOOD_TERMS) == terms()


def test_check_move_tells_the_operator_before_sending() -> None:
    ch = two_parties()
    ch.send(NORTH, propose_body("n1", terms()))
    v1 = versions(ch)[0]
    check_move(ch.state, SOUTH, accept_body("n1", v1))
    with pytest.raises(Conflict):
        check_move(ch.state, NORTH, accept_body("n1", v1))


def test_version_hash_is_sha256_of_the_canonical_version_document() -> None:
    small = MeetingTerms(
        date_options=(DateOption(start="2025-03-01"),),
        venue_options=("Panmunjom",),
        format=Format(table="round", seating="open"),
        delegation_size=DelegationSize(max=3),
        agenda=(),
        preconditions=NO_PRECONDITIONS,
    )
    # RFC 8785 by hand: keys sorted, no spaces.
    document = (
        '{"author":"station-north","negotiation_id":"n1","parent":null,"terms":{"agenda":[],'
        '"date_options":[{"start":"2025-03-01"}],"delegation_size":{"max":3},'
        '"format":{"seating":"open","table":"round"},"preconditions":{"none":true},'
        '"venue_options":["Panmunjom"]},"type":"talks.version"}'
    )
    expected = b64e(hashlib.sha256(document.encode()).digest())
    assert version_hash("n1", None, NORTH, small) == expected
    assert expected == "DKjJ7Ee38vMMMIgCZYAslW6Pwd5svGe0Uzb1mVvWXh0"
    assert version_hash("n1", None, SOUTH, small) != expected
    assert version_hash("n1", expected, NORTH, small) != expected


# --- diff -----------------------------------------------------------------------------------------


def test_diff_reports_each_changed_field() -> None:
    before = terms("square")
    after = terms(
        "round",
        delegation_size=DelegationSize(max=3),
        venue_options=("Panmunjom", "Ulaanbaatar"),
        preconditions=Preconditions(items=("halt to the exercise",)),
    )
    assert diff(before, after) == (
        Change("delegation_size.max", 5, 3),
        Change("format.table", "square", "round"),
        Change("preconditions.items", None, ["halt to the exercise"]),
        Change("preconditions.none", True, None),
        Change("venue_options[1]", "Geneva", "Ulaanbaatar"),
    )
    assert diff(before, before) == ()


def test_diff_of_lists_of_different_length_shows_the_whole_list() -> None:
    before = terms()
    after = terms(agenda=("talks about talks",))
    whole = Change("agenda", [*before.agenda], ["talks about talks"])
    assert diff(before, after) == (whole,)
    one_range = terms(date_options=(DateOption(start="2025-03-01", end="2025-03-02"),))
    assert diff(before, one_range) == (
        Change(
            "date_options",
            [{"start": "2025-03-01"}, {"start": "2025-03-08"}],
            [{"start": "2025-03-01", "end": "2025-03-02"}],
        ),
    )


# --- any sequence of moves keeps the invariants ---------------------------------------------------

TERMS = [terms("square"), terms("round"), terms("round", delegation_size=DelegationSize(max=2))]
IDS = ["n1", "n2"]

moves = st.lists(
    st.tuples(
        st.sampled_from(["propose", "counter", "counter", "withdraw", "accept", "accept", "junk"]),
        st.sampled_from([NORTH, SOUTH, NORTH, SOUTH, UN, STRANGER]),
        st.sampled_from(IDS),
        st.integers(0, 4),  # which known version (4: an unknown one)
        st.integers(0, len(TERMS) - 1),
    ),
    max_size=30,
)


def _body_for(state: Talks, move: tuple[str, str, str, int, int]) -> dict[str, Any]:
    kind, _, nid, which, t = move
    negotiation = state.negotiations.get(nid)
    known = list(negotiation.versions) if negotiation else []
    unknown = which == 4 or not known
    version = b64e(sha256(b"unknown")) if unknown else known[-1 - which % len(known)]
    if kind == "propose":
        return propose_body(nid, TERMS[t])
    if kind == "counter":
        return counter_body(nid, version, TERMS[t])
    if kind == "withdraw":
        return withdraw_body(nid, version)
    if kind == "accept":
        return accept_body(nid, version)
    return [{"type": "talks.accept"}, {**GOOD, "terms": {}}, {}][t]


def check_invariants(state: Talks) -> None:
    for nid, negotiation in state.negotiations.items():
        seen: list[str] = []
        parents: set[str] = set()
        for h, v in negotiation.versions.items():
            assert h == v.hash == version_hash(nid, v.parent, v.author, v.terms)
            assert (v.parent is None) == (not seen)  # the proposal first, then counters
            assert v.parent is None or v.parent in seen
            if v.parent is not None:
                parents.add(v.parent)
            assert set(v.acceptances) <= state.parties
            if v.author in state.parties:
                assert v.acceptances[v.author] == v.envelope_hash
            seen.append(h)
        for h, v in negotiation.versions.items():
            assert (v.status == "superseded") <= (h in parents)
            assert (v.status == "open") <= (h not in parents)
        made = [e for e in negotiation.log if e.action in ("propose", "counter")]
        assert [e.version for e in made] == seen
        agreement = negotiation.agreement
        if agreement is None:
            for v in negotiation.versions.values():
                assert not state.parties <= v.acceptances.keys()
        else:
            agreed = negotiation.versions[agreement.version]
            assert agreed.status == "open"
            assert dict(agreement.acceptances) == dict(agreed.acceptances)
            assert set(agreement.acceptances) == state.parties
            assert agreement.terms == agreed.terms


@settings(max_examples=300, deadline=None)
@given(moves, st.booleans(), st.sampled_from([NORTH, SOUTH, UN]))
def test_any_sequence_of_moves_keeps_the_invariants(
    sequence: list[tuple[str, str, str, int, int]], with_facilitator: bool, opener: str
) -> None:
    state = Talks.start({NORTH, SOUTH}, facilitator=UN if with_facilitator else None)
    for i, move in enumerate([("propose", opener, "n1", 0, 0), *sequence]):
        body = _body_for(state, move)
        agreed = {k: n for k, n in state.negotiations.items() if n.agreement is not None}
        with contextlib.suppress(RejectedInput, Conflict):  # anything else fails the test
            state = apply(state, Event(move[1], b64e(sha256(b"%d" % i)), i, body))
        check_invariants(state)
        for k, n in agreed.items():
            assert state.negotiations[k] == n  # an agreement is final
