"""Channels: kinds, membership and the lifecycle, derived from signed control messages.

The state of a channel is never stored beside its transcript: it is the fold of its control
bodies (`channel.*`) in transcript order, sorted by (ts, sender, seq) so every member that holds
the same envelopes derives the same state. The legal moves:

    state       event     who                          next state
    ---------   --------  ---------------------------  -----------------------------------
    (none)      propose   any station (names members)  proposed  (proposer consents)
    proposed    consent   a member, to the proposal    open when every member consented
    open        suspend   any member                   suspended
    suspended   reopen    any member                   reopening (reopener consents)
    reopening   consent   a member, to the reopen      open when every member consented
    *           close     any member (not closed)      closed (final)

Content (text, notices, talks …) is accepted only if the channel was open in the sender's causal
past: the control events its chain and its `seen` references cover. `TRANSITIONS` below is
this table as data; `apply` only looks it up and records the result.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from heapq import heapify, heappop, heappush
from typing import Any

from parley.domain.deadlines import parse_ref
from parley.errors import Code, Conflict, RejectedInput
from parley.protocol import note
from parley.protocol.identity import is_blank, is_station_id

KINDS = ("hotline", "backchannel", "facilitated")
MAX_TITLE = 200
MAX_TEXT = 64 * 1024
MAX_MEMBERS = 64


@dataclass(frozen=True)
class Event:
    """One decrypted body in a channel's transcript."""

    sender: str
    seq: int
    ts: int
    hash: str  # base64url envelope hash
    body: dict[str, Any]
    seen: dict[str, int] = field(default_factory=dict)  # member -> latest seq seen

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))


@dataclass(frozen=True)
class ChannelState:
    channel: str
    kind: str
    title: str
    members: tuple[str, ...]
    proposer: str
    state: str  # proposed | open | suspended | reopening | closed
    pending: str = ""  # hash of the proposal or reopen request awaiting consent
    consents: frozenset[str] = field(default_factory=frozenset)
    history: tuple[tuple[int, str, str], ...] = ()  # (ts, who, what)
    facilitator: str = ""
    representatives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The channel's witness policy (docs/protocol.md §24): (vkey, submission URL) of each
    # witness, and how many of them must cosign a checkpoint. () and 0: no witnesses.
    witnesses: tuple[tuple[str, str], ...] = ()
    witness_k: int = 0

    @property
    def is_open(self) -> bool:
        return self.state == "open"


def propose_body(
    kind: str,
    title: str,
    members: Iterable[str],
    *,
    facilitator: str = "",
    representatives: dict[str, list[str]] | None = None,
    witnesses: list[dict[str, str]] | None = None,
    witness_k: int = 0,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "channel.propose",
        "kind": kind,
        "title": title,
        "members": sorted(set(members)),
    }
    if facilitator:
        body["facilitator"] = facilitator
    if representatives:
        body["representatives"] = {k: sorted(v) for k, v in sorted(representatives.items())}
    if witnesses:
        of = sorted(
            ({"url": w["url"], "vkey": w["vkey"]} for w in witnesses), key=lambda x: x["vkey"]
        )
        body["witnesses"] = {"k": witness_k or len(of), "of": of}
    check_body(body)
    return body


def text_body(text: str, lang: str) -> dict[str, Any]:
    body = {"type": "text", "text": text, "lang": lang}
    check_body(body)
    return body


def control_body(kind: str, target: str = "", reason: str = "") -> dict[str, Any]:
    """A lifecycle step; `target` (the hash awaiting consent) only for a consent."""
    body: dict[str, Any] = {"type": f"channel.{kind}"}
    if target:
        body["target"] = target
    if reason:
        body["reason"] = reason
    check_body(body)
    return body


def _bad(msg: str) -> RejectedInput:
    return RejectedInput(Code.BAD_BODY, msg)


def _text(
    body: dict[str, Any], key: str, max_len: int, required: bool = True, blank: bool = False
) -> None:
    """`key` is text of 1..max_len characters (code points), and not blank unless `blank`."""
    v = body.get(key)
    if v is None and not required:
        return
    if not isinstance(v, str) or not 1 <= len(v) <= max_len or (not blank and is_blank(v)):
        raise _bad(f"{body.get('type')}: {key} must be text of 1..{max_len} characters, not blank")


def check_body(body: dict[str, Any]) -> None:
    """Validate the shape of a channel-layer body (other layers check their own types)."""
    t = body.get("type")
    if t == "channel.propose":
        allowed = {"type", "kind", "title", "members", "facilitator", "representatives"}
        allowed.add("witnesses")
        if set(body) - allowed:
            raise _bad(f"channel.propose: unknown fields {sorted(set(body) - allowed)}")
        kind = body.get("kind")
        if kind not in KINDS:
            raise _bad(f"channel.propose: kind must be one of {KINDS}")
        _text(body, "title", MAX_TITLE)
        members = body.get("members")
        if (
            not isinstance(members, list)
            or not 2 <= len(members) <= MAX_MEMBERS
            or not all(is_station_id(m) for m in members)
            or members != sorted(set(members))
        ):
            raise _bad("channel.propose: members must be 2..64 distinct station ids, sorted")
        # Each optional member belongs to exactly one kind, where it is required: a field the
        # kind does not use would be signed, kept and shown, yet mean nothing.
        fac = body.get("facilitator")
        if (fac is not None) != (kind == "facilitated"):
            raise _bad("channel.propose: a facilitator is named on a facilitated channel only")
        if fac is not None and fac not in members:
            raise _bad("channel.propose: the facilitator must be a member")
        reps = body.get("representatives")
        if (reps is not None) != (kind == "backchannel"):
            raise _bad("channel.propose: representatives are named on a back channel only")
        if reps is not None:
            if not isinstance(reps, dict) or set(reps) != set(members):
                raise _bad("channel.propose: a back channel names representatives per member")
            for names in reps.values():
                if not isinstance(names, list) or not 1 <= len(names) <= 16:
                    raise _bad("channel.propose: each station names 1..16 representatives")
                if not all(isinstance(n, str) and 1 <= len(n) <= 64 for n in names):
                    raise _bad("channel.propose: representative names are 1..64 characters")
                if names != sorted(set(names)) or any(is_blank(n) for n in names):
                    raise _bad("channel.propose: representative names are distinct and sorted")
        if "witnesses" in body:
            _check_witnesses(body["witnesses"])
    elif t in ("channel.consent", "channel.suspend", "channel.reopen", "channel.close"):
        # `target` names what a consent agrees to; the other steps act on the channel as it
        # stands, so they carry none.
        allowed = {"type", "target", "reason"} if t == "channel.consent" else {"type", "reason"}
        if set(body) - allowed:
            raise _bad(f"{t}: unknown fields {sorted(set(body) - allowed)}")
        if t == "channel.consent":
            parse_ref(body.get("target"), f"{t}: target")
        _text(body, "reason", 2000, required=False)
    elif t == "text":
        if set(body) != {"type", "text", "lang"}:
            raise _bad("text: fields are type, text and lang")
        _text(body, "text", MAX_TEXT)
        _text(body, "lang", 16)


MAX_WITNESSES = 16
MAX_URL = 512


def _check_witnesses(w: object) -> None:
    """{"k": 1..n, "of": [{"vkey": cosignature/v1 vkey, "url": http(s) prefix}, ... 1..16]}."""
    what = "channel.propose: witnesses"
    if not isinstance(w, dict) or set(w) != {"k", "of"}:
        raise _bad(f"{what} is {{k, of}}")
    of, k = w["of"], w["k"]
    if not isinstance(of, list) or not 1 <= len(of) <= MAX_WITNESSES:
        raise _bad(f"{what}.of names 1..{MAX_WITNESSES} witnesses")
    if type(k) is not int or not 1 <= k <= len(of):
        raise _bad(f"{what}.k is an integer in 1..{len(of)}")
    seen: set[bytes] = set()
    for item in of:
        if not isinstance(item, dict) or set(item) != {"vkey", "url"}:
            raise _bad(f"{what}: each witness is {{vkey, url}}")
        url, vkey = item["url"], item["vkey"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad(f"{what}: a url is http(s)")
        if len(url) > MAX_URL or any(c.isspace() for c in url):
            raise _bad(f"{what}: a url is at most {MAX_URL} characters, no spaces")
        if not isinstance(vkey, str) or len(vkey) > MAX_URL:
            raise _bad(f"{what}: a vkey is text")
        v = note.parse_vkey(vkey)  # RejectedInput(malformed) names what is wrong
        if v.sig_type != note.COSIGNATURE_V1:
            raise _bad(f"{what}: a witness key is a cosignature/v1 (type 0x04) vkey")
        if v.public in seen:
            raise _bad(f"{what}: a witness key appears twice")
        seen.add(v.public)
    if of != sorted(of, key=lambda x: str(x["vkey"])):
        raise _bad(f"{what}.of is sorted by vkey")


def is_control(body: dict[str, Any]) -> bool:
    return str(body.get("type", "")).startswith("channel.")


# --- the lifecycle --------------------------------------------------------------------------------
# Everything that decides a channel's next state lives in this table (h11's _state.py style):
# state -> {event -> next state}. A pair that is not in it is refused. The events are the control
# body types without "channel."; a consent is `consent` while members still have to consent and
# `last_consent` when it completes the set. `NEW` is a channel nobody has proposed yet.
NEW, PROPOSED, OPEN, SUSPENDED, REOPENING, CLOSED = (
    "new", "proposed", "open", "suspended", "reopening", "closed",
)  # fmt: skip
STATES = (NEW, PROPOSED, OPEN, SUSPENDED, REOPENING, CLOSED)
PROPOSE, CONSENT, LAST_CONSENT, SUSPEND, REOPEN, CLOSE = (
    "propose", "consent", "last_consent", "suspend", "reopen", "close",
)  # fmt: skip
EVENTS = (PROPOSE, CONSENT, LAST_CONSENT, SUSPEND, REOPEN, CLOSE)

TRANSITIONS: dict[str, dict[str, str]] = {
    NEW: {PROPOSE: PROPOSED},
    PROPOSED: {CONSENT: PROPOSED, LAST_CONSENT: OPEN, CLOSE: CLOSED},
    OPEN: {SUSPEND: SUSPENDED, CLOSE: CLOSED},
    SUSPENDED: {REOPEN: REOPENING, CLOSE: CLOSED},
    REOPENING: {CONSENT: REOPENING, LAST_CONSENT: OPEN, CLOSE: CLOSED},
    CLOSED: {},
}

# Why an event is refused in a state that does not take it (the first that applies).
_REFUSED_IN = {CLOSED: "the channel is closed", NEW: "the channel has not been proposed"}
_REFUSED = {
    PROPOSE: "the channel already exists",
    CONSENT: "nothing awaits that consent",
    LAST_CONSENT: "nothing awaits that consent",
    SUSPEND: "only an open channel can be suspended",
    REOPEN: "only a suspended channel can be reopened",
    CLOSE: "the channel is closed",
}


def event_of(state: ChannelState | None, ev: Event) -> str:
    """The table's event for one control message in `state` (Conflict if it is none)."""
    kind = ev.type.removeprefix("channel.")
    if kind not in EVENTS or kind == LAST_CONSENT or not is_control(ev.body):
        raise Conflict(Code.CONFLICT, f"{ev.type} is not a channel control message")
    if kind == CONSENT and state is not None and state.pending:  # a question awaits consents
        return LAST_CONSENT if state.consents | {ev.sender} >= set(state.members) else CONSENT
    return kind


def next_state(state: str, event: str) -> str:
    """The table lookup: the state after `event` in `state`, or Conflict naming why not."""
    after = TRANSITIONS[state].get(event)
    if after is None:
        raise Conflict(Code.CONFLICT, _REFUSED_IN.get(state) or _REFUSED[event])
    return after


def apply(state: ChannelState | None, ev: Event, channel: str = "") -> ChannelState:
    """Apply one control event: the table decides the next state, this only records it.
    Raises Conflict for a move the table does not allow."""
    event = event_of(state, ev)
    if state is not None and ev.sender not in state.members:
        raise Conflict(Code.CONFLICT, "only members change a channel")
    after = next_state(state.state if state else NEW, event)
    # A consent answers one proposal or reopen: the one still pending.
    answers = state is None or ev.body.get("target") == state.pending
    if event in (CONSENT, LAST_CONSENT) and not answers:
        raise Conflict(Code.CONFLICT, _REFUSED[CONSENT])
    if state is None:
        if ev.sender not in ev.body["members"]:
            raise Conflict(Code.CONFLICT, "the proposer must be a member")
        reps = {k: tuple(v) for k, v in ev.body.get("representatives", {}).items()}
        wit = ev.body.get("witnesses", {})
        return ChannelState(
            channel=channel,
            kind=ev.body["kind"],
            title=ev.body["title"],
            members=tuple(ev.body["members"]),
            proposer=ev.sender,
            state=after,
            pending=ev.hash,
            consents=frozenset({ev.sender}),
            history=((ev.ts, ev.sender, "proposed"),),
            facilitator=ev.body.get("facilitator", ""),
            representatives=reps,
            witnesses=tuple((w["vkey"], w["url"]) for w in wit.get("of", [])),
            witness_k=int(wit.get("k", 0)),
        )
    hist = (*state.history, (ev.ts, ev.sender, ev.type.removeprefix("channel.")))
    if event == LAST_CONSENT:
        hist = (*hist, (ev.ts, ev.sender, "opened"))
    pending, consents = state.pending, state.consents
    if event in (CONSENT, LAST_CONSENT):
        consents = consents | {ev.sender}
    if event == REOPEN:  # a reopen is a new question every member answers
        pending, consents = ev.hash, frozenset({ev.sender})
    if after in (OPEN, CLOSED):
        pending = ""
    return replace(state, state=after, pending=pending, consents=consents, history=hist)


def order_key(ev: Event) -> tuple[int, str, int]:
    return (ev.ts, ev.sender, ev.seq)


def causal_order(events: Iterable[Event]) -> list[Event]:
    """Events in an order every member computes alike: causal (a sender's chain, and `seen`
    references, come first), ties broken by (ts, sender, seq). Clocks alone would not do: a
    consent stamped by a clock running behind must still follow the proposal it answers.

    The rule: repeatedly place the first event in (ts, sender, seq) order that is ready, i.e.
    for its sender's events before it and for each `seen` reference (member m, seq q), the
    highest such seq of m held here is already placed (`done[m]` reached it); when none is
    ready (a cycle, impossible among honest members), the first event left. Each condition is a
    threshold on `done[m]`, which only grows, so each is checked once when `done[m]` passes it:
    O(E log E + S) for E events with S `seen` entries, not a rescan of every event left per
    placement (which was cubic in the members during a channel's opening).
    """
    order = sorted(events, key=order_key)
    seqs: dict[str, list[int]] = {}
    for e in order:
        seqs.setdefault(e.sender, []).append(e.seq)
    for chain in seqs.values():
        chain.sort()
    missing = [0] * len(order)  # per event: thresholds not yet reached
    waiting: dict[str, list[tuple[int, int]]] = {}  # member -> heap of (threshold, event)
    ready: list[int] = []  # heap of event ranks with nothing missing
    for i, e in enumerate(order):
        own = seqs[e.sender]
        conds = [(e.sender, own[bisect_left(own, e.seq) - 1])] if own[0] < e.seq else []
        for m, q in e.seen.items():
            theirs = seqs.get(m, [])
            at = bisect_right(theirs, q)
            if at:
                conds.append((m, theirs[at - 1]))
        for m, need in conds:
            if need > 0:  # done[m] starts at 0
                missing[i] += 1
                heappush(waiting.setdefault(m, []), (need, i))
        if not missing[i]:
            ready.append(i)
    heapify(ready)
    placed = [False] * len(order)
    done: dict[str, int] = {}
    first = 0  # no event before this rank is left
    out: list[Event] = []
    while len(out) < len(order):
        while ready and placed[ready[0]]:
            heappop(ready)
        if ready:
            i = heappop(ready)
        else:
            while placed[first]:
                first += 1
            i = first
        placed[i] = True
        e = order[i]
        out.append(e)
        if e.seq > done.get(e.sender, 0):
            done[e.sender] = e.seq
            heap = waiting.get(e.sender, [])
            while heap and heap[0][0] <= e.seq:
                _, j = heappop(heap)
                missing[j] -= 1
                if not missing[j] and not placed[j]:
                    heappush(ready, j)
    return out


def derive(channel: str, events: Iterable[Event]) -> ChannelState | None:
    """The channel's state from its control events; illegal ones are ignored, as every member
    ignores them identically."""
    state: ChannelState | None = None
    for ev in causal_order(e for e in events if is_control(e.body)):
        try:
            state = apply(state, ev, channel)
        except Conflict:
            continue
    return state


def in_cut(
    channel: str,
    events: Iterable[Event],
    cut: dict[str, int],
    whole: ChannelState | None = None,
) -> ChannelState | None:
    """The state given only the events inside `cut` (member -> highest seq seen): what the
    sender of an envelope with that causal past knew when it sent it. `whole`: the state of
    all of `events`, when the caller holds it; a cut that covers every event (the usual case,
    a message sent after the channel opened) gets it without a fold per received envelope."""
    events = list(events)
    inside = [e for e in events if e.seq <= cut.get(e.sender, 0)]
    if whole is not None and len(inside) == len(events):
        return whole
    return derive(channel, inside)
