"""The receive decision for one envelope against what the receiver holds: a pure function.

The caller (the station) verifies the signature first, so every decision here concerns envelopes
that their sender really signed. The table, in the order the checks run:

    ts > now + skew                              -> reject  clock_skew
    seq <= held head, same hash as held           -> duplicate (idempotent: re-send the receipt)
    seq <= held head, different hash              -> equivocation (alarm; keep both as evidence)
    seq == head + 1, prev != head hash            -> equivocation (predecessor differs from ours)
    seq == head + 1, ts < head ts                 -> reject  timestamp_order
    seq >  head + 1                               -> gap (nothing stored; re-request head + 1)
    a `seen` reference to our own chain that we
      never sent (beyond our head or other hash)  -> reject  broken_chain
    a `seen` reference to a third member's chain
      beyond what we hold                         -> wait (causal order: re-offer later)
    otherwise                                     -> accept

Old timestamps are not rejected: a message queued while a link was down, or carried by courier,
is legitimately late; freshness of live traffic is enforced on the signed transport request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from parley.protocol.envelope import Envelope

# Clocks of two stations may differ this much before an envelope counts as "from the future".
DEFAULT_SKEW_MS = 5 * 60 * 1000


class Verdict(Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    EQUIVOCATION = "equivocation"
    GAP = "gap"
    WAIT = "wait"
    REJECT = "reject"


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: bytes
    ts: int


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    code: str = ""
    reason: str = ""
    expected_seq: int = 0  # for GAP: the next seq the receiver needs


HashAt = Callable[[str, int], bytes | None]
"""hash_at(station, seq): the hash of that station's envelope at seq on this channel, if held."""


def decide(
    env: Envelope,
    *,
    me: str,
    head: ChainHead | None,
    hash_at: HashAt,
    held_seq: Callable[[str], int],
    now_ms: int,
    skew_ms: int = DEFAULT_SKEW_MS,
) -> Decision:
    """Decide what to do with a signature-verified envelope. `held_seq(member)` is the highest
    seq the receiver holds from that member on this channel (0 for none)."""
    if env.ts > now_ms + skew_ms:
        return Decision(
            Verdict.REJECT,
            "clock_skew",
            f"envelope time is {env.ts - now_ms} ms in the future (allowed {skew_ms} ms)",
        )
    top = head.seq if head else 0
    if env.seq <= top:
        held = hash_at(env.sender, env.seq)
        if held == env.hash:
            return Decision(Verdict.DUPLICATE)
        return Decision(
            Verdict.EQUIVOCATION,
            "equivocation",
            f"{env.sender} signed two different envelopes for seq {env.seq}",
        )
    if env.seq > top + 1:
        return Decision(
            Verdict.GAP,
            "gap",
            f"expected seq {top + 1} before seq {env.seq}",
            expected_seq=top + 1,
        )
    if head is not None:
        if env.prev != head.hash:
            return Decision(
                Verdict.EQUIVOCATION,
                "equivocation",
                f"seq {env.seq} links to a seq {head.seq} other than the one we hold",
            )
        if env.ts < head.ts:
            return Decision(
                Verdict.REJECT, "timestamp_order", "envelope time is earlier than its predecessor"
            )
    return _check_seen(env, me, hash_at, held_seq)


def _check_seen(
    env: Envelope, me: str, hash_at: HashAt, held_seq: Callable[[str], int]
) -> Decision:
    for member, ref in sorted(env.seen.items()):
        if member == me:
            if hash_at(me, ref.seq) != ref.hash:
                return Decision(
                    Verdict.REJECT,
                    "broken_chain",
                    f"it claims to have seen our seq {ref.seq}, which we did not send",
                )
        elif ref.seq > held_seq(member):
            return Decision(
                Verdict.WAIT, "gap", f"waits for {member} seq {ref.seq}", expected_seq=env.seq
            )
    return Decision(Verdict.ACCEPT)
