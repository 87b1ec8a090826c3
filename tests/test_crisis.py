"""Incident threads: bodies, the status table, the book, and the merged timeline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.domain.crisis import (
    KIND_LINK,
    KIND_OPEN,
    KIND_STATUS,
    TRANSITIONS,
    Incident,
    IncidentBook,
    IncidentStatus,
    Severity,
    TimelineItem,
    TranscriptEvent,
    link_body,
    open_body,
    parse_link,
    parse_open,
    parse_status,
    status_body,
    timeline,
)
from parley.domain.liveness import LinkChange, LinkState
from parley.errors import Code, Conflict, LocalError, RejectedInput
from parley.protocol.encoding import b64e


def h(n: int) -> str:
    """A distinct envelope hash for tests."""
    return b64e(bytes([n]) * 32)


INC = "inc-2024-07"
OPEN = open_body(INC, "Unannounced launch", Severity.HIGH, "Object tracked at 06:12 KST.")


def opened_book() -> tuple[IncidentBook, Incident]:
    book = IncidentBook()
    return book, book.apply(KIND_OPEN, OPEN, 1_000, h(1))


# --- bodies -------------------------------------------------------------------------------


def test_bodies_round_trip() -> None:
    assert parse_open(OPEN).severity is Severity.HIGH
    assert parse_status(status_body(INC, "contained", "Debris fell at sea.")).status is (
        IncidentStatus.CONTAINED
    )
    assert parse_link(link_body(INC, h(9))).ref == h(9)


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_open, {**OPEN, "severity": "apocalyptic"}),
        (parse_open, {**OPEN, "title": " "}),
        (parse_open, {**OPEN, "title": "x" * 201}),
        (parse_open, {**OPEN, "description": None}),
        (parse_open, {**OPEN, "incident_id": "no spaces"}),
        (parse_open, {**OPEN, "extra": 1}),
        (parse_open, "crisis"),
        (parse_status, {"incident_id": INC, "status": "resolved", "note": ""}),
        (parse_status, {"incident_id": INC, "status": "closed"}),
        (parse_link, {"incident_id": INC, "ref": "not-a-hash"}),
        (parse_link, {"incident_id": "", "ref": h(1)}),
    ],
)
def test_bad_bodies_are_rejected_as_bad_body(parse: object, body: object) -> None:
    with pytest.raises(RejectedInput) as err:
        parse(body)  # type: ignore[operator]
    assert err.value.code is Code.BAD_BODY


def test_building_a_bad_body_is_a_local_error() -> None:
    with pytest.raises(LocalError) as err:
        status_body(INC, "resolved", "")
    assert err.value.code is Code.INVALID_REQUEST


# --- status table -------------------------------------------------------------------------


def test_the_transition_table() -> None:
    s = IncidentStatus
    expected = {
        s.OPEN: {s.CONTAINED, s.CLOSED},
        s.CONTAINED: {s.OPEN, s.CLOSED},
        s.CLOSED: {s.OPEN},
    }
    assert expected == TRANSITIONS


def test_an_incident_can_be_contained_closed_and_reopened() -> None:
    book, incident = opened_book()
    for i, status in enumerate(["contained", "open", "closed", "open", "closed"]):
        book.apply(KIND_STATUS, status_body(INC, status, f"step {i}"), 2_000 + i, h(10 + i))
    assert incident.status is IncidentStatus.CLOSED
    assert [e.status for e in incident.history][-2:] == [IncidentStatus.OPEN, IncidentStatus.CLOSED]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [([], "open"), (["closed"], "closed"), (["closed"], "contained"), (["contained"], "contained")],
)
def test_illegal_moves_are_conflicts_and_change_nothing(path: list[str], illegal: str) -> None:
    book, incident = opened_book()
    for i, status in enumerate(path):
        book.apply(KIND_STATUS, status_body(INC, status, ""), 2_000 + i, h(10 + i))
    before = (incident.status, list(incident.history))
    with pytest.raises(Conflict) as err:
        book.apply(KIND_STATUS, status_body(INC, illegal, ""), 3_000, h(99))
    assert err.value.code is Code.CONFLICT
    assert (incident.status, incident.history) == before


@given(st.lists(st.sampled_from(list(IncidentStatus)), max_size=20))
def test_the_book_follows_the_table_exactly(moves: list[IncidentStatus]) -> None:
    book, incident = opened_book()
    for i, move in enumerate(moves):
        legal = move in TRANSITIONS[incident.status]
        before = incident.status
        try:
            book.apply(KIND_STATUS, status_body(INC, move, ""), 2_000 + i, h(2 + i))
        except Conflict:
            assert not legal and incident.status is before
        else:
            assert legal and incident.status is move


# --- book ---------------------------------------------------------------------------------


def test_the_same_envelope_twice_is_a_no_op() -> None:
    book, incident = opened_book()
    assert book.apply(KIND_OPEN, OPEN, 1_000, h(1)) is incident
    body = status_body(INC, "contained", "")
    book.apply(KIND_STATUS, body, 2_000, h(2))
    book.apply(KIND_STATUS, body, 2_000, h(2))
    assert len(incident.history) == 1


def test_contradictions_are_conflicts() -> None:
    book, _ = opened_book()
    with pytest.raises(Conflict):
        book.apply(KIND_OPEN, OPEN, 1_500, h(2))  # a second opening of the same incident
    with pytest.raises(Conflict):
        book.apply(KIND_STATUS, status_body("inc-x", "closed", ""), 2_000, h(3))
    with pytest.raises(Conflict):
        book.apply(KIND_LINK, link_body("inc-x", h(4)), 2_000, h(5))


def test_links_are_kept_once_even_after_closing() -> None:
    book, incident = opened_book()
    book.apply(KIND_STATUS, status_body(INC, "closed", ""), 2_000, h(2))
    book.apply(KIND_LINK, link_body(INC, h(7)), 3_000, h(3))
    book.apply(KIND_LINK, link_body(INC, h(7)), 4_000, h(4))
    assert incident.links == {h(7): 3_000}


def test_an_unknown_kind_is_a_local_error() -> None:
    with pytest.raises(LocalError):
        IncidentBook().apply("crisis.delete", {}, 0, h(1))


# --- timeline -----------------------------------------------------------------------------


def test_timeline_merges_thread_events_and_link_changes_in_order() -> None:
    book, incident = opened_book()
    notice, ack, unrelated, message = h(20), h(21), h(22), h(23)
    book.apply(KIND_LINK, link_body(INC, notice), 1_100, h(2))
    book.apply(KIND_LINK, link_body(INC, message), 1_100, h(3))
    book.apply(KIND_STATUS, status_body(INC, "contained", "Debris at sea"), 5_000, h(4))
    book.apply(KIND_STATUS, status_body(INC, "closed", ""), 9_000, h(5))
    events = [
        TranscriptEvent(4_000, "ack", ack, "acknowledged by Lt. Park", about=notice),
        TranscriptEvent(900, "notice", notice, "launch notice"),
        TranscriptEvent(3_000, "message", unrelated, "weather report"),
        TranscriptEvent(2_000, "message", message, "request for explanation"),
    ]
    links = [
        LinkChange(LinkState.UP, LinkState.DOWN, 500, "4 heartbeats missed", "peer-b"),
        LinkChange(LinkState.UP, LinkState.DOWN, 3_000, "4 heartbeats missed", "peer-b"),
        LinkChange(LinkState.DOWN, LinkState.UP, 9_500, "heartbeats arrive", "peer-b"),
    ]
    items = timeline(incident, events, links)
    assert items == [
        TimelineItem(900, "notice", "launch notice", notice),
        TimelineItem(1_000, KIND_OPEN, "opened [high] Unannounced launch", h(1)),
        TimelineItem(2_000, "message", "request for explanation", message),
        TimelineItem(3_000, "link", "link peer-b: up → down (4 heartbeats missed)", None),
        TimelineItem(4_000, "ack", "acknowledged by Lt. Park", ack),
        TimelineItem(5_000, KIND_STATUS, "contained: Debris at sea", h(4)),
        TimelineItem(9_000, KIND_STATUS, "closed", h(5)),
    ]


def test_an_open_incident_takes_every_later_link_change() -> None:
    _, incident = opened_book()
    change = LinkChange(LinkState.UP, LinkState.DEGRADED, 10**9, "2 heartbeats missed")
    assert timeline(incident, [], [change])[-1] == TimelineItem(
        10**9, "link", "link: up → degraded (2 heartbeats missed)", None
    )


@given(st.permutations(list(range(6))))
def test_timeline_order_does_not_depend_on_input_order(order: list[int]) -> None:
    _, incident = opened_book()
    incident.links.update({h(30 + i): 0 for i in range(6)})
    events = [TranscriptEvent(1_000 + i // 2, "message", h(30 + i), f"m{i}") for i in range(6)]
    shuffled = [events[i] for i in order]
    assert timeline(incident, shuffled, []) == timeline(incident, events, [])
