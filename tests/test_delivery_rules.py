"""The delivery machine (protocol/delivery.py), one case per row of RULES and then some: every
row is reached, the first matching row decides, and the held-aside rules.

Facts are written out by hand (no sealing): the rules read only the envelope's header fields,
whose signature the station has checked before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import Code
from parley.protocol.delivery import (
    RULES,
    Admission,
    ChainHead,
    ChainState,
    Decision,
    Effect,
    Facts,
    HoldLimits,
    Verdict,
    admit_hold,
    decide,
    lookups,
    ready,
    stays_held,
)
from parley.protocol.envelope import Ref

ME, A, C = "stme", "sta", "stc"  # the receiver, the sender, a third member
NOW, SKEW = 10_000_000, 300_000


def h(n: int) -> bytes:
    return bytes([n]) * 32


def facts(seq: int = 4, **kw: object) -> Facts:
    base = Facts(A, seq, h(seq - 1), h(seq), NOW - 1000, frozenset({ME, C}), {})
    return replace(base, **kw)  # type: ignore[arg-type]


# The receiver holds A's chain to seq 3 (hashes h(1)..h(3), head ts NOW - 2000), its own to 5,
# and C's to 2.
HEADS = {
    A: ChainHead(3, h(3), NOW - 2000),
    ME: ChainHead(5, h(105), NOW - 3000),
    C: ChainHead(2, h(202), NOW - 4000),
}
OLDER = {(A, 1): h(1), (A, 2): h(2), (ME, 1): h(101), (ME, 2): h(102), (ME, 3): h(103),
         (ME, 4): h(104)}  # fmt: skip
MEMBERS = frozenset({ME, A, C})


def state(members: frozenset[str] | None = MEMBERS, drop: tuple[str, ...] = ()) -> ChainState:
    """What the receiver holds, less the chains in `drop` (nothing for an unknown channel)."""
    hs = {k: v for k, v in HEADS.items() if k not in drop} if members is not None else {}
    return ChainState(ME, members, hs, OLDER)


def run(f: Facts, s: ChainState) -> Decision:
    return decide(f, s, now_ms=NOW, skew_ms=SKEW)


# (row, facts, state, verdict, code, effects, expected_seq)
CASES: list[tuple[str, Facts, ChainState, Verdict, Code | None, set[Effect], int]] = [
    ("later_of_unknown", facts(seq=7), state(None), Verdict.GAP, Code.UNKNOWN_CHANNEL,
     {Effect.REREQUEST}, 1),
    ("not_a_member", facts(sender="stx", recipients=frozenset({ME, A, C})), state(),
     Verdict.REJECT, Code.NOT_A_MEMBER, set(), 0),
    ("wrong_recipients", facts(recipients=frozenset({ME})), state(), Verdict.REJECT,
     Code.NOT_A_MEMBER, set(), 0),
    ("seen_stranger", facts(seen={"stx": Ref(1, h(1))}), state(), Verdict.REJECT,
     Code.NOT_A_MEMBER, set(), 0),
    ("future", facts(ts=NOW + SKEW + 1), state(), Verdict.REJECT, Code.CLOCK_SKEW, set(), 0),
    ("duplicate", facts(seq=2, hash=h(2)), state(), Verdict.DUPLICATE, None,
     {Effect.RECEIPT}, 0),
    ("duplicate", facts(seq=3, hash=h(3)), state(), Verdict.DUPLICATE, None,
     {Effect.RECEIPT}, 0),
    ("fork", facts(seq=2, hash=h(99)), state(), Verdict.EQUIVOCATION, Code.EQUIVOCATION,
     {Effect.EVIDENCE, Effect.ALARM}, 0),
    ("fork", facts(seq=3, hash=h(99)), state(), Verdict.EQUIVOCATION, Code.EQUIVOCATION,
     {Effect.EVIDENCE, Effect.ALARM}, 0),
    ("ahead", facts(seq=6), state(), Verdict.GAP, Code.GAP, {Effect.HOLD, Effect.REREQUEST}, 4),
    ("ahead", facts(seq=2), state(drop=(A,)), Verdict.GAP, Code.GAP,
     {Effect.HOLD, Effect.REREQUEST}, 1),
    ("fork_prev", facts(prev=h(98)), state(), Verdict.EQUIVOCATION, Code.EQUIVOCATION,
     {Effect.EVIDENCE, Effect.ALARM}, 0),
    ("time_backwards", facts(ts=NOW - 2001), state(), Verdict.REJECT, Code.TIMESTAMP_ORDER,
     set(), 0),
    ("seen_unsent", facts(seen={ME: Ref(6, h(106))}), state(), Verdict.REJECT,
     Code.BROKEN_CHAIN, set(), 0),
    ("seen_unsent", facts(seen={ME: Ref(4, h(77))}), state(), Verdict.REJECT,
     Code.BROKEN_CHAIN, set(), 0),
    ("seen_unsent", facts(seen={ME: Ref(1, h(101))}), state(drop=(ME,)), Verdict.REJECT,
     Code.BROKEN_CHAIN, set(), 0),
    ("seen_ahead", facts(seen={C: Ref(3, h(203))}), state(), Verdict.WAIT, Code.GAP,
     {Effect.HOLD}, 4),
    ("seen_ahead", facts(seq=1, prev=bytes(32), seen={C: Ref(1, h(201))}),
     state(drop=(A, C)), Verdict.WAIT, Code.GAP, {Effect.HOLD}, 1),
    ("next", facts(), state(), Verdict.ACCEPT, None, {Effect.STORE, Effect.RECEIPT}, 0),
    ("next", facts(seen={ME: Ref(4, h(104)), C: Ref(2, h(202))}), state(), Verdict.ACCEPT,
     None, {Effect.STORE, Effect.RECEIPT}, 0),
    ("next", facts(ts=NOW - 2000), state(), Verdict.ACCEPT, None,
     {Effect.STORE, Effect.RECEIPT}, 0),  # same ts as its predecessor: fine
    ("next", facts(ts=NOW + SKEW), state(), Verdict.ACCEPT, None,
     {Effect.STORE, Effect.RECEIPT}, 0),  # at the edge of the skew window
    ("next", facts(seq=1, prev=bytes(32), ts=0), state(None), Verdict.ACCEPT, None,
     {Effect.STORE, Effect.RECEIPT}, 0),  # an unknown channel's first envelope; old is fine
]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "f", "s", "verdict", "code", "effects", "expected"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_row(
    row: str, f: Facts, s: ChainState, verdict: Verdict, code: Code | None,
    effects: set[Effect], expected: int,
) -> None:  # fmt: skip
    d = run(f, s)
    assert (d.rule, d.verdict, d.code, set(d.effects), d.expected_seq) == (
        row, verdict, code, effects, expected,
    )  # fmt: skip
    assert d.reason or d.verdict in (Verdict.ACCEPT, Verdict.DUPLICATE)


def test_every_row_has_a_case_and_the_last_always_holds() -> None:
    assert {c[0] for c in CASES} == {r.name for r in RULES}
    assert RULES[-1].name == "next"


def test_rows_are_named_in_the_docs() -> None:
    """docs/protocol.md §6 lists the same rows, in the same order, as RULES."""
    doc = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text()
    section = doc[doc.index("## 6. Receiving") : doc.index("## 7. Error codes")]
    names = [r.name for r in RULES]
    found = [n for n in names if f"`{n}`" in section]
    assert found == names
    assert sorted(names, key=lambda n: section.index(f"`{n}`")) == names


def test_first_matching_row_decides() -> None:
    # From the future and a duplicate: clock_skew is checked first.
    assert run(facts(seq=3, hash=h(3), ts=NOW + SKEW + 5), state()).rule == "future"
    # Ahead of its chain and naming an unsent envelope of ours: gap first (nothing is read of
    # an envelope that is not next).
    assert run(facts(seq=9, seen={ME: Ref(9, h(9))}), state()).rule == "ahead"
    # A forked prev and time going backwards: equivocation is the graver finding.
    assert run(facts(prev=h(98), ts=0), state()).rule == "fork_prev"
    # broken_chain before wait.
    bad = {ME: Ref(9, h(9)), C: Ref(9, h(9))}
    assert run(facts(seen=bad), state()).rule == "seen_unsent"
    # A non-member sending into an unknown channel at seq 2: the gap answer names nothing held.
    assert run(facts(seq=2, sender="stx"), state(None)).rule == "later_of_unknown"


def test_wait_names_the_awaited_member_and_expects_its_own_seq() -> None:
    d = run(facts(seen={C: Ref(5, h(205))}), state())
    assert d.expected_seq == 4 == facts().seq
    assert C in d.reason and "seq 5" in d.reason


def test_a_decision_reads_only_the_hashes_lookups_names() -> None:
    f = facts(seq=2, hash=h(2), seen={ME: Ref(3, h(103))})
    assert sorted(lookups(f, ME, HEADS)) == [(A, 2), (ME, 3)]
    # The head's own hash needs no lookup; nothing is read beyond a head.
    assert lookups(facts(seq=3, seen={ME: Ref(5, h(105))}), ME, HEADS) == []
    assert lookups(facts(seq=9, seen={ME: Ref(9, h(1))}), ME, HEADS) == []
    with pytest.raises(KeyError):  # a hash the caller was not asked for is never guessed
        run(f, ChainState(ME, MEMBERS, HEADS, {}))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 8), st.integers(0, 6), st.integers(0, 4), st.booleans(), st.booleans(),
    st.integers(-2, 2),
)  # fmt: skip
def test_decisions_are_total_and_consistent(
    seq: int, top: int, seen_c: int, same_hash: bool, good_prev: bool, dt: int
) -> None:
    """Any envelope against any held state gets exactly one decision; only the next seq is
    stored; a stored or duplicate one is receipted; gap and wait expect head + 1."""
    heads = dict(HEADS)
    if top:
        heads[A] = ChainHead(top, h(top), NOW - 2000)
    else:
        heads.pop(A)
    older = {(A, q): h(q) for q in range(1, top)} | OLDER
    f = Facts(
        A, seq, h(seq - 1) if good_prev else h(97), h(seq) if same_hash else h(96),
        NOW - 2000 + dt * 1000, frozenset({ME, C}), {C: Ref(seen_c, h(200 + seen_c))} if seen_c
        else {},
    )  # fmt: skip
    if seq == 1 and good_prev:
        f = replace(f, prev=h(0))
    d = decide(f, ChainState(ME, MEMBERS, heads, older), now_ms=NOW, skew_ms=SKEW)
    if Effect.STORE in d.effects:
        assert seq == top + 1 and d.verdict is Verdict.ACCEPT
    if seq > top + 1:
        assert d.verdict is Verdict.GAP and d.expected_seq == top + 1
    if seq <= top:
        assert d.verdict is (Verdict.DUPLICATE if same_hash else Verdict.EQUIVOCATION)
    if d.verdict in (Verdict.ACCEPT, Verdict.DUPLICATE):
        assert Effect.RECEIPT in d.effects
    if d.verdict is Verdict.WAIT:
        assert d.expected_seq == seq == top + 1 and seen_c > 2


# --- held aside ----------------------------------------------------------------------------------
LIM = HoldLimits(per_peer=10, bytes_per_peer=1000)


@pytest.mark.parametrize(
    ("count", "size", "incoming", "alarmed", "answer"),
    [
        (0, 0, 100, False, Admission(keep=True, alarm=False, rearm=True)),
        (4, 499, 100, True, Admission(keep=True, alarm=False, rearm=True)),
        (5, 100, 100, True, Admission(keep=True, alarm=False, rearm=False)),  # not well below
        (1, 500, 100, True, Admission(keep=True, alarm=False, rearm=False)),
        (9, 0, 1, False, Admission(keep=True, alarm=False, rearm=False)),  # the last place
        (10, 0, 1, False, Admission(keep=False, alarm=True, rearm=False)),  # count bound
        (10, 0, 1, True, Admission(keep=False, alarm=False, rearm=False)),  # alarmed once
        (0, 901, 100, False, Admission(keep=False, alarm=True, rearm=False)),  # byte bound
        (0, 900, 100, False, Admission(keep=True, alarm=False, rearm=False)),
    ],
)
def test_admit_hold(count: int, size: int, incoming: int, alarmed: bool, answer: Admission) -> None:
    assert admit_hold(count, size, incoming, LIM, alarmed) == answer


def test_ready_offers_what_is_at_most_one_past_its_head() -> None:
    held = [(A, 2), (A, 4), (A, 5), (C, 1), (C, 9)]
    assert ready(held, {A: 3}) == [(A, 2), (A, 4), (C, 1)]
    assert ready([], {A: 3}) == []


def test_what_stays_held() -> None:
    assert stays_held(run(facts(seen={C: Ref(3, h(203))}), state()))  # still waiting
    assert stays_held(run(facts(seq=6), state()))  # still ahead
    assert not stays_held(run(facts(), state()))  # applied
    assert not stays_held(run(facts(seq=2, hash=h(2)), state()))  # already held
    assert not stays_held(run(facts(seq=2, hash=h(9)), state()))  # evidence instead
    assert not stays_held(None)  # refused by a later check
