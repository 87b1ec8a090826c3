"""The channel lifecycle as a table (domain/channels.py `TRANSITIONS`): every (state, event) pair
is tried on a real ChannelState, and the answer is this file's own copy of the table in the
module docstring, so a change to one without the other fails here."""

from __future__ import annotations

from typing import Any

import pytest

from parley.domain import channels as c
from parley.domain.channels import ChannelState, Event
from parley.errors import Conflict

A, B, C, STRANGER = ("st" + ch * 24 for ch in "abcx")
MEMBERS = [A, B, C]

# (state, event) -> next state; every pair not listed is refused. Written from the docstring.
EXPECTED: dict[tuple[str, str], str] = {
    ("new", "propose"): "proposed",
    ("proposed", "consent"): "proposed",
    ("proposed", "last_consent"): "open",
    ("proposed", "close"): "closed",
    ("open", "suspend"): "suspended",
    ("open", "close"): "closed",
    ("suspended", "reopen"): "reopening",
    ("suspended", "close"): "closed",
    ("reopening", "consent"): "reopening",
    ("reopening", "last_consent"): "open",
    ("reopening", "close"): "closed",
}


def ev(sender: str, kind: str, seq: int, **fields: Any) -> Event:
    body: dict[str, Any] = {"type": f"channel.{kind}", **fields}
    if kind == "propose":
        body = c.propose_body("hotline", "the line", MEMBERS)
    return Event(sender, seq, 1000 + seq, f"h{seq}", body)


def run(*steps: tuple[str, str]) -> ChannelState | None:
    """The state after these (sender, kind) steps; each consent answers what is pending."""
    state: ChannelState | None = None
    for seq, (who, kind) in enumerate(steps, start=1):
        target = {"target": state.pending} if kind == "consent" and state else {}
        state = c.apply(state, ev(who, kind, seq, **target), "ch")
    return state


PROPOSED = [(A, "propose")]
OPENED = [*PROPOSED, (B, "consent"), (C, "consent")]
SUSPENDED = [*OPENED, (B, "suspend")]
REOPENING = [*SUSPENDED, (B, "reopen")]
# For each (state, event): the steps that lead to that state, and who sends the event. A
# `consent` leaves a member still to consent; a `last_consent` completes the set.
SETUP: dict[str, dict[str, tuple[list[tuple[str, str]], str]]] = {
    "new": {e: ([], A) for e in c.EVENTS},
    "proposed": {
        **{e: (PROPOSED, B) for e in c.EVENTS},
        "last_consent": ([*PROPOSED, (B, "consent")], C),
    },
    "open": {e: (OPENED, A) for e in c.EVENTS},
    "suspended": {e: (SUSPENDED, A) for e in c.EVENTS},
    "reopening": {
        **{e: (REOPENING, A) for e in c.EVENTS},
        "last_consent": ([*REOPENING, (A, "consent")], C),
    },
    "closed": {e: ([*OPENED, (C, "close")], A) for e in c.EVENTS},
}


def test_the_table_is_the_documented_one() -> None:
    table = {(s, e): after for s, moves in c.TRANSITIONS.items() for e, after in moves.items()}
    assert table == EXPECTED
    assert set(c.TRANSITIONS) == set(c.STATES)


@pytest.mark.parametrize("state", c.STATES)
@pytest.mark.parametrize("event", c.EVENTS)
def test_every_state_and_event(state: str, event: str) -> None:
    steps, who = SETUP[state][event]
    before = run(*steps)
    assert (before.state if before else "new") == state
    kind = "consent" if event == "last_consent" else event
    target = {"target": before.pending or "h-none"} if kind == "consent" and before else {}
    move = ev(who, kind, len(steps) + 1, **target)
    if before is not None:  # with no question pending, every consent is just `consent`
        awaits = bool(before.pending) or event != "last_consent"
        assert c.event_of(before, move) == (event if awaits else "consent")
    want = EXPECTED.get((state, event))
    if want is None:
        with pytest.raises(Conflict):
            c.apply(before, move, "ch")
        return
    after = c.apply(before, move, "ch")
    assert after.state == want
    label = {"propose": "proposed", "last_consent": "opened"}.get(event, kind)
    assert after.history[-1][1:] == (who, label)
    # What the move records beside the state: the question awaiting consent, and who consented.
    if want in ("open", "closed"):
        assert after.pending == ""
    if event == "propose" or event == "reopen":
        assert after.pending == move.hash and after.consents == {who}
    if event in ("consent", "last_consent"):
        assert before is not None and after.consents == before.consents | {who}


@pytest.mark.parametrize("state", ["proposed", "open", "suspended", "reopening", "closed"])
def test_only_members_move_a_channel(state: str) -> None:
    steps, _ = SETUP[state]["close"]
    before = run(*steps)
    for kind in ("consent", "suspend", "reopen", "close"):
        target = {"target": before.pending} if kind == "consent" and before else {}
        with pytest.raises(Conflict, match="only members"):
            c.apply(before, ev(STRANGER, kind, 99, **target), "ch")


def test_a_consent_answers_only_the_pending_question() -> None:
    for steps in (PROPOSED, REOPENING):
        before = run(*steps)
        assert before is not None
        with pytest.raises(Conflict, match="nothing awaits"):
            c.apply(before, ev(C, "consent", 50, target="h-other"), "ch")
    # The proposal's hash does not answer a later reopen.
    reopening = run(*REOPENING)
    assert reopening is not None
    with pytest.raises(Conflict):
        c.apply(reopening, ev(C, "consent", 51, target="h1"), "ch")


def test_malformed_moves_are_refused() -> None:
    with pytest.raises(Conflict, match="proposer must be a member"):
        c.apply(None, ev(STRANGER, "propose", 1), "ch")
    with pytest.raises(Conflict, match="not a channel control message"):
        c.apply(run(*OPENED), ev(A, "last_consent", 9), "ch")
    with pytest.raises(Conflict, match="not a channel control message"):
        c.apply(run(*OPENED), Event(A, 9, 9, "h9", {"type": "channel.destroy"}), "ch")


def test_derive_ignores_illegal_moves_alike_everywhere() -> None:
    events = [ev(A, "propose", 1), ev(B, "suspend", 1), ev(B, "consent", 2, target="h1")]
    events.append(ev(C, "consent", 1, target="h1"))
    state = c.derive("ch", events)
    assert state is not None and state.state == "open"  # the early suspend was ignored
