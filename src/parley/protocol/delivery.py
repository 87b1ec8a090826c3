"""The delivery machine: what a receiver does with one signature-verified envelope, given what it
holds of the channel and the time. Sans-I/O: the caller (station/receiving.py) reads the chain
state, calls `decide`, and applies the effects the decision names; nothing here touches a store.

Everything that decides delivery lives in this file (as h11 keeps its state machine in one):
`RULES` is the table, checked top to bottom, the first matching row deciding (docs/protocol.md §6):

    row              condition                        verdict       code             effects
    later_of_unknown channel unknown here, seq != 1   gap           unknown_channel  rerequest
    not_a_member     sender not a member              rejected      not_a_member     -
    wrong_recipients recipients + sender != members   rejected      not_a_member     -
    seen_stranger    `seen` names a non-member        rejected      not_a_member     -
    future           ts > now + skew                  rejected      clock_skew       -
    duplicate        seq <= head, same hash as held   duplicate     -                receipt
    fork             seq <= head, another hash        equivocation  equivocation     evidence alarm
    ahead            seq > head + 1                   gap           gap              hold rerequest
    fork_prev        prev != head hash                equivocation  equivocation     evidence alarm
    time_backwards   ts < head ts                     rejected      timestamp_order  -
    seen_unsent      `seen` names an envelope of      rejected      broken_chain     -
                     ours that we never sent
    seen_ahead       `seen` names a third member's    wait          gap              hold
                     seq beyond what we hold of it
    next             otherwise (seq = head + 1)       accepted      -                store receipt

`expected_seq` of a gap or wait is the seq the receiver expects next from that sender: its held
head + 1 (1 for a channel it does not have). For `wait` that is the envelope's own seq (a wait
envelope is always the next of its chain); what it waits for is named in the message.

Then two small rules about envelopes held aside (`admit_hold`, `ready`): a peer may keep at most
`held_per_peer` envelopes and `held_bytes_per_peer` bytes held over all channels (beyond them the
envelope is not kept and one alarm is raised until the peer is below half of both again), and a
held envelope is offered again once it is at most one past its chain's head.

Old timestamps are not rejected: a message queued while a link was down, or carried by courier,
is legitimately late; freshness of live traffic is enforced on the signed transport request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from parley.errors import Code
from parley.protocol.envelope import Envelope, Ref

# Clocks of two stations may differ this much before an envelope counts as "from the future".
DEFAULT_SKEW_MS = 5 * 60 * 1000


class Verdict(StrEnum):
    """The per-envelope result status, as it is on the wire (§9.2)."""

    ACCEPT = "accepted"
    DUPLICATE = "duplicate"
    EQUIVOCATION = "equivocation"
    GAP = "gap"
    WAIT = "wait"
    REJECT = "rejected"


class Effect(Enum):
    """What the station does for a decision (station/receiving.py applies each)."""

    STORE = "store"  # open, check and store the body (§6 steps 9–14); a refusal there rejects
    RECEIPT = "receipt"  # the chain counts as touched: a receipt covers its held head
    HOLD = "hold"  # keep the envelope aside until its predecessors are here (admit_hold)
    REREQUEST = "rerequest"  # the answer names expected_seq; the sender re-sends from there
    EVIDENCE = "evidence"  # keep the envelope beside the one held at its seq
    ALARM = "alarm"  # a critical alarm, once per piece of evidence


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: bytes
    ts: int


@dataclass(frozen=True)
class Facts:
    """What the rules read of one envelope whose signature the caller has verified."""

    sender: str
    seq: int
    prev: bytes
    hash: bytes
    ts: int
    recipients: frozenset[str]
    seen: Mapping[str, Ref]

    @classmethod
    def of(cls, env: Envelope) -> Facts:
        return cls(env.sender, env.seq, env.prev, env.hash, env.ts, env.recipients, env.seen)


@dataclass(frozen=True)
class ChainState:
    """What the receiver holds of one channel, as much as one decision reads.

    `members` is None when the receiver has no such channel. `heads` has the held head of every
    member chain that has one. `hashes` holds the older hashes `lookups` names (None: not held):
    a decision never reads a hash the caller was not asked for.
    """

    me: str
    members: frozenset[str] | None
    heads: Mapping[str, ChainHead]
    hashes: Mapping[tuple[str, int], bytes | None] = field(default_factory=dict)

    def top(self, station: str) -> int:
        head = self.heads.get(station)
        return head.seq if head else 0

    def hash_at(self, station: str, seq: int) -> bytes | None:
        head = self.heads.get(station)
        if head is None or not 1 <= seq <= head.seq:
            return None
        if seq == head.seq:
            return head.hash
        return self.hashes[(station, seq)]


def lookups(facts: Facts, me: str, heads: Mapping[str, ChainHead]) -> list[tuple[str, int]]:
    """The held hashes below a chain head that `decide` reads for this envelope: the sender's
    envelope at the same seq (a re-sent or forked one), and our own envelope its `seen` names."""
    out = []
    own = facts.seen.get(me)
    for station, seq in ((facts.sender, facts.seq), (me, own.seq if own else 0)):
        head = heads.get(station)
        if head is not None and 1 <= seq < head.seq:
            out.append((station, seq))
    return out


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    code: Code | None = None
    reason: str = ""
    expected_seq: int = 0  # gap and wait: the seq the receiver expects next from the sender
    effects: frozenset[Effect] = frozenset()
    rule: str = ""  # the RULES row that decided


@dataclass(frozen=True)
class Case:
    """One decision's inputs."""

    facts: Facts
    state: ChainState
    now_ms: int
    skew_ms: int

    @property
    def members(self) -> frozenset[str]:
        # An unknown channel's members are those its first envelope names (§6 step 6).
        if self.state.members is None:
            return self.facts.recipients | {self.facts.sender}
        return self.state.members


Test = Callable[[Case], str | None]
"""A row's condition: the reason (for people) when it holds, None when it does not."""


@dataclass(frozen=True)
class Rule:
    name: str
    test: Test
    verdict: Verdict
    code: Code | None
    effects: frozenset[Effect]


def _later_of_unknown(c: Case) -> str | None:
    if c.state.members is None and c.facts.seq != 1:
        return "this station has no such channel; send its chain from seq 1"
    return None


def _not_a_member(c: Case) -> str | None:
    if c.facts.sender not in c.members:
        return f"{c.facts.sender} is not a member of the channel"
    return None


def _wrong_recipients(c: Case) -> str | None:
    if c.facts.recipients | {c.facts.sender} != c.members:
        return "the envelope's recipients are not the members"
    return None


def _seen_stranger(c: Case) -> str | None:
    # A reference to a station that is not on the channel could never be satisfied, and would
    # hold the envelope forever.
    strangers = sorted(set(c.facts.seen) - c.members)
    if strangers:
        return f"seen names {', '.join(strangers)}, not a member of the channel"
    return None


def _future(c: Case) -> str | None:
    ahead = c.facts.ts - c.now_ms
    if ahead > c.skew_ms:
        return f"envelope time is {ahead} ms in the future (allowed {c.skew_ms} ms)"
    return None


def _duplicate(c: Case) -> str | None:
    f = c.facts
    if f.seq <= c.state.top(f.sender) and c.state.hash_at(f.sender, f.seq) == f.hash:
        return "already held"
    return None


def _fork(c: Case) -> str | None:
    if c.facts.seq <= c.state.top(c.facts.sender):  # and not the same hash: _duplicate ran first
        return f"{c.facts.sender} signed two different envelopes for seq {c.facts.seq}"
    return None


def _ahead(c: Case) -> str | None:
    top = c.state.top(c.facts.sender)
    if c.facts.seq > top + 1:
        return f"expected seq {top + 1} before seq {c.facts.seq}"
    return None


def _fork_prev(c: Case) -> str | None:
    head = c.state.heads.get(c.facts.sender)
    if head is not None and c.facts.prev != head.hash:
        return f"seq {c.facts.seq} links to a seq {head.seq} other than the one we hold"
    return None


def _time_backwards(c: Case) -> str | None:
    head = c.state.heads.get(c.facts.sender)
    if head is not None and c.facts.ts < head.ts:
        return "envelope time is earlier than its predecessor"
    return None


def _seen_unsent(c: Case) -> str | None:
    ref = c.facts.seen.get(c.state.me)
    if ref is not None and c.state.hash_at(c.state.me, ref.seq) != ref.hash:
        return f"it claims to have seen our seq {ref.seq}, which we did not send"
    return None


def _seen_ahead(c: Case) -> str | None:
    for member, ref in sorted(c.facts.seen.items()):
        if member != c.state.me and ref.seq > c.state.top(member):
            return f"waits for {member} seq {ref.seq}"
    return None


def _always(c: Case) -> str | None:
    return ""


E = Effect
RULES: tuple[Rule, ...] = (
    Rule("later_of_unknown", _later_of_unknown, Verdict.GAP, Code.UNKNOWN_CHANNEL,
         frozenset({E.REREQUEST})),
    Rule("not_a_member", _not_a_member, Verdict.REJECT, Code.NOT_A_MEMBER, frozenset()),
    Rule("wrong_recipients", _wrong_recipients, Verdict.REJECT, Code.NOT_A_MEMBER, frozenset()),
    Rule("seen_stranger", _seen_stranger, Verdict.REJECT, Code.NOT_A_MEMBER, frozenset()),
    Rule("future", _future, Verdict.REJECT, Code.CLOCK_SKEW, frozenset()),
    Rule("duplicate", _duplicate, Verdict.DUPLICATE, None, frozenset({E.RECEIPT})),
    Rule("fork", _fork, Verdict.EQUIVOCATION, Code.EQUIVOCATION, frozenset({E.EVIDENCE, E.ALARM})),
    Rule("ahead", _ahead, Verdict.GAP, Code.GAP, frozenset({E.HOLD, E.REREQUEST})),
    Rule("fork_prev", _fork_prev, Verdict.EQUIVOCATION, Code.EQUIVOCATION,
         frozenset({E.EVIDENCE, E.ALARM})),
    Rule("time_backwards", _time_backwards, Verdict.REJECT, Code.TIMESTAMP_ORDER, frozenset()),
    Rule("seen_unsent", _seen_unsent, Verdict.REJECT, Code.BROKEN_CHAIN, frozenset()),
    Rule("seen_ahead", _seen_ahead, Verdict.WAIT, Code.GAP, frozenset({E.HOLD})),
    Rule("next", _always, Verdict.ACCEPT, None, frozenset({E.STORE, E.RECEIPT})),
)  # fmt: skip


def decide(
    facts: Facts, state: ChainState, *, now_ms: int, skew_ms: int = DEFAULT_SKEW_MS
) -> Decision:
    """The first row of RULES whose condition holds decides."""
    case = Case(facts, state, now_ms, skew_ms)
    for rule in RULES:
        reason = rule.test(case)
        if reason is None:
            continue
        expected = 0
        if rule.verdict in (Verdict.GAP, Verdict.WAIT):
            expected = state.top(facts.sender) + 1 if state.members is not None else 1
        return Decision(rule.verdict, rule.code, reason, expected, rule.effects, rule.name)
    raise AssertionError("the last row of RULES always holds")


# --- envelopes held aside ------------------------------------------------------------------------
@dataclass(frozen=True)
class HoldLimits:
    per_peer: int
    bytes_per_peer: int


@dataclass(frozen=True)
class Admission:
    keep: bool  # store it among the held
    alarm: bool  # raise the held_limit alarm (the peer was not yet alarmed)
    rearm: bool  # the peer is well below the bound: the next overflow alarms anew


def admit_hold(
    count: int, size: int, incoming: int, limits: HoldLimits, alarmed: bool
) -> Admission:
    """Whether to keep one more envelope of `incoming` bytes from a peer that has `count`
    envelopes of `size` bytes held over all channels."""
    if count + 1 > limits.per_peer or size + incoming > limits.bytes_per_peer:
        return Admission(keep=False, alarm=not alarmed, rearm=False)
    well_below = 2 * count < limits.per_peer and 2 * size < limits.bytes_per_peer
    return Admission(keep=True, alarm=False, rearm=well_below)


def ready(held: Iterable[tuple[str, int]], tops: Mapping[str, int]) -> list[tuple[str, int]]:
    """The held (sender, seq) to offer again: at most one past the held head of their chain (an
    older one is offered too, and answered duplicate or equivocation, which ends its hold)."""
    return [(s, q) for s, q in held if q <= tops.get(s, 0) + 1]


def stays_held(d: Decision | None) -> bool:
    """Whether an envelope offered again from the hold stays there (None: it was refused by a
    check outside these rules, which ends its hold)."""
    return d is not None and Effect.HOLD in d.effects
