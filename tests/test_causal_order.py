"""`channels.causal_order` is the order every member folds a channel in, so it must not change:
the heap-based version is checked against the plain rule it replaced (kept here as the
reference), on random histories including clock skew, gaps, references to seqs not held and
cycles no honest member makes. Plus the many-member case it was rewritten for."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.domain import channels
from parley.domain.channels import Event, causal_order, in_cut, order_key

SENDERS = ["sa", "sb", "sc", "sd"]


def reference_order(events: Iterable[Event]) -> list[Event]:
    """The rule as first written: rescan what is left for the first ready event each time."""
    pending = sorted(events, key=order_key)
    done: dict[str, int] = {}
    by_sender: dict[str, list[int]] = {}
    for e in pending:
        by_sender.setdefault(e.sender, []).append(e.seq)

    def ready(e: Event) -> bool:
        earlier = [q for q in by_sender[e.sender] if q < e.seq]
        if earlier and done.get(e.sender, 0) < max(earlier):
            return False
        for m, q in e.seen.items():
            need = [x for x in by_sender.get(m, []) if x <= q]
            if need and done.get(m, 0) < max(need):
                return False
        return True

    out: list[Event] = []
    while pending:
        pick = next((e for e in pending if ready(e)), pending[0])
        pending.remove(pick)
        out.append(pick)
        done[pick.sender] = max(done.get(pick.sender, 0), pick.seq)
    return out


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    events = []
    for sender in draw(st.lists(st.sampled_from(SENDERS), min_size=1, max_size=4, unique=True)):
        seqs = draw(st.lists(st.integers(1, 8), min_size=1, max_size=6, unique=True))
        for seq in seqs:
            seen = draw(st.dictionaries(st.sampled_from(SENDERS), st.integers(0, 9), max_size=4))
            ts = draw(st.integers(0, 20))  # skewed clocks: ts need not follow seq
            events.append(Event(sender, seq, ts, f"{sender}{seq}", {"type": "text"}, seen))
    return draw(st.permutations(events))


@settings(max_examples=400, deadline=None)
@given(histories())
def test_same_order_as_the_plain_rule(events: list[Event]) -> None:
    assert causal_order(events) == reference_order(events)


def opening(n: int) -> list[Event]:
    """A proposal to n members and every consent, each seeing every consent before it."""
    letters = "abcdefghijklmnopqrstuvwxyz234567"
    members = sorted("st" + letters[i // 32] * 22 + letters[i % 32] * 2 for i in range(n))
    body = channels.propose_body("facilitated", "many", members, facilitator=members[0])
    events = [Event(members[0], 1, 1, "p", body)]
    for i, m in enumerate(members[1:], start=1):
        seen = {x: 1 for x in members[:i]}
        events.append(Event(m, 1, 1 + i, f"c{i}", {"type": "channel.consent", "target": "p"}, seen))
    return events


def test_a_many_member_opening_orders_and_opens() -> None:
    events = opening(64)  # channels.MAX_MEMBERS
    assert causal_order(list(reversed(events))) == reference_order(events) == events
    state = channels.derive("ch", events)
    assert state is not None and state.is_open


def test_a_cut_covering_every_event_is_the_whole_state() -> None:
    events = opening(5)
    whole = channels.derive("ch", events)
    everything = {e.sender: e.seq for e in events}
    assert in_cut("ch", events, everything, whole) is whole
    # A cut that misses the last consent is judged by its own past, the whole state regardless.
    partial = {e.sender: e.seq for e in events[:-1]}
    past = in_cut("ch", events, partial, whole)
    assert past is not None and past.state == "proposed"
    assert past == in_cut("ch", events, partial)
